"""`make run`'s main job: the operator on the management cluster, the example region and its
central hospital applied with kubectl, and what the operator made of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from medcloud.devstack.processes import ManagedProcess, StackError
from medcloud.devstack.servers import venv_bin

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "operators" / "crds"
EXAMPLES = ROOT / "examples"
SITE_NAMESPACE, SITE_NAME = "hospital-central", "central"
# The example's member clusters, by the Secret names it gives, and the stack's cluster for each.
MEMBER_SECRETS = {
    "hospital-private-kubeconfig": "hospital-private",
    "carrier-public-kubeconfig": "carrier-public",
}


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(venv_bin() / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def start_operator(stack) -> ManagedProcess:  # type: ignore[no-untyped-def]
    """Installs the CRDs in the management cluster and starts the operator as the region
    operator (a system administrator)."""
    management = next(c for c in stack.clusters if c.name == "management")
    for path in sorted(CRDS.glob("*.yaml")):
        _kubectl(management.admin_kubeconfig, "apply", "-f", str(path))
    _kubectl(
        management.admin_kubeconfig,
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(management.admin_kubeconfig),
        "MEDCLOUD_REGION": stack.region,
        **{f"MEDCLOUD_{s.name.upper()}_ADDRESS": s.address for s in stack.services},
        **stack.operator_tls.environment(),
    }
    operator = ManagedProcess(
        "operator",
        [sys.executable, "-m", "medcloud.operators"],
        stack.work_dir / "logs" / "operator.log",
        env,
    )
    operator.start()
    return operator


def apply_examples(stack, wait_seconds: float = 90.0) -> str:  # type: ignore[no-untyped-def]
    """Applies the example Region and HospitalSite (with Secrets holding the member clusters'
    kubeconfigs) and reports the site's conditions and placements once it settles."""
    management = next(c for c in stack.clusters if c.name == "management")
    kubeconfig = management.admin_kubeconfig
    by_name = {c.name: c for c in stack.clusters}
    _kubectl(kubeconfig, "apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": SITE_NAMESPACE},
            "stringData": {"kubeconfig": by_name[cluster].admin_kubeconfig.read_text()},
        }
        for secret, cluster in MEMBER_SECRETS.items()
        if cluster in by_name
    ]
    documents = list(yaml.safe_load_all((EXAMPLES / "hospital-central.yaml").read_text()))
    namespaces = [d for d in documents if d and d.get("kind") == "Namespace"]
    others = [d for d in documents if d and d.get("kind") != "Namespace"]
    _kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all([*namespaces, *secrets]))
    _kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(others))

    objects = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
    deadline = time.monotonic() + wait_seconds
    status: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        site = objects.get_namespaced_custom_object(
            "medcloud.io", "v1alpha1", SITE_NAMESPACE, "hospitalsites", SITE_NAME
        )
        status = site.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        if conditions and all(
            conditions.get(kind) in ("True", "False")
            for kind in ("Validated", "Inventoried", "Placed", "Secured", "Protected", "Monitored")
        ):
            break
        time.sleep(1.0)
    lines = [
        f"operator: applied examples/region-panyu.yaml and examples/hospital-central.yaml; "
        f"HospitalSite {SITE_NAMESPACE}/{SITE_NAME} is {status.get('phase', 'not reconciled yet')}"
    ]
    for condition in status.get("conditions", []):
        lines.append(
            f"  {condition['type']:<12} {condition['status']:<8} {condition.get('reason', '')}: "
            f"{condition.get('message', '')[:150]}"
        )
    for placement in status.get("placements", []):
        lines.append(
            f"  placed {placement['system']:<14} {placement['state']:<9} in "
            f"{', '.join(placement['centres'])}"
        )
    return "\n".join(lines)
