"""Placement figures for the scheduling domain, in process:

- per-instance latency at 20,000 hosts, asking every rule about every host (the placer before its
  fast path, still used for rules it does not know) and on the fast path;
- a province-scale batch (20,000 hosts in 1,000 centres, systems totalling about 50,000
  instances) through `place_batch`: time and instances per second; then `place_system` p50/p99
  for 200 further systems on the loaded region;
- packing quality: hosts used by the batch placer with the packing weighers, greedy and then
  consolidated, against an exact CP-SAT solution (PyPI `ortools`) of the same small problem, for
  the bench's own problem and a few more seeded ones.

Prints figures; asserts nothing."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from medcloud.scheduling.domain.model import (
    BusinessSystem,
    CentreRole,
    DataClassification,
    HostOption,
    Ownership,
    PoolOption,
    RegionView,
    Role,
    RoleCount,
    StorageClass,
    SystemKind,
)
from medcloud.scheduling.domain.placement import Decision, Refusal, place_batch, place_system
from medcloud.scheduling.domain.progress import WorkingView
from medcloud.scheduling.domain.rules import (
    DEFAULT_WEIGHERS,
    PACKING_WEIGHERS,
    CapacityFilter,
    FreeVcpuWeigher,
    PrimaryStandbyAntiAffinityFilter,
)

HOSTS = 20_000
CENTRES = 1_000
TARGET_INSTANCES = 50_000
INCREMENTAL_SYSTEMS = 200
LATENCY_SAMPLES = 10
PACKING_HOSTS = 40
PACKING_INSTANCES = 120
# Besides the problem drawn from the bench's random stream, one per seed: one problem says little
# about a heuristic.
PACKING_SEEDS = (1, 2, 3, 4)
CP_SAT_SECONDS = 60.0

PROVINCES = {
    "Guangdong": ("Guangzhou", "Shenzhen", "Foshan", "Dongguan", "Zhuhai", "Shantou", "Zhanjiang"),
    "Sichuan": ("Chengdu", "Mianyang", "Deyang", "Yibin", "Nanchong"),
    "Hubei": ("Wuhan", "Yichang", "Xiangyang", "Jingzhou"),
    "Zhejiang": ("Hangzhou", "Ningbo", "Wenzhou", "Shaoxing", "Jiaxing"),
    "Jiangsu": ("Nanjing", "Suzhou", "Wuxi", "Changzhou", "Xuzhou", "Nantong"),
    "Shandong": ("Jinan", "Qingdao", "Yantai", "Weifang", "Linyi"),
    "Henan": ("Zhengzhou", "Luoyang", "Kaifeng", "Nanyang"),
    "Hunan": ("Changsha", "Zhuzhou", "Xiangtan", "Hengyang"),
}
CITIES = [(city, province) for province, cities in PROVINCES.items() for city in cities]
ROLE_MIX = (
    [CentreRole.HOSPITAL_ROOM] * 5
    + [CentreRole.CARRIER_PRODUCTION] * 2
    + [CentreRole.CARRIER_STANDBY] * 2
    + [CentreRole.BACKUP_CENTRE]
    + [CentreRole.BRANCH_HOSPITAL] * 2
)
# kind, vCPU, memory GiB, storage GiB, classification choices
SYSTEM_MIX = (
    (SystemKind.HIS, (8, 16), (32, 64), 500, DataClassification.PERSONAL_HEALTH_DATA),
    (SystemKind.EMR, (8, 16), (32, 64), 400, DataClassification.PERSONAL_HEALTH_DATA),
    (SystemKind.LIS, (4, 8), (16, 32), 200, DataClassification.LIMITED_DATA_SET),
    (SystemKind.RIS, (4, 8), (16, 32), 200, DataClassification.LIMITED_DATA_SET),
    (SystemKind.PACS_IMAGES, (8, 16), (32, 64), 2000, DataClassification.PERSONAL_HEALTH_DATA),
    (SystemKind.PORTAL, (2, 4), (4, 8), 50, DataClassification.PUBLIC),
    (SystemKind.OA, (2, 4), (8, 16), 50, DataClassification.INTERNAL),
)


def region(rng: random.Random) -> RegionView:
    hosts: list[HostOption] = []
    pools: list[PoolOption] = []
    per_centre = HOSTS // CENTRES
    for c in range(CENTRES):
        city, province = rng.choice(CITIES)
        role = rng.choice(ROLE_MIX)
        centre_id = f"dc-{c:04d}"
        for h in range(per_centre):
            # Carrier rooms and backup centres run a public cluster beside the private one.
            public = role is not CentreRole.HOSPITAL_ROOM and h % 2 == 1
            ownership = Ownership.PUBLIC if public else Ownership.PRIVATE
            hosts.append(
                HostOption(
                    host_id=f"{centre_id}-h{h:02d}",
                    rack=f"r{h // 5}",
                    cluster_id=f"{centre_id}-{ownership.value}",
                    centre_id=centre_id,
                    city=city,
                    province=province,
                    centre_role=role,
                    ownership=ownership,
                    free_vcpu=rng.choice((64, 96, 128)),
                    free_memory_gib=rng.choice((256, 384, 512)),
                )
            )
        for storage_class, free_gib in (
            (StorageClass.BLOCK_FC_SAN, 200_000),
            (StorageClass.FILE_NAS, 500_000),
            (StorageClass.DISTRIBUTED, 300_000),
        ):
            if rng.random() < 0.9:
                pools.append(
                    PoolOption(
                        f"{centre_id}-{storage_class.value}", centre_id, storage_class, free_gib
                    )
                )
    return RegionView(tuple(hosts), tuple(pools))


def random_system(rng: random.Random, name: str) -> BusinessSystem:
    kind, vcpus, memories, storage_gib, classification = rng.choice(SYSTEM_MIX)
    tier = rng.choice((0, 1, 2, 3, 4, 5, 5, 6))
    counts = [RoleCount(Role.PRIMARY, rng.choice((1, 1, 2)))]
    if tier >= 2:
        counts.append(RoleCount(Role.STANDBY, 1))
    if rng.random() < 0.3:
        counts.append(RoleCount(Role.REPLICA, rng.choice((1, 2))))
    return BusinessSystem(
        id=name,
        kind=kind,
        roles=tuple(counts),
        vcpu=rng.choice(vcpus),
        memory_gib=rng.choice(memories),
        classification=classification,
        dr_tier=tier,
        storage_gib=storage_gib,
    )


def systems_totalling(rng: random.Random, instances: int, prefix: str) -> list[BusinessSystem]:
    systems, total = [], 0
    while total < instances:
        system = random_system(rng, f"{prefix}-{len(systems):05d}")
        systems.append(system)
        total += len(system.instances())
    return systems


class AskEveryHost(FreeVcpuWeigher):
    """The default vCPU weigher under another type, which the fast path does not know: placement
    then asks every rule about every host, as it did before the fast path."""


def per_instance_latency(view: RegionView, rng: random.Random) -> None:
    every_host = (AskEveryHost(), *DEFAULT_WEIGHERS[1:])
    samples = [random_system(rng, f"lat-{k}") for k in range(LATENCY_SAMPLES)]
    for label, weighers in (
        ("every rule x every host", every_host),
        ("fast path", DEFAULT_WEIGHERS),
    ):
        instances, start = 0, time.perf_counter()
        for system in samples:
            place_system(system, view, weighers=weighers)
            instances += len(system.instances())
        ms = (time.perf_counter() - start) * 1000 / instances
        print(f"  {label:<24} {ms:8.2f} ms per instance ({instances} instances)")


def loaded(view: RegionView, systems: list[BusinessSystem], results) -> RegionView:
    working = WorkingView(view)
    for system, result in zip(systems, results, strict=True):
        if isinstance(result, Decision):
            for a in result.assignments:
                working.reserve(
                    a.host_id, system.vcpu, system.memory_gib, a.pool_id, system.storage_gib
                )
    return working.snapshot()


def province_scale(view: RegionView, rng: random.Random) -> None:
    systems = systems_totalling(rng, TARGET_INSTANCES, "sys")
    instances = sum(len(s.instances()) for s in systems)
    start = time.perf_counter()
    results = place_batch(systems, view)
    seconds = time.perf_counter() - start
    placed = sum(len(r.assignments) for r in results if isinstance(r, Decision))
    refused = sum(1 for r in results if not isinstance(r, Decision))
    print(
        f"  place_batch: {len(systems)} systems, {instances} instances in {seconds:.1f} s "
        f"({instances / seconds:.0f} instances/s); {placed} placed, {refused} systems refused"
    )
    loaded_view = loaded(view, systems, results)
    further = [random_system(rng, f"more-{k:03d}") for k in range(INCREMENTAL_SYSTEMS)]
    place_system(further[0], loaded_view)  # indexes the loaded view once, as a service would
    latencies = []
    for system in further:
        start = time.perf_counter()
        place_system(system, loaded_view)
        latencies.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"  place_system on the loaded region, {INCREMENTAL_SYSTEMS} systems: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


def packing(rng: random.Random) -> float | None:
    """Prints one packing problem's figures; returns consolidated hosts / CP-SAT hosts, if solved."""
    hosts = tuple(
        HostOption(
            host_id=f"p-h{h:02d}",
            rack="r1",
            cluster_id="c-private",
            centre_id="c",
            city="Guangzhou",
            province="Guangdong",
            centre_role=CentreRole.HOSPITAL_ROOM,
            ownership=Ownership.PRIVATE,
            free_vcpu=32,
            free_memory_gib=128,
        )
        for h in range(PACKING_HOSTS)
    )
    view = RegionView(hosts)
    systems, total = [], 0
    while total < PACKING_INSTANCES:
        standbys = rng.choice((0, 1))
        primaries = min(rng.choice((1, 2)), PACKING_INSTANCES - total - standbys) or 1
        roles = [RoleCount(Role.PRIMARY, primaries)] + (
            [RoleCount(Role.STANDBY, 1)] if standbys else []
        )
        system = BusinessSystem(
            id=f"pack-{len(systems):03d}",
            kind=SystemKind.CUSTOM,
            roles=tuple(roles),
            vcpu=rng.choice((2, 4, 8, 12)),
            memory_gib=rng.choice((8, 16, 32, 48)),
            classification=DataClassification.INTERNAL,
            dr_tier=0,
        )
        systems.append(system)
        total += len(system.instances())
    filters = (PrimaryStandbyAntiAffinityFilter(), CapacityFilter())
    greedy = place_batch(systems, view, filters=filters, weighers=PACKING_WEIGHERS)
    start = time.perf_counter()
    results = place_batch(
        systems, view, filters=filters, weighers=PACKING_WEIGHERS, consolidate=True
    )
    seconds = time.perf_counter() - start
    greedy_hosts, ours = hosts_used(greedy), hosts_used(results)
    refused = sum(1 for r in results if not isinstance(r, Decision))
    exact, status = cp_sat_hosts(systems, hosts)
    print(
        f"  {total} instances of {len(systems)} systems on {PACKING_HOSTS} hosts (32 vCPU, 128 GiB)"
    )
    print(
        f"    batch placer, packing weighers: {greedy_hosts} hosts greedy, {ours} consolidated "
        f"({seconds:.2f} s; {refused} systems refused)"
    )
    if exact is None:
        print(f"    CP-SAT: {status}")
        return None
    print(
        f"    CP-SAT ({status}): {exact} hosts; ratio {ours / exact:.3f} consolidated, "
        f"{greedy_hosts / exact:.3f} greedy"
    )
    return ours / exact


