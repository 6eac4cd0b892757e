"""`medcloud-devstack` (`make run`): the whole control plane on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from medcloud.devstack.kube import REGION_CLUSTERS
from medcloud.devstack.processes import StackError
from medcloud.devstack.stack import KNOWN_SERVICES, LocalStack


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medcloud-devstack", description=__doc__)
    parser.add_argument("--region", default="panyu", help="region name (default: panyu, annex A)")
    parser.add_argument(
        "--work-dir", type=Path, help="where data and logs go (default: a new temp dir)"
    )
    parser.add_argument(
        "--etcd-port", type=int, default=0, help="etcd client port (default: a free one)"
    )
    parser.add_argument(
        "--nats-port", type=int, default=0, help="NATS client port (default: a free one)"
    )
    parser.add_argument(
        "--services",
        help=f"comma-separated subset of: {', '.join(KNOWN_SERVICES)} (default: all present)",
    )
    parser.add_argument(
        "--no-clusters",
        action="store_true",
        help="start no Kubernetes API servers (by default: management, hospital-private, carrier-public)",
    )
    parser.add_argument(
        "--no-example", action="store_true", help="do not register annex A's reference region"
    )
    parser.add_argument(
        "--exit-after-start",
        action="store_true",
        help="stop again once everything is healthy (a smoke test)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="medcloud-devstack-"))
    services = (
        tuple(s.strip() for s in args.services.split(",") if s.strip()) if args.services else None
    )
    unknown = [s for s in services or () if s not in KNOWN_SERVICES]
    if unknown:
        print(
            f"medcloud-devstack: --services: unknown service(s) {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    clusters = () if args.no_clusters else REGION_CLUSTERS
    stack = LocalStack(work_dir, args.region, services, args.etcd_port, args.nats_port, clusters)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"medcloud-devstack: starting region {args.region!r} in {work_dir}", flush=True)
    try:
        stack.start()
    except StackError as error:
        print(f"medcloud-devstack: {error}", file=sys.stderr)
        return 1
    print("medcloud-devstack: ready\n" + stack.describe(), flush=True)
    if not args.no_example:
        print("\n" + stack.apply_reference_region(), flush=True)
        print(stack.start_agents(), flush=True)
        try:
            print("\n" + stack.run_examples(), flush=True)
        except StackError as error:
            print(f"medcloud-devstack: {error}", file=sys.stderr)
    print("\nTo use it from another shell:")
    for name, value in stack.client_environment().items():
        print(f"  export {name}={value}")
    if stack.clusters:
        print(
            f"  export KUBECONFIG={stack.kubeconfig}   # contexts: {', '.join(stack.cluster_names)}"
        )
    print("\nCtrl-C stops everything.", flush=True)
    exit_code = 0
    while not stopping and not args.exit_after_start:
        crashed = stack.crashed()
        if crashed:
            print(
                f"medcloud-devstack: {', '.join(crashed)} stopped unexpectedly; see the logs in "
                f"{work_dir / 'logs'}",
                file=sys.stderr,
            )
            exit_code = 1
            break
        time.sleep(0.5)
    print("medcloud-devstack: stopping", flush=True)
    stack.stop()
    if not args.work_dir and exit_code == 0:
        shutil.rmtree(work_dir, ignore_errors=True)
    print("medcloud-devstack: stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
