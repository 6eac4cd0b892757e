"""gRPC overhead: unary calls/s to a trivial RPC through medcloud's gRPC runtime (interceptors for
tracing, metrics and error mapping, health, reflection) divided by calls/s to a bare grpc.aio
server with the same handler. Each server runs in its own process; the client is this process.
Prints figures; asserts nothing.

Runtime variants: "context only" is a service without an OTLP endpoint (trace context propagated,
spans not recorded); "spans recorded" samples every call (OTEL_TRACES_SAMPLER=always_on)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import grpc

from medcloud.devstack.processes import free_port

CALLS = 4000
ROUNDS = 3
CONCURRENCY = 16
SERVICE = "bench.Echo"


def _add_echo(server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            )
        ]
    )


async def _serve(kind: str, port: int) -> None:
    if kind == "bare":
        server = grpc.aio.server()
        _add_echo(server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()
        return
    from medcloud.runtime.config import HostPort
    from medcloud.runtime.grpc_server import GrpcServer, ServiceBinding
    from medcloud.runtime.telemetry import configure_telemetry

    configure_telemetry("bench", "bench", None)
    runtime = GrpcServer([ServiceBinding(SERVICE, _add_echo)], HostPort("127.0.0.1", port), 1.0)
    await runtime.start()
    await runtime.wait_for_termination()


async def _calls_per_second(address: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        echo = channel.unary_unary(f"/{SERVICE}/Echo")
        await echo(b"warm-up")
        per_worker = CALLS // CONCURRENCY

        async def worker() -> None:
            for _ in range(per_worker):
                await echo(b"hospital-site")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return per_worker * CONCURRENCY / (time.perf_counter() - started)


def _start(kind: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, **extra_env}
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)], env=env)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _answers(address):
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"{kind} server did not come up")
        time.sleep(0.1)
    return server, address


def _answers(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary(f"/{SERVICE}/Echo")(b"ping", timeout=1)
        except grpc.RpcError:
            return False
    return True


def main() -> None:
    variants = {
        "bare grpc.aio": ("bare", {}),
        "runtime, context only": ("runtime", {}),
        "runtime, spans recorded": ("runtime", {"OTEL_TRACES_SAMPLER": "always_on"}),
    }
    servers = {name: _start(kind, env) for name, (kind, env) in variants.items()}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(ROUNDS):  # interleaved so machine noise hits all alike
            for name, (_, address) in servers.items():
                rates[name].append(asyncio.run(_calls_per_second(address)))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    bare = max(rates["bare grpc.aio"])
    print(f"grpc, {CONCURRENCY} concurrent callers, {CALLS} unary calls, best of {ROUNDS}:")
    for name, values in rates.items():
        print(f"  {name:<26} {max(values):8.0f} calls/s   ratio {max(values) / bare:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(_serve(sys.argv[2], int(sys.argv[3])))
    else:
        main()
