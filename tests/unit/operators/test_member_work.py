"""Which kubeconfig Secret a HospitalSite may use: only one the region enrolled for its hospital."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from medcloud.operators.member_work import KubeconfigSecret, KubernetesMemberWork
from medcloud.operators.reconcile import StepFailed
from medcloud.operators.site import read_site

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hospital-central.yaml"


def central():  # type: ignore[no-untyped-def]
    documents = yaml.safe_load_all(EXAMPLE.read_text())
    return read_site(copy.deepcopy(next(d for d in documents if d["kind"] == "HospitalSite")))


def work(secrets: dict[str, KubeconfigSecret], tmp_path: Path, **options: bool):  # type: ignore[no-untyped-def]
    return KubernetesMemberWork(
        lambda name, key: secrets.get(name), "medcloud", tmp_path, **options
    )


@pytest.fixture
def unreachable_kubeconfig() -> bytes:
    """A kubeconfig whose server refuses at once: enough to get past the Secret checks."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    ).encode()


async def test_a_missing_secret_names_the_field_and_who_creates_it(tmp_path):
    site = central()
    with pytest.raises(StepFailed) as refused:
        await work({}, tmp_path).apply(site)
    assert refused.value.reason == "KubeconfigSecretMissing"
    assert refused.value.message.startswith(
        "spec.clusters[0].kubeconfigSecretRef: Secret medcloud/"
    )
    assert f"medcloud.io/hospital={site.hospital_id}" in refused.value.message


@pytest.mark.parametrize("hospital", [None, "other-hospital"])
async def test_a_secret_not_enrolled_for_the_hospital_is_refused(
    tmp_path, unreachable_kubeconfig, hospital
):
    site = central()
    secrets = {
        c.secret_name: KubeconfigSecret(unreachable_kubeconfig, hospital) for c in site.clusters
    }
    with pytest.raises(StepFailed) as refused:
        await work(secrets, tmp_path).apply(site)
    assert refused.value.reason == "KubeconfigSecretNotEnrolled"
    assert "spec.clusters[0].kubeconfigSecretRef" in refused.value.message
    assert f"not for {site.hospital_id!r}" in refused.value.message


async def test_an_enrolled_secret_is_used(tmp_path, unreachable_kubeconfig):
    site = central()
    secrets = {
        c.secret_name: KubeconfigSecret(unreachable_kubeconfig, site.hospital_id)
        for c in site.clusters
    }
    with pytest.raises(StepFailed) as failed:
        await work(secrets, tmp_path).apply(site)
    # Past the Secret checks: it went for the cluster, which refused the connection.
    assert failed.value.reason == "MemberClusterUnavailable"


async def test_kubeconfigs_supplied_directly_need_no_enrolment(tmp_path, unreachable_kubeconfig):
    site = central()
    secrets = {c.secret_name: KubeconfigSecret(unreachable_kubeconfig, None) for c in site.clusters}
    with pytest.raises(StepFailed) as failed:
        await work(secrets, tmp_path, require_enrolment=False).apply(site)
    assert failed.value.reason == "MemberClusterUnavailable"
