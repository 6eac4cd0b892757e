"""`make run`'s main job: the operator on the management cluster, the example region and its
central hospital applied with kubectl, and what the operator made of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import yaml
from kubernetes import client, config

from medcloud.core.access import Role
from medcloud.devstack.processes import ManagedProcess, StackError
from medcloud.devstack.servers import venv_bin
from medcloud.operators.member_work import HOSPITAL_LABEL
from medcloud.runtime.proto_enums import enum_to_proto
from medcloud.security.domain.baseline import MLPS_LEVEL_3
from medcloud.security.domain.pool import Capability
from medcloud.security.v1 import security_pb2 as security_pb
from medcloud.security.v1 import security_service_pb2 as security_api
from medcloud.security.v1 import security_service_pb2_grpc as security_grpc

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "operators" / "crds"
EXAMPLES = ROOT / "examples"
SITE_NAMESPACE, SITE_NAME = "hospital-central", "central"
# The operator's own namespace: its leader Lease and the member clusters' kubeconfig Secrets.
OPERATOR_NAMESPACE = "medcloud"
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
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    _kubectl(management.admin_kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(namespace))
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
        "MEDCLOUD_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
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


# Where make run's security pool keeps its instances: the carrier's two rooms (the baseline asks
# for internet firewalls in two centres).
POOL_CENTRES = ("panyu-carrier-production", "panyu-carrier-standby")


def seed_security_pool(stack, site_id: str) -> str:  # type: ignore[no-untyped-def]
    """What the region's security administrator would do for a new hospital: pooled instances of
    every capability the MLPS level-3 baseline needs, allocated to the site's zones; and what its
    audit administrator does daily: verify the trail. The operator, a system administrator,
    may do neither (three-role separation)."""
    security = next(s for s in stack.services if s.name == "security")
    admin = stack.pki.issue("security-officer", (Role.SECURITY_ADMINISTRATOR.value,))
    auditor = stack.pki.issue("audit-officer", (Role.AUDIT_ADMINISTRATOR.value,))
    needs = sorted(
        {(zone, capability) for control in MLPS_LEVEL_3 for zone, capability in control.needs},
        key=lambda need: (need[0].value, need[1].value),
    )
    with grpc.secure_channel(security.address, admin.material().channel_credentials()) as channel:
        stub = security_grpc.SecurityServiceStub(channel)
        for capability in sorted({c for _, c in needs}, key=lambda c: c.value):
            for centre in POOL_CENTRES:
                stub.AddSecurityInstance(
                    security_api.AddSecurityInstanceRequest(
                        instance=security_pb.SecurityInstance(
                            id=f"{capability.value}-{centre}",
                            capability=enum_to_proto(capability, security_pb.Capability),
                            centre_id=centre,
                            capacity_units=100,
                            vendor="make run",
                        )
                    ),
                    timeout=10,
                )
        for zone, capability in needs:
            # Internet firewalls from both rooms, everything else from the first.
            centres = (
                POOL_CENTRES if capability is Capability.VIRTUAL_FIREWALL else POOL_CENTRES[:1]
            )
            for centre in centres:
                stub.AllocateCapability(
                    security_api.AllocateCapabilityRequest(
                        site_id=site_id,
                        zone=enum_to_proto(zone, security_pb.Zone),
                        capability=enum_to_proto(capability, security_pb.Capability),
                        units=1,
                        prefer_centre_id=centre,
                    ),
                    timeout=10,
                )
    with grpc.secure_channel(security.address, auditor.material().channel_credentials()) as channel:
        security_grpc.SecurityServiceStub(channel).VerifyAuditTrail(
            security_api.VerifyAuditTrailRequest(), timeout=30
        )
    return (
        f"security: the region's security administrator allocated {len(needs)} capabilities "
        f"to {site_id}; the audit administrator verified the trail"
    )


def apply_examples(stack, wait_seconds: float = 90.0) -> str:  # type: ignore[no-untyped-def]
    """Applies the example Region and HospitalSite (with the Secrets holding the member
    clusters' kubeconfigs, enrolled for its hospital in the operator's namespace) and reports
    the site's conditions and placements once it settles."""
    management = next(c for c in stack.clusters if c.name == "management")
    kubeconfig = management.admin_kubeconfig
    by_name = {c.name: c for c in stack.clusters}
    _kubectl(kubeconfig, "apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    documents = list(yaml.safe_load_all((EXAMPLES / "hospital-central.yaml").read_text()))
    namespaces = [d for d in documents if d and d.get("kind") == "Namespace"]
    others = [d for d in documents if d and d.get("kind") != "Namespace"]
    site_id = next(d for d in others if d.get("kind") == "HospitalSite")["spec"]["hospitalId"]
    # The region operator enrols each member cluster for the hospital (member_work.py).
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret,
                "namespace": OPERATOR_NAMESPACE,
                "labels": {HOSPITAL_LABEL: site_id},
            },
            "stringData": {"kubeconfig": by_name[cluster].admin_kubeconfig.read_text()},
        }
        for secret, cluster in MEMBER_SECRETS.items()
        if cluster in by_name
    ]
    _kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all([*namespaces, *secrets]))
    seeded = seed_security_pool(stack, site_id)
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
        if conditions.get("Ready") == "True":
            break
        time.sleep(1.0)
    lines = [
        seeded,
        f"operator: applied examples/region-panyu.yaml and examples/hospital-central.yaml; "
        f"HospitalSite {SITE_NAMESPACE}/{SITE_NAME} is {status.get('phase', 'not reconciled yet')}",
    ]
    lines.append(f"  conformance  {status.get('conformance', '')}")
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
