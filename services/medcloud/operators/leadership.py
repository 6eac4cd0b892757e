"""Leader election over a Kubernetes Lease (coordination.k8s.io/v1), so that of several operator
replicas exactly one reconciles and a standby takes over when it stops or hangs.

The rules are client-go's: a candidate takes the Lease when it is free or when its record has not
changed for `lease_seconds` by the candidate's own clock (so clocks need not agree); the holder
renews every `retry_seconds` and gives up leadership when it could not renew for
`renew_deadline_seconds`, which is shorter than the lease, so two replicas never act at once.
Writes are compare-and-swap on the Lease's resourceVersion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    lease_seconds: float = 15.0

    @property
    def renew_deadline_seconds(self) -> float:
        return self.lease_seconds * 2 / 3

    @property
    def retry_seconds(self) -> float:
        return max(self.lease_seconds / 7.5, 0.2)


@dataclass(frozen=True)
class Observed:
    """A Lease record as one candidate last saw it, and when (its monotonic clock)."""

    holder: str
    renewed: str  # renewTime as the server returned it: a change means the holder is alive
    seen_at: float


def may_take(observed: Observed | None, identity: str, lease_seconds: float, now: float) -> bool:
    """Whether `identity` may write itself into the Lease now."""
    if observed is None or not observed.holder or observed.holder == identity:
        return True
    return now - observed.seen_at >= lease_seconds


class LeaseElection:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming = LeaseTiming(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._namespace, self._name, self._identity = namespace, name, identity
        self._timing = timing
        self._clock = clock
        self._observed: Observed | None = None
        self._leading = False
        self._last_renewal: float | None = None

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def reached_api(self) -> bool:
        """Whether it has read or written the Lease at least once (API server and RBAC work)."""
        return self._observed is not None

    @property
    def renewing(self) -> bool:
        """False for a leader past its renew deadline: it is about to stop acting."""
        if not self._leading or self._last_renewal is None:
            return True
        return self._clock() - self._last_renewal < self._timing.renew_deadline_seconds

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Waits until this replica leads (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            if await asyncio.to_thread(self._try_acquire_or_renew):
                log.info("leading: holds Lease %s/%s", self._namespace, self._name)
                self._leading, self._last_renewal = True, self._clock()
                return True
            if not announced and self._observed is not None:
                log.info("standing by: Lease %s is held by %s", self._name, self._observed.holder)
                announced = True
            await _sleep_unless(stop, self._timing.retry_seconds)
        return False

    async def hold(self, stop: asyncio.Event) -> bool:
        """Renews until `stop` is set (True: released for a standby) or the Lease could not be
        renewed within the renew deadline (False: leadership lost; stop acting at once)."""
        self._last_renewal = self._clock()
        while not stop.is_set():
            await _sleep_unless(stop, self._timing.retry_seconds)
            if stop.is_set():
                break
            if await asyncio.to_thread(self._try_acquire_or_renew):
                self._last_renewal = self._clock()
            elif not self.renewing:
                holder = self._observed.holder if self._observed else "nobody"
                log.error("lost leadership of Lease %s (now held by %s)", self._name, holder)
                self._leading = False
                return False
        await asyncio.to_thread(self._release)
        self._leading = False
        return True

    def _try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self._leases.read_namespaced_lease(self._name, self._namespace, **_timeout())
        except ApiException as error:
            if error.status != 404:
                log.warning("reading Lease %s: HTTP %s %s", self._name, error.status, error.reason)
                return False
            return self._create(now)
        except Exception as error:  # an unreachable API server is a failed attempt, not a crash
            log.warning("reading Lease %s: %s", self._name, error)
            return False
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        renewed = str(spec.renew_time)
        previous = self._observed
        if previous is None or (previous.holder, previous.renewed) != (holder, renewed):
            self._observed = Observed(holder, renewed, self._clock())
        if not may_take(self._observed, self._identity, self._timing.lease_seconds, self._clock()):
            return False
        taking_over = holder != self._identity
        spec.holder_identity = self._identity
        spec.lease_duration_seconds = max(int(self._timing.lease_seconds), 1)
        spec.renew_time = now
        if taking_over:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + (1 if holder else 0)
        lease.spec = spec
        try:  # resourceVersion from the read makes this a compare-and-swap
            written = self._leases.replace_namespaced_lease(
                self._name, self._namespace, lease, **_timeout()
            )
        except ApiException as error:
            if error.status != 409:
                log.warning("renewing Lease %s: HTTP %s %s", self._name, error.status, error.reason)
            return False
        except Exception as error:
            log.warning("renewing Lease %s: %s", self._name, error)
            return False
        self._observed = Observed(self._identity, str(written.spec.renew_time), self._clock())
        return True

    def _create(self, now: datetime) -> bool:
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self._name,
                namespace=self._namespace,
                labels={"app.kubernetes.io/part-of": "medcloud"},
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self._identity,
                lease_duration_seconds=max(int(self._timing.lease_seconds), 1),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            written = self._leases.create_namespaced_lease(self._namespace, lease, **_timeout())
        except ApiException as error:
            if error.status != 409:  # 409: another replica created it first
                log.warning("creating Lease %s: HTTP %s %s", self._name, error.status, error.reason)
            return False
        except Exception as error:
            log.warning("creating Lease %s: %s", self._name, error)
            return False
        self._observed = Observed(self._identity, str(written.spec.renew_time), self._clock())
        return True

    def _release(self) -> None:
        """Empties the holder so a standby takes over at its next retry, not a lease later."""
        try:
            lease = self._leases.read_namespaced_lease(self._name, self._namespace, **_timeout())
            if lease.spec is None or lease.spec.holder_identity != self._identity:
                return
            lease.spec.holder_identity = ""
            self._leases.replace_namespaced_lease(self._name, self._namespace, lease, **_timeout())
            log.info("released Lease %s", self._name)
        except Exception as error:  # the Lease then expires on its own
            log.warning("releasing Lease %s: %s", self._name, error)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _timeout() -> dict[str, float]:
    return {"_request_timeout": 5}
