"""`GET /metrics` in the Prometheus text format, so Prometheus or Thanos keeps the long-term
history: the newest sample of every series with its own timestamp, and monitoring's own counts."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from medcloud.monitoring.domain.samples import Sample

log = logging.getLogger(__name__)

PREFIX = "medcloud_"


def family_name(metric: str) -> str:
    return PREFIX + metric.replace(".", "_")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + body + "}" if body else ""


def exposition(
    samples: Iterable[Sample], own: Iterable[tuple[str, str, dict[str, str], float]]
) -> str:
    """`own` holds monitoring's own figures as (name, type, labels, value)."""
    families: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        series = sample.series
        labels = [("centre", series.centre_id), ("node", series.node_id), *series.labels]
        families[family_name(series.metric)].append(
            f"{_labels(labels)} {sample.value!r} {round(sample.observed_at * 1000)}"
        )
    lines: list[str] = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} gauge")
        lines.extend(name + row for row in families[name])
    typed: set[str] = set()
    for name, kind, labels, value in own:
        if name not in typed:
            lines.append(f"# TYPE {name} {kind}")
            typed.add(name)
        lines.append(f"{name}{_labels(sorted(labels.items()))} {value!r}")
    return "\n".join(lines) + "\n"


class MetricsEndpoint:
    """A deliberately small HTTP/1.1 server: one path, GET only, connection closed after each
    answer. Prometheus needs nothing more, and no web framework joins the dependencies."""

    def __init__(self, render: Callable[[], str], host: str, port: int) -> None:
        self._render = render
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._answer, self._host, self._port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=10)
            while (await asyncio.wait_for(reader.readline(), timeout=10)) not in (b"\r\n", b""):
                pass
            method, _, rest = request_line.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0]
            if method != "GET":
                status, body = "405 Method Not Allowed", "GET only\n"
            elif path.split("?", 1)[0] != "/metrics":
                status, body = "404 Not Found", "see /metrics\n"
            else:
                status, body = "200 OK", self._render()
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError) as error:
            log.debug("metrics request dropped", extra={"error": str(error)})
        finally:
            writer.close()
