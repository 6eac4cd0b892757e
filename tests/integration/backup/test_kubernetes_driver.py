"""The backup service's Kubernetes driver against two real kube-apiservers (no nodes, no controllers:
Deployments are stored but never run, so the tests check objects, not pods)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from medcloud.backup.adapters.kubernetes_driver import (
    ACTIVE_COPY,
    FAILOVER_ID,
    PROMOTED_REPLICAS,
    REPLICAS_BEFORE_FAILOVER,
    KubernetesDriver,
)
from medcloud.backup.adapters.velero import backup_for, cron_for, restore_for, schedule_for
from medcloud.backup.app.ports import Endpoint, StepContext, SystemCopies
from medcloud.backup.domain.failover import Step, TriggerKind
from medcloud.backup.domain.plans import ProtectionPolicy, Target, TargetKind
from medcloud.core.identifiers import DNS_LABEL
from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.processes import free_port
from medcloud.devstack.servers import venv_bin
from tests.support.identities import kube_apiserver

pytestmark = pytest.mark.integration

MANIFESTS = Path(__file__).resolve().parents[2] / "support" / "manifests"
PRIMARY, STANDBY = "hospital-private", "carrier-public"
# Namespaces of their own: other modules of the session start clusters of the same names on the
# same etcd prefixes, and `hospital-a` there holds their Deployments.
NAMESPACE = "driver-hospital-a"
ELSEWHERE = "driver-hospital-b"
WORKLOAD = "his"
PRIMARY_REPLICAS = 3
MEDCLOUD_ANNOTATIONS = (ACTIVE_COPY, FAILOVER_ID, PROMOTED_REPLICAS, REPLICAS_BEFORE_FAILOVER)
FORWARD = (Step.FENCE_PRIMARY, Step.PROMOTE_STANDBY, Step.REPOINT, Step.VERIFY)

SYSTEM = SystemCopies(
    hospital_id="hospital-a",
    system_id="his",
    driver="kubernetes",
    primary=Endpoint("hospital-a-room", PRIMARY, NAMESPACE, WORKLOAD),
    standby=Endpoint("carrier-dc", STANDBY, NAMESPACE, WORKLOAD),
)


def context(**options: bool) -> StepContext:
    return StepContext(failover_id="failover-1", trigger=TriggerKind.MANUAL, **options)


def apps(cluster: KubeApiServer) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(str(cluster.admin_kubeconfig)))


def core(cluster: KubeApiServer) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(cluster.admin_kubeconfig)))


def deployment_manifest(replicas: int) -> dict[str, object]:
    labels = {"app": WORKLOAD}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": WORKLOAD},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": WORKLOAD, "image": "registry.local/his:1"}]},
            },
        },
    }


@pytest.fixture(scope="module")
def clusters(etcd_server, tmp_path_factory) -> Iterator[dict[str, KubeApiServer]]:
    """The hospital's private cluster (primary) and the carrier's public one (standby), each with
    a namespace holding Deployment and Service `his`."""
    work = tmp_path_factory.mktemp("backup-clusters")
    started = {
        name: kube_apiserver(name, etcd_server.endpoint, work / name) for name in (PRIMARY, STANDBY)
    }
    for cluster in started.values():
        cluster.launch()
    try:
        for cluster in started.values():
            cluster.wait_ready()
        for name, replicas in ((PRIMARY, PRIMARY_REPLICAS), (STANDBY, 0)):
            cluster = started[name]
            core(cluster).create_namespace({"metadata": {"name": NAMESPACE}})
            apps(cluster).create_namespaced_deployment(NAMESPACE, deployment_manifest(replicas))
            core(cluster).create_namespaced_service(
                NAMESPACE,
                {
                    "metadata": {"name": WORKLOAD},
                    "spec": {"selector": {"app": WORKLOAD}, "ports": [{"port": 443}]},
                },
            )
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


@pytest.fixture
def fresh(clusters) -> dict[str, KubeApiServer]:
    """Both copies as before any failover: primary at 3, standby at 0, no medcloud annotations."""
    cleared = {"metadata": {"annotations": dict.fromkeys(MEDCLOUD_ANNOTATIONS)}}
    for name, replicas in ((PRIMARY, PRIMARY_REPLICAS), (STANDBY, 0)):
        cluster = clusters[name]
        apps(cluster).patch_namespaced_deployment(
            WORKLOAD,
            NAMESPACE,
            {**cleared, "spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json",
        )
        core(cluster).patch_namespaced_service(
            WORKLOAD, NAMESPACE, cleared, _content_type="application/merge-patch+json"
        )
    return clusters


@pytest.fixture
def driver(clusters) -> Iterator[KubernetesDriver]:
    built = KubernetesDriver(
        {name: cluster.admin_kubeconfig for name, cluster in clusters.items()}, verify_ready=False
    )
    yield built
    built.close()


def unreachable_kubeconfig(cluster: KubeApiServer, path: Path) -> Path:
    """The cluster's admin kubeconfig pointed at a port nobody listens on."""
    document = yaml.safe_load(cluster.admin_kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path.write_text(yaml.safe_dump(document))
    return path


def state(clusters: dict[str, KubeApiServer], name: str) -> tuple[int, dict[str, str], str]:
    """A copy's replicas, medcloud annotations and resourceVersion."""
    got = apps(clusters[name]).read_namespaced_deployment(WORKLOAD, NAMESPACE)
    annotations = {
        key: value
        for key, value in (got.metadata.annotations or {}).items()
        if key.startswith("medcloud.io/")
    }
    return got.spec.replicas, annotations, got.metadata.resource_version


def service_annotations(clusters: dict[str, KubeApiServer], name: str) -> dict[str, str]:
    got = core(clusters[name]).read_namespaced_service(WORKLOAD, NAMESPACE)
    return got.metadata.annotations or {}


async def run_forward(driver: KubernetesDriver, steps=FORWARD) -> None:
    for step in steps:
        outcome = await driver.run(step, SYSTEM, context())
        assert outcome.ok, f"{step}: {outcome.reason}"


async def test_a_failover_moves_the_replicas_to_the_standby_and_marks_it_active(fresh, driver):
    await run_forward(driver)

    primary_replicas, primary_annotations, _ = state(fresh, PRIMARY)
    standby_replicas, standby_annotations, _ = state(fresh, STANDBY)
    assert (primary_replicas, standby_replicas) == (0, PRIMARY_REPLICAS)
    assert primary_annotations == {
        REPLICAS_BEFORE_FAILOVER: "3",
        ACTIVE_COPY: "fenced",
        FAILOVER_ID: "failover-1",
    }
    assert standby_annotations == {
        PROMOTED_REPLICAS: "3",
        ACTIVE_COPY: "standby",
        FAILOVER_ID: "failover-1",
    }
    assert service_annotations(fresh, STANDBY)[ACTIVE_COPY] == "standby"
    assert service_annotations(fresh, PRIMARY)[ACTIVE_COPY] == "fenced"
    assert (await driver.run(Step.RECORD, SYSTEM, context())).ok


async def test_every_step_run_twice_changes_nothing_more(fresh, driver):
    for step in FORWARD:
        first = await driver.run(step, SYSTEM, context())
        after_first = (state(fresh, PRIMARY), state(fresh, STANDBY))
        again = await driver.run(step, SYSTEM, context())
        assert first.ok and again.ok, (step, first.reason, again.reason)
        after_again = (state(fresh, PRIMARY), state(fresh, STANDBY))
        assert [s[:2] for s in after_again] == [s[:2] for s in after_first], step
    # The saved count survives the second fence, which finds the primary at 0 already.
    assert state(fresh, PRIMARY)[:2] == (
        0,
        {REPLICAS_BEFORE_FAILOVER: "3", ACTIVE_COPY: "fenced", FAILOVER_ID: "failover-1"},
    )
    assert state(fresh, STANDBY)[0] == PRIMARY_REPLICAS

    # Someone scales the fenced primary up by hand: fencing again scales it down and keeps the
    # count from before the failover, not the one found now.
    apps(fresh[PRIMARY]).patch_namespaced_deployment_scale(
        WORKLOAD, NAMESPACE, {"spec": {"replicas": 1}}
    )
    assert (await driver.run(Step.FENCE_PRIMARY, SYSTEM, context())).ok
    assert state(fresh, PRIMARY)[0] == 0
    assert state(fresh, PRIMARY)[1][REPLICAS_BEFORE_FAILOVER] == "3"


async def test_undoing_the_steps_in_reverse_restores_both_copies(fresh, driver):
    await run_forward(driver)
    for step in reversed(FORWARD):
        outcome = await driver.undo(step, SYSTEM, context())
        assert outcome.ok, f"{step}: {outcome.reason}"

    primary_replicas, primary_annotations, _ = state(fresh, PRIMARY)
    standby_replicas, standby_annotations, _ = state(fresh, STANDBY)
    assert (primary_replicas, standby_replicas) == (PRIMARY_REPLICAS, 0)
    assert REPLICAS_BEFORE_FAILOVER not in primary_annotations
    assert primary_annotations[ACTIVE_COPY] == standby_annotations[ACTIVE_COPY] == "primary"
    assert service_annotations(fresh, STANDBY)[ACTIVE_COPY] == "primary"
    # Undoing again finds nothing saved and leaves the primary as it is.
    assert (await driver.undo(Step.FENCE_PRIMARY, SYSTEM, context())).ok
    assert state(fresh, PRIMARY)[0] == PRIMARY_REPLICAS


async def test_a_dry_run_changes_nothing_and_names_a_missing_standby(fresh, driver):
    before = (state(fresh, PRIMARY), state(fresh, STANDBY))
    for step in (*FORWARD, Step.RECORD):
        outcome = await driver.run(step, SYSTEM, context(dry_run=True))
        assert outcome.ok, f"{step}: {outcome.reason}"
    for step in reversed(FORWARD):
        assert (await driver.undo(step, SYSTEM, context(dry_run=True))).ok, step
    assert (state(fresh, PRIMARY), state(fresh, STANDBY)) == before

    elsewhere = Endpoint("carrier-dc", STANDBY, ELSEWHERE, WORKLOAD)
    orphan = SystemCopies("hospital-a", "his", "kubernetes", SYSTEM.primary, elsewhere)
    outcome = await driver.run(Step.PROMOTE_STANDBY, orphan, context(dry_run=True))
    assert not outcome.ok
    assert f"standby Deployment {ELSEWHERE}/his missing in cluster carrier-public" in outcome.reason
    assert "404" in outcome.reason
    # The fence itself would still work: it needs only the primary.
    assert (await driver.run(Step.FENCE_PRIMARY, orphan, context(dry_run=True))).ok
    assert (state(fresh, PRIMARY), state(fresh, STANDBY)) == before


async def test_a_missing_deployment_or_an_unknown_cluster_fails_the_step(fresh, driver):
    elsewhere = Endpoint("carrier-dc", STANDBY, NAMESPACE, "pacs")
    missing = SystemCopies("hospital-a", "his", "kubernetes", SYSTEM.primary, elsewhere)
    outcome = await driver.run(Step.PROMOTE_STANDBY, missing, context())
    assert not outcome.ok
    assert (
        f"standby Deployment {NAMESPACE}/pacs missing in cluster carrier-public" in outcome.reason
    )

    nowhere = Endpoint("carrier-dc", "carrier-other", NAMESPACE, WORKLOAD)
    unknown = SystemCopies("hospital-a", "his", "kubernetes", SYSTEM.primary, nowhere)
    for step in FORWARD:
        outcome = await driver.run(step, unknown, context())
        assert not outcome.ok and "'carrier-other'" in outcome.reason, step
    assert state(fresh, PRIMARY)[0] == PRIMARY_REPLICAS


async def test_an_unreachable_primary_is_fenced_only_when_its_site_is_down(fresh, tmp_path):
    dead = unreachable_kubeconfig(fresh[PRIMARY], tmp_path / "dead.kubeconfig")
    driver = KubernetesDriver(
        {PRIMARY: dead, STANDBY: fresh[STANDBY].admin_kubeconfig}, verify_ready=False
    )
    try:
        refused = await driver.run(Step.FENCE_PRIMARY, SYSTEM, context())
        assert not refused.ok
        assert "primary cluster hospital-private is unreachable" in refused.reason
        assert "Connection refused" in refused.reason

        isolated = await driver.run(Step.FENCE_PRIMARY, SYSTEM, context(primary_site_down=True))
        assert isolated.ok and "isolation" in isolated.reason

        dry = await driver.run(Step.FENCE_PRIMARY, SYSTEM, context(dry_run=True))
        assert not dry.ok and "hospital-private" in dry.reason
    finally:
        driver.close()


async def test_a_promotion_rerun_after_the_primary_vanished_keeps_the_count(
    fresh, driver, tmp_path
):
    await run_forward(driver, (Step.FENCE_PRIMARY, Step.PROMOTE_STANDBY))
    dead = unreachable_kubeconfig(fresh[PRIMARY], tmp_path / "dead.kubeconfig")
    cut_off = KubernetesDriver(
        {PRIMARY: dead, STANDBY: fresh[STANDBY].admin_kubeconfig}, verify_ready=False
    )
    try:
        outcome = await cut_off.run(Step.PROMOTE_STANDBY, SYSTEM, context(primary_site_down=True))
        assert outcome.ok, outcome.reason
        assert state(fresh, STANDBY)[0] == PRIMARY_REPLICAS
        verified = await cut_off.run(Step.VERIFY, SYSTEM, context(primary_site_down=True))
        assert verified.ok, verified.reason
    finally:
        cut_off.close()


async def test_verify_waits_for_ready_replicas_that_never_come_without_nodes(fresh, driver):
    await run_forward(driver, (Step.FENCE_PRIMARY, Step.PROMOTE_STANDBY))
    assert (await driver.run(Step.VERIFY, SYSTEM, context())).ok
    strict = KubernetesDriver(
        {name: cluster.admin_kubeconfig for name, cluster in fresh.items()},
        verify_ready=True,
        verify_timeout_seconds=0.5,
        verify_interval_seconds=0.1,
    )
    try:
        outcome = await strict.run(Step.VERIFY, SYSTEM, context())
    finally:
        strict.close()
    assert not outcome.ok
    assert "3 ready replicas missing" in outcome.reason and "carrier-public" in outcome.reason


async def test_verify_fails_while_the_primary_still_runs(fresh, driver):
    await run_forward(driver, (Step.PROMOTE_STANDBY,))
    outcome = await driver.run(Step.VERIFY, SYSTEM, context())
    assert not outcome.ok
    assert f"primary Deployment {NAMESPACE}/his in cluster hospital-private" in outcome.reason


POLICY = ProtectionPolicy(
    system_id="his",
    tier=4,
    rpo_seconds=3600,
    rto_seconds=14400,
    backup_schedule_seconds=1800,
    retention_days=30,
    targets=(Target(TargetKind.SAME_CITY_DR, "carrier-dc"),),
)


@pytest.fixture(scope="module")
def velero_crds(clusters) -> KubeApiServer:
    """The standby cluster with Velero's CRDs and namespace; the primary has neither."""
    cluster = clusters[STANDBY]
    kubectl = [str(venv_bin() / "kubectl"), "--kubeconfig", str(cluster.admin_kubeconfig)]
    for args in (
        ("apply", "-f", str(MANIFESTS / "velero-crds.yaml")),
        (
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/schedules.velero.io",
            "crd/backups.velero.io",
            "crd/restores.velero.io",
        ),
        ("create", "namespace", "velero"),
    ):
        result = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=90)
        assert result.returncode == 0 or "AlreadyExists" in result.stderr, result.stderr
    return cluster


