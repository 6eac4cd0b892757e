"""Running helm on charts/medcloud from tests: rendering, linting and reading what it made."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medcloud.devstack.pki import CertificateAuthority
from medcloud.devstack.servers import venv_bin

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "medcloud"
REQUIRED_VALUES = CHART / "ci" / "required-values.yaml"
PANYU = CHART / "values-panyu.yaml"
CONGHUA = CHART / "values-conghua.yaml"
VALUE_SETS = {"required": REQUIRED_VALUES, "panyu": PANYU, "conghua": CONGHUA}
HELM = venv_bin() / "helm"
SERVICES = ("inventory", "scheduling", "security", "backup", "monitoring")
PARTS = (*SERVICES, "operator")

Document = dict[str, Any]


@cache
def helm_environment() -> dict[str, str]:
    """helm's cache, configuration and data in a directory of the test run's own."""
    home = Path(tempfile.mkdtemp(prefix="medcloud-helm-"))
    return {
        **os.environ,
        **{f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")},
    }


def helm(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HELM), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=helm_environment(),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def value_arguments(values: Sequence[Path] = (), settings: Sequence[str] = ()) -> list[str]:
    arguments: list[str] = []
    for path in values:
        arguments += ["-f", str(path)]
    for setting in settings:
        arguments += ["--set", setting]
    return arguments


@cache
def render(
    values: tuple[Path, ...] = (),
    settings: tuple[str, ...] = (),
    release: str = "medcloud",
    namespace: str = "medcloud",
) -> tuple[Document, ...]:
    """Every object `helm template` renders (test hooks included), CRDs included."""
    output = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        *value_arguments(values, settings),
    ).stdout
    return tuple(document for document in yaml.safe_load_all(output) if document)


def of_kind(documents: Sequence[Document], kind: str) -> list[Document]:
    return [document for document in documents if document["kind"] == kind]


def named(documents: Sequence[Document], kind: str, name: str) -> Document:
    (document,) = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == name]
    return document


def pod_specs(documents: Sequence[Document]) -> Iterator[tuple[Document, Document]]:
    """(object, pod spec) of every workload and bare Pod."""
    for document in documents:
        kind = document["kind"]
        if kind == "Pod":
            yield document, document["spec"]
        elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield document, document["spec"]["template"]["spec"]


def containers(spec: Document) -> list[Document]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def environment(container: Document) -> dict[str, Any]:
    """The container's env by name: a literal value, or its valueFrom."""
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }


def component(document: Document) -> str:
    return document["metadata"]["labels"]["app.kubernetes.io/component"]


def nats_dns_names(fullname: str, namespace: str) -> tuple[str, ...]:
    """The names docs/helm.md tells the region's CA to put in the bundled NATS certificate: the
    Service the services dial, and every server's name under the headless Service (routes)."""
    return (f"{fullname}-nats.{namespace}.svc", f"*.{fullname}-nats-headless.{namespace}.svc")


def nats_certificate(
    authority: CertificateAuthority,
    fullname: str,
    namespace: str,
    extra_names: Sequence[x509.GeneralName] = (),
) -> dict[str, bytes]:
    """The bundled NATS servers' Secret as docs/helm.md describes it (ca.crt, tls.crt, tls.key):
    server and client auth, since a route is both ends of one connection."""
    issued = authority.issue_certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{fullname}-nats")]),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [*(x509.DNSName(name) for name in nats_dns_names(fullname, namespace)), *extra_names],
    )
    return {"ca.crt": authority.cert_pem, "tls.crt": issued.cert_pem, "tls.key": issued.key_pem}
