"""Local Kubernetes API server figures: time from start to /readyz (one cluster, and the region's
three launched together), resident memory of one kube-apiserver at idle, and the warm (cached)
build time. Prints figures; asserts nothing.

The cold build is not repeated here (it takes minutes and both cores): run
`FORCE=1 GOCACHE=$(mktemp -d) GOMODCACHE=$(mktemp -d) tools/build-go-server.sh kube-apiserver DIR`
to measure it; the script prints its download and compile times."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medcloud.devstack.kube import REGION_CLUSTERS, KubeApiServer
from medcloud.devstack.servers import EtcdServer

ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    started = time.perf_counter()
    subprocess.run(
        [
            str(ROOT / "tools/build-go-server.sh"),
            "kube-apiserver",
            str(Path(sys.executable).parent),
        ],
        check=True,
        capture_output=True,
    )
    print(f"kube-apiserver warm build (stamp hit): {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory() as work_text:
        work = Path(work_text)
        etcd = EtcdServer(work / "etcd", work / "etcd.log")
        etcd.start()
        try:
            singles = []
            for round_ in range(ROUNDS):
                cluster = KubeApiServer("management", etcd.endpoint, work / f"single{round_}")
                began = time.perf_counter()
                cluster.start()
                singles.append(time.perf_counter() - began)
                if round_ == ROUNDS - 1:
                    time.sleep(30)
                    pid = cluster._process.process.pid  # type: ignore[union-attr]
                    print(
                        f"kube-apiserver resident memory after 30 s idle: {_rss_mib(pid):.0f} MiB"
                    )
                cluster.stop()
            print(
                f"start to /readyz, one cluster: best {min(singles):.2f} s, "
                f"worst {max(singles):.2f} s of {ROUNDS}"
            )
            clusters = [
                KubeApiServer(n, etcd.endpoint, work / f"region-{n}") for n in REGION_CLUSTERS
            ]
            began = time.perf_counter()
            for cluster in clusters:
                cluster.launch()
            for cluster in clusters:
                cluster.wait_ready()
            print(
                f"start to /readyz, three clusters launched together: {time.perf_counter() - began:.2f} s"
            )
            for cluster in clusters:
                cluster.stop()
        finally:
            etcd.stop()


if __name__ == "__main__":
    main()
