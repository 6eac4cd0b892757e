"""medcloudctl's commands against a running region, as far as they go without one: a bad manifest
is refused before anything is sent, and a cluster or service that does not answer is named in one
line with exit code 2, never a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medcloud.operators import cli_cluster
from medcloud.operators.cli import app

ROOT = Path(__file__).resolve().parents[3]
BAD = ROOT / "tests" / "operator" / "bad"
EXAMPLES = ROOT / "examples"
NO_TLS = {"MEDCLOUD_TLS_CA_FILE": "", "MEDCLOUD_TLS_CERT_FILE": "", "MEDCLOUD_TLS_KEY_FILE": ""}


def invoke(*args: str, **env: str):
    # Wide enough that rich never folds a field path or an address.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400", **NO_TLS, **env})


def closed_port() -> int:
    """A local port nothing listens on (bound and released: the kernel refuses connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kubeconfig_for(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gone",
                        "cluster": {"server": server, "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "someone", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {
                        "name": "gone",
                        "context": {"cluster": "gone", "user": "someone", "namespace": "hospital"},
                    }
                ],
                "current-context": "gone",
            }
        )
    )
    return path


@pytest.fixture
def no_cluster(monkeypatch):
    """Fails the test should any command reach for the management cluster."""

    def refuse(*args, **kwargs):
        raise AssertionError("the management cluster was contacted")

    monkeypatch.setattr(cli_cluster, "Management", refuse)


def test_apply_of_a_bad_manifest_names_the_field_and_applies_nothing(no_cluster):
    result = invoke("apply", "-f", str(BAD / "vcpu-128.yaml"), KUBECONFIG="/nonexistent")
    assert result.exit_code == 1, result.output
    assert "spec.systems[1].vcpu" in result.stdout
    assert "less than or equal to 64" in result.stdout
    assert "nothing applied" in result.stderr


def test_apply_embedded_of_a_bad_manifest_applies_nothing_either(no_cluster, tmp_path):
    result = invoke(
        "apply", "-f", str(BAD / "vcpu-128.yaml"), "--embedded", "--secrets-dir", str(tmp_path)
    )
    assert result.exit_code == 1, result.output
    assert "spec.systems[1].vcpu" in result.stdout


def test_apply_refuses_kinds_it_does_not_send_before_sending_anything(no_cluster, tmp_path):
    manifest = tmp_path / "mixed.yaml"
    manifest.write_text(
        (EXAMPLES / "region-panyu.yaml").read_text()
        + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"
    )
    result = invoke("apply", "-f", str(manifest))
    assert result.exit_code == 1, result.output
    assert "nothing applied" in result.stderr and "ConfigMap extra" in result.stderr


def test_apply_of_an_unreadable_path_exits_2():
    result = invoke("apply", "-f", "/nonexistent/site.yaml")
    assert result.exit_code == 2
    assert "/nonexistent/site.yaml" in result.stderr


def test_explain_against_an_unreachable_scheduling_names_the_address():
    address = f"127.0.0.1:{closed_port()}"
    result = invoke("explain", "central-hospital-his", MEDCLOUD_SCHEDULING_ADDRESS=address)
    assert result.exit_code == 2, result.output
    assert address in result.stderr
    assert "unreachable" in result.stderr
    assert "Traceback" not in result.output


def test_explain_without_an_address_says_which_variable_to_set():
    result = invoke("explain", "central-hospital-his", MEDCLOUD_SCHEDULING_ADDRESS="")
    assert result.exit_code == 2
    assert "MEDCLOUD_SCHEDULING_ADDRESS" in result.stderr


def test_explain_with_half_the_tls_files_is_a_configuration_error():
    result = invoke(
        "explain",
        "central-hospital-his",
        MEDCLOUD_SCHEDULING_ADDRESS=f"127.0.0.1:{closed_port()}",
        MEDCLOUD_TLS_CA_FILE="/nonexistent/ca.crt",
    )
    assert result.exit_code == 2
    assert "MEDCLOUD_TLS_CERT_FILE" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["get"],
        ["get", "central", "-o", "json"],
        ["describe", "central"],
        ["delete", "central", "--no-wait"],
    ],
)
def test_a_management_cluster_on_a_closed_port_exits_2_naming_it(tmp_path, command):
    server = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = kubeconfig_for(tmp_path / "kubeconfig", server)
    result = invoke(*command, KUBECONFIG=str(kubeconfig))
    assert result.exit_code == 2, result.output
    assert server in result.stderr
    assert "unreachable" in result.stderr
    assert "Traceback" not in result.output


