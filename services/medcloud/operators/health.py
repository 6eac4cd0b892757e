"""The operator's health endpoint for the kubelet. The operator serves no API, so an exec probe
could only ask whether its process exists; this answers from inside the event loop, leader and
standby alike (a standby runs no kopf, so kopf's own liveness endpoint would not serve it).

- `/livez`: 200 while the event loop answers, unless this replica leads and is past its Lease's
  renew deadline (it is about to stop acting and exit).
- `/readyz`: 200 once the replica has reached the API server and read or written the Lease (its
  credentials and RBAC work); the body says `leader` or `standby`."""

from __future__ import annotations

import json
import socket

from aiohttp import web

from medcloud.operators.leadership import LeaseElection
from medcloud.runtime.config import HostPort


class HealthEndpoint:
    def __init__(self, election: LeaseElection, listen: HostPort) -> None:
        self._election = election
        self._listen = listen
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Bound here so that port 0 (tests) yields the port actually taken.
        sock = socket.create_server((self._listen.host, self._listen.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _state(self) -> dict[str, object]:
        election = self._election
        return {
            "identity": election.identity,
            "role": "leader" if election.leading else "standby",
            "reachedApi": election.reached_api,
            "renewing": election.renewing,
        }

    async def _livez(self, _: web.Request) -> web.Response:
        state = self._state()
        return _json(state, 200 if state["renewing"] else 503)

    async def _readyz(self, _: web.Request) -> web.Response:
        state = self._state()
        return _json(state, 200 if state["reachedApi"] else 503)


def _json(body: dict[str, object], status: int) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
