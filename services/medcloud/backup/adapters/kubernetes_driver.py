"""The recovery driver for systems hosted on Kubernetes member clusters: a system's copies are two
Deployments, the primary's and the standby's, possibly in different clusters.

A failover scales the primary down and the standby up, and marks which copy is active with
annotations. Every step sets a desired state, never toggles, so a resumed failover may run a step
again: the primary's replica count is saved on the primary itself before it is scaled to zero, and
the count the standby was promoted to is written on the standby, so a re-run still knows it after
the primary's cluster has vanished.

Each call to a cluster runs in a worker thread (`asyncio.to_thread`) through one ApiClient per
cluster, created on first use, with a short request timeout, so an unreachable cluster fails a step
in seconds. No method raises for what Kubernetes answers: every problem becomes
`StepOutcome(ok=False, reason=...)` naming the cluster, namespace and object, and the HTTP status
with the API server's message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from medcloud.backup.adapters.velero import (
    VELERO_GROUP,
    VELERO_PLURALS,
    VELERO_VERSION,
    schedule_for,
)
from medcloud.backup.app.ports import Endpoint, StepContext, StepOutcome, SystemCopies
from medcloud.backup.domain.failover import Step
from medcloud.backup.domain.plans import ProtectionPolicy
from medcloud.runtime.kube_clients import KubeClients, KubeconfigUnusable

# The primary's replica count before the failover scaled it to zero, on the primary's Deployment.
REPLICAS_BEFORE_FAILOVER = "medcloud.io/replicas-before-failover"
# The count the standby was promoted to, on the standby's Deployment.
PROMOTED_REPLICAS = "medcloud.io/replicas"
# Which copy takes traffic: "standby" on the standby once repointed, "fenced" on the old primary,
# "primary" on both after a rollback. Site DNS/GSLB integrations follow this annotation.
ACTIVE_COPY = "medcloud.io/active-copy"
FAILOVER_ID = "medcloud.io/failover-id"
FIELD_MANAGER = "medcloud-backup"

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Attempts at a read-modify-write whose resourceVersion precondition lost a race (409 Conflict).
CONFLICT_ATTEMPTS = 5

T = TypeVar("T")


class _Problem(Exception):
    """A step cannot go on; the message is the outcome's reason."""


class _Unreachable(_Problem):
    """The cluster did not answer at all (connection refused, timed out, TLS failed)."""


class _Missing(_Problem):
    """404: the object does not exist."""


class _Conflict(_Problem):
    """409: a resourceVersion precondition failed (someone wrote in between)."""


def _api_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.body or "no message").strip()


def _count(value: str | None) -> int | None:
    """An annotation holding a replica count, or None when it is absent or not a count."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return int(value)


@dataclass(frozen=True)
class _Object:
    """One object of a system's copy: its role ("primary" or "standby"), kind and place."""

    role: str
    kind: str
    cluster: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.role} {self.kind} {self.namespace}/{self.name} in cluster {self.cluster}"

    @property
    def missing(self) -> str:
        return f"{self.role} {self.kind} {self.namespace}/{self.name} missing in cluster {self.cluster}"


def _deployment(role: str, endpoint: Endpoint) -> _Object:
    return _Object(role, "Deployment", endpoint.cluster, endpoint.namespace, endpoint.workload)


def _service(role: str, endpoint: Endpoint) -> _Object:
    # A Service named like the workload is the copy's front door, if it has one.
    return _Object(role, "Service", endpoint.cluster, endpoint.namespace, endpoint.workload)


def _ok(reason: str) -> StepOutcome:
    return StepOutcome(True, reason)


def _failed(reason: str) -> StepOutcome:
    return StepOutcome(False, reason)


def apply_velero(api_client: client.ApiClient, manifest: Mapping[str, Any], **options: Any) -> Any:
    """Server-side applies a Velero manifest (`medcloud.backup.adapters.velero`) and returns the
    object as stored: created if absent, brought to the manifest if not. Raises ApiException as the
    Kubernetes client does; `options` go to the call (e.g. `_request_timeout`)."""
    metadata = manifest["metadata"]
    return client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        VELERO_GROUP,
        VELERO_VERSION,
        metadata["namespace"],
        VELERO_PLURALS[manifest["kind"]],
        metadata["name"],
        dict(manifest),
        field_manager=FIELD_MANAGER,
        # medcloud owns these objects: it takes over fields someone changed by hand.
        force=True,
        _content_type=APPLY_PATCH,
        **options,
    )