def test_the_kubeconfig_option_wins_over_the_environment(tmp_path):
    server = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = kubeconfig_for(tmp_path / "kubeconfig", server)
    result = invoke("get", "-A", "--kubeconfig", str(kubeconfig), KUBECONFIG="/nonexistent")
    assert result.exit_code == 2
    assert server in result.stderr


def test_a_missing_kubeconfig_file_is_named():
    result = invoke("get", KUBECONFIG="/nonexistent/kubeconfig")
    assert result.exit_code == 2
    assert "/nonexistent/kubeconfig" in result.stderr


def test_get_by_name_across_all_namespaces_is_refused():
    result = invoke("get", "central", "-A")
    assert result.exit_code == 2
    assert "-A" in result.stderr


def test_embedded_apply_without_the_service_addresses_names_them(tmp_path):
    result = invoke(
        "apply",
        "-f",
        str(EXAMPLES / "hospital-central.yaml"),
        "--embedded",
        "--secrets-dir",
        str(tmp_path),
        MEDCLOUD_INVENTORY_ADDRESS="",
        MEDCLOUD_SCHEDULING_ADDRESS="",
        MEDCLOUD_SECURITY_ADDRESS="",
        MEDCLOUD_BACKUP_ADDRESS="",
        MEDCLOUD_MONITORING_ADDRESS="",
    )
    assert result.exit_code == 2, result.output
    for service in ("INVENTORY", "SCHEDULING", "SECURITY", "BACKUP", "MONITORING"):
        assert f"MEDCLOUD_{service}_ADDRESS" in result.stderr


def test_embedded_apply_against_unreachable_services_names_the_service(tmp_path):
    addresses = {
        f"MEDCLOUD_{service}_ADDRESS": f"127.0.0.1:{closed_port()}"
        for service in ("INVENTORY", "SCHEDULING", "SECURITY", "BACKUP", "MONITORING")
    }
    result = invoke("apply", "-f", str(EXAMPLES / "region-panyu.yaml"), "--embedded", **addresses)
    assert result.exit_code == 2, result.output
    assert addresses["MEDCLOUD_INVENTORY_ADDRESS"] in result.stderr
    assert "Region panyu" in result.stderr


# --- rendering, from the status the operator writes -------------------------------------------


def site_with_status() -> dict:
    return {
        "metadata": {
            "name": "central",
            "namespace": "hospital-central",
            "generation": 2,
            "creationTimestamp": "2020-01-01T00:00:00Z",
        },
        "spec": {"hospitalId": "central-hospital", "systems": []},
        "status": {
            "observedGeneration": 2,
            "phase": "SecuredFailed",
            "systemCount": 9,
            "systemsPlaced": 9,
            "drTier": 5,
            "conditions": [
                {"type": "Placed", "status": "True", "observedGeneration": 2},
                {"type": "Ready", "status": "False", "observedGeneration": 2},
            ],
        },
    }


def test_a_site_row_has_the_printer_columns():
    row = cli_cluster.site_row(site_with_status())
    assert row[:6] == ["hospital-central", "central", "SecuredFailed", "9/9", "5", "-"]
    assert row[6].endswith("d")


def test_a_site_is_ready_only_for_the_generation_the_operator_saw():
    site = site_with_status()
    assert not cli_cluster.site_ready(site)
    site["status"]["conditions"][1]["status"] = "True"
    assert cli_cluster.site_ready(site)
    site["metadata"]["generation"] = 3  # a new spec the operator has not reconciled yet
    assert not cli_cluster.site_ready(site)


def test_site_json_is_name_namespace_and_status():
    found = cli_cluster.site_json(site_with_status())
    assert json.loads(json.dumps(found))["status"]["phase"] == "SecuredFailed"
    assert set(found) == {"name", "namespace", "status"}


def test_apply_order_puts_namespaces_and_secrets_first():
    kinds = ["HospitalSite", "Region", "Secret", "Namespace", "HospitalSite"]
    ordered = cli_cluster.apply_order(
        [{"kind": k, "metadata": {"name": str(i)}} for i, k in enumerate(kinds)]
    )
    assert [d["kind"] for d in ordered] == [
        "Namespace",
        "Secret",
        "Region",
        "HospitalSite",
        "HospitalSite",
    ]
    assert [d["metadata"]["name"] for d in ordered][-2:] == ["0", "4"]