async def test_velero_manifests_apply_and_read_back(velero_crds, driver):
    moved = SystemCopies(
        "hospital-a",
        "his",
        "kubernetes",
        SYSTEM.primary,
        Endpoint("carrier-dc", STANDBY, f"{NAMESPACE}-dr", WORKLOAD),
    )
    manifests = (
        schedule_for(moved, POLICY),
        backup_for(moved, POLICY, "his-before-upgrade"),
        restore_for(moved, "his-before-upgrade"),
    )
    for manifest in manifests:
        for _ in range(2):  # applying again is harmless
            outcome = await driver.apply_velero(STANDBY, manifest)
            assert outcome.ok, outcome.reason

    objects = client.CustomObjectsApi(
        config.new_client_from_config(str(velero_crds.admin_kubeconfig))
    )

    def read(plural: str, name: str) -> dict:
        return objects.get_namespaced_custom_object("velero.io", "v1", "velero", plural, name)

    schedule = read("schedules", "hospital-a-his")
    assert schedule["metadata"]["labels"] == {
        "medcloud.io/hospital": "hospital-a",
        "medcloud.io/system": "his",
    }
    assert schedule["spec"]["schedule"] == "*/30 * * * *"
    assert schedule["spec"]["template"]["ttl"] == "720h0m0s"
    assert schedule["spec"]["template"]["includedNamespaces"] == [NAMESPACE]
    backup = read("backups", "his-before-upgrade")
    assert backup["spec"]["includedNamespaces"] == [NAMESPACE]
    assert backup["spec"]["ttl"] == "720h0m0s"
    restore = read("restores", "restore-his-before-upgrade")
    assert restore["spec"]["backupName"] == "his-before-upgrade"
    assert restore["spec"]["namespaceMapping"] == {NAMESPACE: f"{NAMESPACE}-dr"}

    # A cluster without Velero says so, with the API server's answer.
    refused = await driver.apply_velero(PRIMARY, manifests[0])
    assert not refused.ok and "404" in refused.reason and "hospital-private" in refused.reason