def hosts_used(results: list[Decision | Refusal]) -> int:
    return len({a.host_id for r in results if isinstance(r, Decision) for a in r.assignments})


SOLVER_PYTHON = Path(__file__).resolve().parents[1] / ".venv-solver" / "bin" / "python"


def cp_sat_hosts(systems: list[BusinessSystem], hosts) -> tuple[int | None, str]:
    """Hosts used by CP-SAT's packing of the same instances, from bench/packing_solver.py in its
    own environment (ortools pins an older protobuf than medcloud's)."""
    if not SOLVER_PYTHON.exists():
        return None, "not run: `make bench` makes .venv-solver with ortools"
    problem = {
        "hosts": [{"vcpu": h.free_vcpu, "memory_gib": h.free_memory_gib} for h in hosts],
        "instances": [
            {"system": s.id, "role": i.role.value, "vcpu": s.vcpu, "memory_gib": s.memory_gib}
            for s in systems
            for i in s.instances()
        ],
        "seconds": CP_SAT_SECONDS,
    }
    result = subprocess.run(
        [str(SOLVER_PYTHON), str(Path(__file__).with_name("packing_solver.py"))],
        input=json.dumps(problem),
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(result.stdout)
    return answer["hosts_used"], answer["status"]


def main() -> None:
    rng = random.Random(78)
    view = region(rng)
    print(f"region: {len(view.hosts)} hosts in {CENTRES} centres, {len(view.pools)} pools")
    print("per-instance latency at 20,000 hosts:")
    per_instance_latency(view, rng)
    print("province scale:")
    province_scale(view, rng)
    print("packing quality:")
    ratios = [packing(rng)] + [packing(random.Random(seed)) for seed in PACKING_SEEDS]
    solved = [ratio for ratio in ratios if ratio is not None]
    if solved:
        print(
            f"  consolidated / CP-SAT over {len(solved)} problems: {min(solved):.3f}-{max(solved):.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