class KubernetesDriver:
    """Moves Kubernetes-hosted systems between member clusters (`RecoveryDriver`), given the
    kubeconfig of each cluster by name.

    - FENCE_PRIMARY saves the primary Deployment's replica count in
      `medcloud.io/replicas-before-failover` (once) and scales it to 0. An unreachable primary
      cluster counts as fenced by isolation only when the primary's site is known down; otherwise
      the step fails, since a primary that may still take writes must never get a twin.
    - PROMOTE_STANDBY scales the standby Deployment to that saved count (else to the standby's own
      `medcloud.io/replicas`, else 1) and records the count in the standby's `medcloud.io/replicas`.
    - REPOINT sets `medcloud.io/active-copy` = "standby" and `medcloud.io/failover-id` on the
      standby's Deployment and on its Service named like the workload, if there is one, and
      "fenced" on the primary's (when its cluster answers). Site DNS/GSLB integrations follow these
      annotations: traffic goes to the copy marked "standby" once repointed, to the primary when
      both say "primary", never to one marked "fenced".
    - VERIFY checks the standby's spec.replicas is the promoted count and the primary's (when its
      cluster answers) is 0; with `verify_ready`, also that every standby replica is ready,
      polling up to `verify_timeout_seconds`.
    - RECORD has nothing to move.

    With `context.dry_run` nothing changes: each step checks, with server-side dry-run patches,
    that the Deployments it would change exist, their clusters answer and medcloud may patch them.
    `undo` reverses FENCE_PRIMARY (the saved count back, the annotation removed), PROMOTE_STANDBY
    (the standby to 0) and REPOINT (active copy "primary" on both).
    """

    name = "kubernetes"

    def __init__(
        self,
        kubeconfigs: Mapping[str, str | Path],
        verify_ready: bool = True,
        *,
        verify_timeout_seconds: float = 120.0,
        verify_interval_seconds: float = 2.0,
        connect_timeout_seconds: float = 3.0,
        read_timeout_seconds: float = 10.0,
    ) -> None:
        self._kubeconfigs = {name: Path(path) for name, path in kubeconfigs.items()}
        self._kube = KubeClients(self._kubeconfigs)
        self.verify_ready = verify_ready
        self.verify_timeout_seconds = verify_timeout_seconds
        self.verify_interval_seconds = verify_interval_seconds
        self._request_timeout = (connect_timeout_seconds, read_timeout_seconds)

    # --- RecoveryDriver -----------------------------------------------------------------------

    async def run(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome:
        if step is Step.RECORD:
            return _ok("nothing to move: the failover's record is the evidence")
        try:
            self._check_system(system)
            if context.dry_run:
                return await self._dry_run(step, system, context, undo=False)
            if step is Step.FENCE_PRIMARY:
                return await self._fence(system, context)
            if step is Step.PROMOTE_STANDBY:
                return await self._promote(system)
            if step is Step.REPOINT:
                return await self._mark_active(system, context, "standby", "fenced", strict=False)
            return await self._verify(system)
        except _Problem as problem:
            return _failed(str(problem))

    async def undo(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome:
        if step in (Step.VERIFY, Step.RECORD):
            return _ok(f"{step.value} changed nothing, so there is nothing to undo")
        try:
            self._check_system(system)
            if context.dry_run:
                return await self._dry_run(step, system, context, undo=True)
            if step is Step.FENCE_PRIMARY:
                return await self._unfence(system)
            if step is Step.PROMOTE_STANDBY:
                standby = _deployment("standby", system.standby)
                await self._patch(standby, {"spec": {"replicas": 0}})
                return _ok(f"scaled {standby} to 0")
            return await self._mark_active(system, context, "primary", "primary", strict=True)
        except _Problem as problem:
            return _failed(str(problem))

    # --- Velero ---------------------------------------------------------------------------------

    async def apply_velero(self, cluster: str, manifest: Mapping[str, Any]) -> StepOutcome:
        """Server-side applies a Velero manifest in `cluster`; ok=False naming what failed (a
        cluster without Velero's CRDs answers 404)."""
        metadata = manifest.get("metadata", {})
        what = (
            f"Velero {manifest.get('kind')} {metadata.get('namespace')}/{metadata.get('name')} "
            f"in cluster {cluster}"
        )
        if cluster not in self._kubeconfigs:
            return _failed(f"{what}: {self._unknown_cluster(cluster)}")
        try:
            await self._call(
                cluster,
                "velero",
                what,
                lambda api: apply_velero(api, manifest, _request_timeout=self._request_timeout),
                missing=f"{what}: not found",
            )
        except _Missing as missing:
            return _failed(f"{missing}; is Velero (its CRDs and namespace) installed there?")
        except _Problem as problem:
            return _failed(str(problem))
        return _ok(f"applied {what}")

    async def protect(self, system: SystemCopies, policy: ProtectionPolicy) -> StepOutcome:
        """Scheduled point-in-time copies of the serving copy's namespace: a Velero Schedule in
        its cluster (`system.primary` is the copy that serves)."""
        return await self.apply_velero(system.primary.cluster, schedule_for(system, policy))

    def close(self) -> None:
        self._kube.close()

    # --- the steps ------------------------------------------------------------------------------

    async def _fence(self, system: SystemCopies, context: StepContext) -> StepOutcome:
        primary = _deployment("primary", system.primary)
        try:
            for _ in range(CONFLICT_ATTEMPTS):
                deployment = await self._read(primary)
                annotations = deployment.metadata.annotations or {}
                replicas = deployment.spec.replicas or 0
                saved = _count(annotations.get(REPLICAS_BEFORE_FAILOVER))
                if saved is not None and replicas == 0:
                    return _ok(f"{primary} already at 0 (was {saved})")
                metadata: dict[str, Any] = {"resourceVersion": deployment.metadata.resource_version}
                if saved is None:
                    saved = replicas
                    metadata["annotations"] = {REPLICAS_BEFORE_FAILOVER: str(saved)}
                try:
                    # One write for the saved count and the scale-down, conditional on the version
                    # read: a crash leaves both or neither, and a scale in between is not lost.
                    await self._patch(primary, {"metadata": metadata, "spec": {"replicas": 0}})
                except _Conflict:
                    continue
                return _ok(f"scaled {primary} from {saved} to 0")
            return _failed(f"{primary} kept changing while being scaled to 0; try again")
        except _Unreachable as unreachable:
            if context.primary_site_down:
                return _ok(f"fenced by isolation: the primary's site is down and {unreachable}")
            return _failed(
                f"cannot fence: {unreachable}, and its site is not known to be down, so the "
                "primary may still take writes"
            )

    async def _promote(self, system: SystemCopies) -> StepOutcome:
        primary = _deployment("primary", system.primary)
        standby = _deployment("standby", system.standby)
        count = None
        try:
            annotations = (await self._read(primary)).metadata.annotations or {}
            count = _count(annotations.get(REPLICAS_BEFORE_FAILOVER))
            source = f"saved on the {primary}"
            unread = f"no count saved on the {primary}"
        except _Problem as problem:
            unread = str(problem)
        deployment = await self._read(standby)
        if count is None:
            count = _count((deployment.metadata.annotations or {}).get(PROMOTED_REPLICAS))
            source = f"recorded on the standby; {unread}"
        if count is None:
            count, source = 1, f"the default: {unread}, none recorded on the standby"
        await self._patch(
            standby,
            {
                "metadata": {"annotations": {PROMOTED_REPLICAS: str(count)}},
                "spec": {"replicas": count},
            },
        )
        return _ok(f"scaled {standby} to {count} ({source})")

    async def _mark_active(
        self,
        system: SystemCopies,
        context: StepContext,
        standby_value: str,
        primary_value: str,
        strict: bool,
    ) -> StepOutcome:
        """Sets ACTIVE_COPY and FAILOVER_ID on both copies' Deployments, and on their Services
        where they have one. An unreachable primary cluster is passed over unless `strict`."""
        done: list[str] = []
        for role, endpoint, value in (
            ("standby", system.standby, standby_value),
            ("primary", system.primary, primary_value),
        ):
            patch = {
                "metadata": {"annotations": {ACTIVE_COPY: value, FAILOVER_ID: context.failover_id}}
            }
            try:
                await self._patch(_deployment(role, endpoint), patch)
                marked = f"{role} Deployment"
                try:
                    await self._patch(_service(role, endpoint), patch)
                    marked += " and Service"
                except _Missing:
                    pass
                done.append(f"{marked} marked {value!r}")
            except _Unreachable as unreachable:
                if strict or role == "standby":
                    raise
                done.append(f"primary not marked: {unreachable}")
        return _ok(f"{ACTIVE_COPY}: " + "; ".join(done))

    async def _verify(self, system: SystemCopies) -> StepOutcome:
        primary = _deployment("primary", system.primary)
        standby = _deployment("standby", system.standby)
        deployment = await self._read(standby)
        promoted = _count((deployment.metadata.annotations or {}).get(PROMOTED_REPLICAS))
        if promoted is None:
            return _failed(f"{standby} was not promoted: it has no {PROMOTED_REPLICAS} annotation")
        if deployment.spec.replicas != promoted:
            return _failed(
                f"{standby} asks for {deployment.spec.replicas} replicas, not the {promoted} it "
                "was promoted to"
            )
        checked = [f"{standby} at {promoted}"]
        try:
            replicas = (await self._read(primary)).spec.replicas
            if replicas != 0:
                return _failed(f"{primary} asks for {replicas} replicas, not 0: it is not fenced")
            checked.append(f"{primary} at 0")
        except _Unreachable as unreachable:
            checked.append(f"primary not checked: {unreachable}")
        if self.verify_ready:
            missing = await self._wait_ready(standby)
            if missing:
                return _failed(missing)
            checked.append("every standby replica ready")
        return _ok("; ".join(checked))

    async def _wait_ready(self, standby: _Object) -> str:
        """Waits for every replica the standby asks for to be ready; what is missing, or ""."""
        deadline = time.monotonic() + self.verify_timeout_seconds
        while True:
            deployment = await self._read(standby)
            wanted = deployment.spec.replicas or 0
            ready = (deployment.status.ready_replicas if deployment.status else None) or 0
            if ready >= wanted:
                return ""
            if time.monotonic() >= deadline:
                return (
                    f"{standby}: {wanted - ready} ready replicas missing, {ready} of {wanted} "
                    f"ready after {self.verify_timeout_seconds:g} s"
                )
            await asyncio.sleep(self.verify_interval_seconds)

    async def _unfence(self, system: SystemCopies) -> StepOutcome:
        primary = _deployment("primary", system.primary)
        for _ in range(CONFLICT_ATTEMPTS):
            deployment = await self._read(primary)
            saved = _count((deployment.metadata.annotations or {}).get(REPLICAS_BEFORE_FAILOVER))
            if saved is None:
                return _ok(
                    f"{primary} holds no {REPLICAS_BEFORE_FAILOVER}: never scaled down by a "
                    "failover, or already restored"
                )
            patch = {
                "metadata": {
                    "resourceVersion": deployment.metadata.resource_version,
                    "annotations": {REPLICAS_BEFORE_FAILOVER: None},
                },
                "spec": {"replicas": saved},
            }
            try:
                await self._patch(primary, patch)
            except _Conflict:
                continue
            return _ok(f"scaled {primary} back to {saved}")
        return _failed(f"{primary} kept changing while being scaled back; try again")

    async def _dry_run(
        self, step: Step, system: SystemCopies, context: StepContext, undo: bool
    ) -> StepOutcome:
        """Changes nothing: proves with server-side dry-run patches (existence, reachability and
        the right to patch) that the step, or its undo, could run."""
        primary = _deployment("primary", system.primary)
        standby = _deployment("standby", system.standby)
        action = f"undo of {step.value}" if undo else step.value
        # How the step depends on the primary's Deployment: it must be there ("required"); its
        # cluster may be unreachable ("if-reachable"), or only with its site known down ("fence");
        # the step does without it ("optional"); or never touches it ("unused").
        if undo:
            rule = "unused" if step is Step.PROMOTE_STANDBY else "required"
        elif step is Step.FENCE_PRIMARY:
            rule = "fence"
        else:
            rule = "optional" if step is Step.PROMOTE_STANDBY else "if-reachable"
        found: list[str] = []
        try:
            if step is not Step.FENCE_PRIMARY:
                found.append(f"{standby} at {await self._probe(standby)}")
            if rule != "unused":
                try:
                    found.append(f"{primary} at {await self._probe(primary)}")
                except _Unreachable as unreachable:
                    if rule == "required" or (rule == "fence" and not context.primary_site_down):
                        raise
                    found.append(f"primary not reachable: {unreachable}")
                except _Problem as problem:
                    if rule != "optional":
                        raise
                    found.append(str(problem))
        except _Problem as problem:
            return _failed(f"dry run of {action}: {problem}")
        return _ok(f"dry run of {action} could proceed: " + "; ".join(found))

    # --- Kubernetes calls -----------------------------------------------------------------------

    def _unknown_cluster(self, cluster: str) -> str:
        known = ", ".join(sorted(self._kubeconfigs)) or "none"
        return f"unknown cluster {cluster!r}: the Kubernetes driver knows {known}"

    def _check_system(self, system: SystemCopies) -> None:
        label = f"system {system.hospital_id}/{system.system_id}"
        if system.driver != self.name:
            raise _Problem(f"{label} uses driver {system.driver!r}, not {self.name!r}")
        for role, endpoint in (("primary", system.primary), ("standby", system.standby)):
            missing = [
                field
                for field, value in (
                    ("cluster", endpoint.cluster),
                    ("namespace", endpoint.namespace),
                    ("workload", endpoint.workload),
                )
                if not value
            ]
            if missing:
                raise _Problem(f"{label}: the {role} endpoint names no " + " and no ".join(missing))
            if endpoint.cluster not in self._kubeconfigs:
                raise _Problem(
                    f"{label}: the {role} is in {self._unknown_cluster(endpoint.cluster)}"
                )

    def _client(self, cluster: str) -> client.ApiClient:
        try:
            return self._kube.get(cluster)
        except KubeconfigUnusable as error:
            raise _Problem(f"cluster {cluster}: {error}") from None

    async def _call(
        self,
        cluster: str,
        role: str,
        what: str,
        call: Callable[[client.ApiClient], T],
        missing: str = "",
    ) -> T:
        """Runs `call` in a worker thread with the cluster's client, turning what goes wrong into a
        _Problem whose message names `what` (`missing` for a 404, when given)."""
        try:
            return await asyncio.to_thread(lambda: call(self._client(cluster)))
        except ApiException as error:
            answer = f"{error.status} {error.reason}: {_api_message(error)}"
            if error.status == 404 and missing:
                raise _Missing(f"{missing} ({answer})") from None
            if error.status == 409:
                raise _Conflict(f"{what}: Kubernetes answered {answer}") from None
            raise _Problem(f"{what}: Kubernetes answered {answer}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            cause = getattr(error, "reason", None) or error
            raise _Unreachable(f"{role} cluster {cluster} is unreachable: {cause}") from None

    async def _read(self, target: _Object) -> Any:
        def read(api: client.ApiClient) -> Any:
            return client.AppsV1Api(api).read_namespaced_deployment(
                target.name, target.namespace, _request_timeout=self._request_timeout
            )

        return await self._call(target.cluster, target.role, str(target), read, target.missing)

    async def _patch(self, target: _Object, patch: dict[str, Any], dry_run: bool = False) -> Any:
        options: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "_content_type": MERGE_PATCH,
            "_request_timeout": self._request_timeout,
        }
        if dry_run:
            options["dry_run"] = "All"

        def write(api: client.ApiClient) -> Any:
            if target.kind == "Service":
                return client.CoreV1Api(api).patch_namespaced_service(
                    target.name, target.namespace, patch, **options
                )
            return client.AppsV1Api(api).patch_namespaced_deployment(
                target.name, target.namespace, patch, **options
            )

        return await self._call(target.cluster, target.role, str(target), write, target.missing)

    async def _probe(self, target: _Object) -> int:
        """The Deployment's replica count, through an empty server-side dry-run patch: a 404, a
        403 or a silent cluster shows as it would to the real step, and nothing is stored."""
        deployment = await self._patch(target, {}, dry_run=True)
        return int(deployment.spec.replicas or 0)
