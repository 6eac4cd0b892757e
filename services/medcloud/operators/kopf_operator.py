"""The HospitalSite operator: kopf handlers as a thin adapter over the reconcile core.

create / update / resume reconcile the site and write its status; a step that fails sets its
condition and the handler retries with backoff, so a service that comes back makes the site
converge without a new apply. A timer re-checks the member clusters for drift. The finalizer
kopf adds removes everything the site created before the object goes. Only the replica holding
the operator's Lease runs these handlers (leadership.py, started by `__main__`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from kubernetes import client
from opentelemetry import trace

from medcloud.operators.reconcile import (
    SiteReconciler,
    SiteReport,
    StepFailed,
    previous_conditions,
)
from medcloud.operators.region import RegionSpec, read_region
from medcloud.operators.site import HospitalSite, read_site

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("medcloud.operators")

GROUP, VERSION, PLURAL = "medcloud.io", "v1alpha1", "hospitalsites"
# Retries after a failed step: quick at first (a service restarting), then every few minutes.
BACKOFF_SECONDS = (5, 10, 30, 60, 120, 300)


class SiteStatusWriter:
    """Writes the status subresource directly: kopf drops a handler's patch when it raises,
    and a failed step's condition is exactly what hospital IT must see."""

    def __init__(self, api: client.ApiClient) -> None:
        self._objects = client.CustomObjectsApi(api)

    def write(self, site: HospitalSite, report: SiteReport, inputs: dict[str, str]) -> None:
        status = {**report.status(site), "stepInputs": inputs}
        self._objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, site.namespace, PLURAL, site.name, {"status": status}
        )


def retried(reason: str) -> bool:
    """Whether a failed step is worth retrying soon: a service or cluster that did not answer or
    failed inside, or a kubeconfig Secret the region operator is about to create. The others
    (Refused, NotPermitted, InvalidSpec, BaselineNotMet, NoNodeAgents, …) wait for a person."""
    return (
        reason.endswith("Unavailable")
        or reason.startswith("KubeconfigSecret")
        or reason in ("ServiceError", "InternalError")
    )


def awaits_a_person(status: dict[str, Any]) -> bool:
    """A stored status with failed steps, none of which the handler retries by itself."""
    failed = [c for c in status.get("conditions") or () if c.get("status") == "False"]
    failed = [c for c in failed if c.get("type") != "Ready"]
    return bool(failed) and not any(retried(c.get("reason", "")) for c in failed)


def register(
    make_reconciler: Callable[[], SiteReconciler],
    status_writer: Callable[[], SiteStatusWriter],
    apply_region: Callable[[RegionSpec], Awaitable[str]],
    region_ids: Callable[[], frozenset[str]],
    drift_interval_seconds: float = 60.0,
) -> None:
    """Registers the handlers on kopf's default registry (called once, by `__main__`)."""
    state: dict[str, Any] = {}

    def reconciler() -> SiteReconciler:
        if "core" not in state:
            state["core"] = make_reconciler()
        return state["core"]

    def writer() -> SiteStatusWriter:
        if "writer" not in state:
            state["writer"] = status_writer()
        return state["writer"]

    @kopf.on.create(GROUP, VERSION, "regions")
    @kopf.on.update(GROUP, VERSION, "regions")
    @kopf.on.resume(GROUP, VERSION, "regions")
    async def reconcile_region(body: kopf.Body, retry: int, **_: Any) -> dict[str, str]:
        region = read_region(body)
        try:
            summary = await apply_region(region)
        except StepFailed as failed:
            delay = BACKOFF_SECONDS[min(retry, len(BACKOFF_SECONDS) - 1)]
            kopf.warn(body, reason=failed.reason, message=failed.message[:1000])
            raise kopf.TemporaryError(f"{failed.reason}: {failed.message}", delay=delay) from failed
        kopf.info(body, reason="Applied", message=summary)
        return {"summary": summary}

    @kopf.on.create(GROUP, VERSION, PLURAL)
    @kopf.on.update(GROUP, VERSION, PLURAL)
    @kopf.on.resume(GROUP, VERSION, PLURAL)
    async def reconcile_site(body: kopf.Body, retry: int, **_: Any) -> None:
        await _reconcile(body, retry, recheck=False)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=drift_interval_seconds, initial_delay=30)
    async def recheck_site(body: kopf.Body, **_: Any) -> None:
        status = body.get("status") or {}
        if status.get("observedGeneration") != body["metadata"].get("generation"):
            return  # a spec change is still being handled: drift against it would be spurious
        if awaits_a_person(status):
            # The handler stopped retrying (nothing of ours will change by itself); see whether
            # the person acted, running only the steps that have not succeeded.
            await _reconcile(body, 0, recheck=False)
            return
        site = read_site(body)
        try:
            drift = await reconciler().check_drift(site)
        except StepFailed:
            return  # the reconcile handler reports and retries what keeps the check from running
        if drift:
            kopf.warn(body, reason="Drift", message="; ".join(drift)[:1000])
            await _reconcile(body, 0, recheck=True)

    @kopf.on.delete(GROUP, VERSION, PLURAL)
    async def remove_site(body: kopf.Body, **_: Any) -> None:
        site = read_site(body)
        removed = await reconciler().remove(site, await asyncio.to_thread(region_ids))
        log.info("site removed", extra={"site": site.key, "removed": len(removed)})

    async def _reconcile(body: kopf.Body, retry: int, recheck: bool) -> None:
        # One apply is one trace: every service call below carries this span's context.
        with _tracer.start_as_current_span(
            "reconcile HospitalSite",
            attributes={
                "medcloud.site": f"{body['metadata'].get('namespace')}/{body['metadata']['name']}",
                "medcloud.generation": body["metadata"].get("generation", 0),
                "medcloud.recheck": recheck,
            },
        ):
            await _reconcile_traced(body, retry, recheck)

    async def _reconcile_traced(body: kopf.Body, retry: int, recheck: bool) -> None:
        site = read_site(body)
        status = body.get("status") or {}
        previous = previous_conditions(status, status.get("stepInputs") or {})
        report = await reconciler().reconcile(site, previous, recheck=recheck)
        inputs = {c.type.value: c.inputs for c in report.conditions if c.inputs}
        await asyncio.to_thread(writer().write, site, report, inputs)
        for condition in report.conditions:
            before = previous.get(condition.type)
            if before is None or before.status is not condition.status:
                event = kopf.info if condition.status is not False else kopf.warn
                event(
                    body,
                    reason=condition.reason or condition.type.value,
                    message=(f"{condition.type.value}: {condition.message}")[:1000],
                )
        transient = [c for c in report.conditions if c.status is False and retried(c.reason)]
        if transient:
            failed = transient[0]
            delay = BACKOFF_SECONDS[min(retry, len(BACKOFF_SECONDS) - 1)]
            raise kopf.TemporaryError(
                f"{failed.type.value}: {failed.reason}: {failed.message}", delay=delay
            )
        # A failure only a person can clear (a baseline not met, no node agents yet) ends the
        # handler, so that the next spec change is handled at once rather than after a backoff;
        # the timer looks again every drift interval.
