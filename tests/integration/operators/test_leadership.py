"""Leader election between operator replicas over a Lease in a real kube-apiserver: one leads, a
standby takes over at once when the leader releases and within a lease when it hangs, and a
leader that can no longer renew says so before a standby may act."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from medcloud.devstack.kube import KubeApiServer
from medcloud.operators.leadership import LeaseElection, LeaseTiming
from tests.support.identities import kube_apiserver

pytestmark = pytest.mark.integration

NAMESPACE, LEASE = "default", "medcloud-operator"
TIMING = LeaseTiming(lease_seconds=2)


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory) -> Iterator[KubeApiServer]:
    server = kube_apiserver("leases", etcd_server.endpoint, tmp_path_factory.mktemp("leases"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(cluster.admin_kubeconfig))
    yield api
    try:
        client.CoordinationV1Api(api).delete_namespaced_lease(LEASE, NAMESPACE)
    except client.ApiException as error:
        assert error.status == 404
    api.close()


def replica(api: client.ApiClient, name: str) -> LeaseElection:
    return LeaseElection(api, NAMESPACE, LEASE, name, TIMING)


def holder(api: client.ApiClient) -> str:
    return (
        client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity
    )


async def leads_within(election: LeaseElection, seconds: float) -> bool:
    stop = asyncio.Event()
    try:
        return await asyncio.wait_for(election.acquire(stop), seconds)
    except TimeoutError:
        return False


async def test_one_leads_and_a_standby_takes_over_when_it_releases(api):
    first, second = replica(api, "replica-a"), replica(api, "replica-b")
    assert await leads_within(first, 5)
    release = asyncio.Event()
    holding = asyncio.create_task(first.hold(release))

    # While the leader renews, the standby waits for longer than a whole lease.
    assert not await leads_within(second, 3 * TIMING.lease_seconds)
    assert holder(api) == "replica-a"

    release.set()
    assert await holding is True
    assert await leads_within(second, TIMING.lease_seconds / 2)
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NAMESPACE)
    assert lease.spec.holder_identity == "replica-b"
    assert lease.spec.lease_transitions == 0  # released, not taken from a live holder


async def test_a_hung_leader_is_replaced_once_its_lease_runs_out(api):
    first, second = replica(api, "replica-a"), replica(api, "replica-b")
    assert await leads_within(first, 5)
    # replica-a now hangs: it neither renews nor releases.
    started = asyncio.get_running_loop().time()
    assert await leads_within(second, 4 * TIMING.lease_seconds)
    assert asyncio.get_running_loop().time() - started >= TIMING.lease_seconds * 0.9
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NAMESPACE)
    assert lease.spec.holder_identity == "replica-b"
    assert lease.spec.lease_transitions == 1


async def test_a_leader_that_cannot_renew_stops_before_a_standby_may_act(api):
    first = replica(api, "replica-a")
    assert await leads_within(first, 5)
    holding = asyncio.create_task(first.hold(asyncio.Event()))
    await asyncio.sleep(TIMING.retry_seconds)
    # Another writer takes the Lease (as a replica whose clock ran ahead might).
    leases = client.CoordinationV1Api(api)
    lease = leases.read_namespaced_lease(LEASE, NAMESPACE)
    lease.spec.holder_identity = "intruder"
    leases.replace_namespaced_lease(LEASE, NAMESPACE, lease)
    lost = await asyncio.wait_for(holding, TIMING.lease_seconds * 2)
    assert lost is False
    assert holder(api) == "intruder"