@pytest.mark.parametrize(
    ("interval_seconds", "cron"),
    [
        (30, "* * * * *"),  # cron's floor
        (60, "* * * * *"),
        (7 * 60, "*/6 * * * *"),  # 7 does not divide the hour: the next step down that does
        (45 * 60, "*/30 * * * *"),
        (3600, "0 * * * *"),
        (5 * 3600, "0 */4 * * *"),
        (30 * 3600, "0 0 * * *"),
        (10 * 86400, "0 0 * * 0"),
    ],
)
def test_the_cron_runs_at_least_as_often_as_the_policy(interval_seconds, cron):
    assert cron_for(interval_seconds) == cron


def test_a_schedule_name_is_a_dns_label_leaving_room_for_velero_backup_names():
    long = "x" * 60
    first = SystemCopies(long, f"{long}-a", "kubernetes", SYSTEM.primary, SYSTEM.standby)
    second = SystemCopies(long, f"{long}-b", "kubernetes", SYSTEM.primary, SYSTEM.standby)
    names = {schedule_for(s, POLICY)["metadata"]["name"] for s in (first, second)}
    assert len(names) == 2
    for name in names:
        # Velero names each scheduled Backup `<schedule>-<14-digit timestamp>`.
        assert DNS_LABEL.match(f"{name}-20260101000000"), name
