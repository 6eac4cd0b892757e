"""What `medcloudctl` does against a running region: the management cluster's HospitalSites and
Regions through the Kubernetes API (server-side apply, get, describe, delete, waiting on the
operator), scheduling's placements over gRPC (explain), and the embedded mode that drives the
reconcile core directly, with no Kubernetes API at all.

Every expected failure (no kubeconfig, a cluster or service that does not answer, a refusal, an
object that is not there) becomes a `CliError` carrying one line naming what failed and where,
and the exit code: 1 not found or refused as invalid, 2 a connection or configuration problem,
3 a wait that timed out. `cli.py` prints it; nothing here prints a traceback for those."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import urllib3
from google.protobuf import json_format
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from medcloud.common.v1 import data_classification_pb2 as classification_pb
from medcloud.operators.manifests import GROUP, VERSION
from medcloud.operators.member_work import KubeconfigSecret
from medcloud.runtime.config import ConfigError, HostPort, load_settings, setting
from medcloud.runtime.tls import TlsMaterial, tls_from_environment
from medcloud.scheduling.v1 import scheduling_pb2 as scheduling_pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # also: refused as invalid, or not Ready (embedded apply)
EXIT_UNREACHABLE = 2  # a connection or configuration problem
EXIT_TIMED_OUT = 3

FIELD_MANAGER = "medcloudctl"
APPLY_PATCH = "application/apply-patch+yaml"
SITES, REGIONS = "hospitalsites", "regions"
FINALIZER = "medcloud.io/hospitalsite"
# Connect, then read: a management cluster that does not answer is reported in seconds.
REQUEST_TIMEOUT = (5, 30)
GRPC_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 1.0
# What `apply` sends, in this order: namespaces before what lives in them.
APPLIED_KINDS = ("Namespace", "Secret", "Region", "HospitalSite")
EVENTS_SHOWN = 20
HOSTS_SHOWN = 8


class CliError(Exception):
    """An expected failure: one line for the operator, and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- small helpers ------------------------------------------------------------------------------


def _timestamp(text: object) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def age(text: object, now: datetime | None = None) -> str:
    """kubectl's short ages: 42s, 5m, 3h, 12d; "-" when unknown."""
    stamp = _timestamp(text)
    if stamp is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - stamp).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _status_text(status: str) -> Text:
    style = {"True": "green", "False": "red"}.get(status, "yellow")
    return Text(status or "Unknown", style=style)


def _unreachable_cause(error: Exception) -> str:
    cause = str(getattr(error, "reason", None) or error)
    # urllib3 prefixes the connection object: HTTPSConnection(host='…', port=…): <what happened>
    return cause.split("): ", 1)[-1] if cause.startswith("HTTP") else cause


def _api_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except (ValueError, TypeError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or "no message").strip()


def _names_an_object(error: ApiException) -> bool:
    """A 404 about one object (its name in the details), not about its kind: a kind the server
    does not serve (the CRD is not installed) answers 404 without a name."""
    try:
        body = json.loads(error.body or "")
    except (ValueError, TypeError):
        return True
    details = body.get("details") if isinstance(body, dict) else None
    return not isinstance(body, dict) or bool((details or {}).get("name"))


def _metadata(document: Mapping[str, Any]) -> dict[str, Any]:
    metadata = document.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _conditions(site: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((site.get("status") or {}).get("conditions") or [])


def _condition(site: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in _conditions(site) if c.get("type") == kind), {})


# --- the management cluster ---------------------------------------------------------------------


def _kubeconfig_source(explicit: str | None) -> str | None:
    """--kubeconfig, else $KUBECONFIG (read now, not when the client was imported), else
    ~/.kube/config when it exists; None when there is none (in-cluster, or nothing)."""
    if explicit:
        return explicit
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.is_file() else None


class Management:
    """The management cluster's API: HospitalSites, Regions, and what `apply` sends with them."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        configuration = client.Configuration()
        source = _kubeconfig_source(kubeconfig)
        self.default_namespace = "default"
        if source is None:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise CliError(
                    "no management cluster: set KUBECONFIG or pass --kubeconfig "
                    "(or apply with --embedded, which needs no Kubernetes API)"
                )
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException as error:
                raise CliError(f"in-cluster credentials are unusable: {error}") from None
            account = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            if account.is_file():
                self.default_namespace = account.read_text().strip() or "default"
        else:
            paths = [p for p in source.split(os.pathsep) if p]
            if not any(Path(p).expanduser().is_file() for p in paths):
                raise CliError(f"kubeconfig {source}: no such file")
            try:
                config.load_kube_config(
                    config_file=source, client_configuration=configuration, persist_config=False
                )
                _, active = config.list_kube_config_contexts(config_file=source)
            except (ConfigException, OSError, ValueError, TypeError, KeyError) as error:
                raise CliError(f"kubeconfig {source} is unusable: {error}") from None
            context = (active or {}).get("context") or {}
            self.default_namespace = context.get("namespace") or "default"
        # urllib3 retries a refused connection three times by default; once covers a blip.
        configuration.retries = 1
        self.host = configuration.host
        self.api = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self.api)
        self._objects = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        self.api.close()

    def _call(
        self, what: str, method: Callable[..., Any], *args: Any, missing_ok: bool = False, **kw: Any
    ) -> dict[str, Any] | None:
        """One request, its answer as the server's JSON; None for a 404 when `missing_ok`."""
        try:
            response = method(*args, **kw, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status == 404 and missing_ok and _names_an_object(error):
                return None
            raise self._refusal(what, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise CliError(
                f"{what}: the management cluster at {self.host} is unreachable: "
                f"{_unreachable_cause(error)}",
                EXIT_UNREACHABLE,
            ) from None
        return json.loads(response.data or b"{}")

    def _refusal(self, what: str, error: ApiException) -> CliError:
        answer = f"{error.status} {error.reason}: {_api_message(error)}"
        where = f"the management cluster at {self.host}"
        if error.status in (401, 403):
            return CliError(
                f"{what}: {where} refused: {answer} (check the kubeconfig's credentials and "
                "their RBAC)",
                EXIT_UNREACHABLE,
            )
        if error.status == 404:
            return CliError(
                f"{what}: {where} answered {answer} (are medcloud's CRDs installed? "
                "kubectl apply -f operators/crds/)",
                EXIT_UNREACHABLE,
            )
        if error.status in (400, 409, 422):
            return CliError(f"{what}: {where} refused it: {answer}", EXIT_NOT_FOUND)
        return CliError(f"{what}: {where} answered {answer}", EXIT_UNREACHABLE)

    # -- HospitalSites ---------------------------------------------------------------------------

    def find_site(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            f"read HospitalSite {namespace}/{name}",
            self._objects.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SITES,
            name,
            missing_ok=True,
        )

    def site(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.find_site(namespace, name)
        if found is None:
            raise CliError(
                f"HospitalSite {name} not found in namespace {namespace} "
                f"(management cluster at {self.host})",
                EXIT_NOT_FOUND,
            )
        return found

    def sites(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every HospitalSite of a namespace, or of all of them (None)."""
        where = f"namespace {namespace}" if namespace else "all namespaces"
        if namespace:
            listed = self._call(
                f"list HospitalSites in {where}",
                self._objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                SITES,
            )
        else:
            listed = self._call(
                f"list HospitalSites in {where}",
                self._objects.list_cluster_custom_object,
                GROUP,
                VERSION,
                SITES,
            )
        items = list((listed or {}).get("items") or [])
        return sorted(items, key=lambda s: (_metadata(s).get("namespace"), _metadata(s)["name"]))

    def delete_site(self, namespace: str, name: str) -> bool:
        """Asks for the deletion; False when there was nothing to delete."""
        deleted = self._call(
            f"delete HospitalSite {namespace}/{name}",
            self._objects.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SITES,
            name,
            missing_ok=True,
        )
        return deleted is not None

    def events(self, site: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The site's recent Kubernetes events (the operator's, the API server's), oldest first."""
        metadata = _metadata(site)
        selector = f"involvedObject.kind=HospitalSite,involvedObject.name={metadata['name']}"
        if metadata.get("uid"):
            selector += f",involvedObject.uid={metadata['uid']}"
        listed = self._call(
            f"list the events of HospitalSite {metadata['namespace']}/{metadata['name']}",
            self._core.list_namespaced_event,
            metadata["namespace"],
            field_selector=selector,
        )
        items = list((listed or {}).get("items") or [])
        return sorted(
            items, key=lambda e: _timestamp(_event_time(e)) or datetime.min.replace(tzinfo=UTC)
        )[-EVENTS_SHOWN:]

    # -- server-side apply -----------------------------------------------------------------------

    def apply(self, document: Mapping[str, Any]) -> str:
        """Server-side applies one document (field manager medcloudctl, forced); returns what
        happened to it as kubectl says it: created, configured or unchanged."""
        kind = str(document.get("kind") or "")
        body = copy.deepcopy(dict(document))
        metadata = body.setdefault("metadata", {})
        name = str(metadata.get("name") or "")
        namespace = ""
        if kind in ("Secret", "HospitalSite"):
            namespace = str(metadata.get("namespace") or self.default_namespace)
            metadata["namespace"] = namespace
        read, patch = self._read_and_patch(kind, name, namespace)
        what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        before = self._call(f"read {what}", read, missing_ok=True)
        after = self._call(
            f"apply {what}",
            patch,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )
        if before is None:
            return "created"
        old, new = _metadata(before), _metadata(after or {})
        return (
            "unchanged"
            if old.get("resourceVersion") == new.get("resourceVersion")
            else "configured"
        )

    def _read_and_patch(
        self, kind: str, name: str, namespace: str
    ) -> tuple[Callable[..., Any], Callable[..., Any]]:
        core, objects = self._core, self._objects
        if kind == "Namespace":
            return (
                lambda **kw: core.read_namespace(name, **kw),
                lambda body, **kw: core.patch_namespace(name, body, **kw),
            )
        if kind == "Secret":
            return (
                lambda **kw: core.read_namespaced_secret(name, namespace, **kw),
                lambda body, **kw: core.patch_namespaced_secret(name, namespace, body, **kw),
            )
        if kind == "Region":
            return (
                lambda **kw: objects.get_cluster_custom_object(GROUP, VERSION, REGIONS, name, **kw),
                lambda body, **kw: objects.patch_cluster_custom_object(
                    GROUP, VERSION, REGIONS, name, body, **kw
                ),
            )
        if kind == "HospitalSite":
            return (
                lambda **kw: objects.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, SITES, name, **kw
                ),
                lambda body, **kw: objects.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, SITES, name, body, **kw
                ),
            )
        raise CliError(f"{kind} {name}: medcloudctl does not apply this kind", EXIT_NOT_FOUND)


def _event_time(event: Mapping[str, Any]) -> object:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or _metadata(event).get("creationTimestamp")
    )


def object_label(document: Mapping[str, Any], default_namespace: str = "") -> str:
    """kubectl's `kind.group/name`, with the namespace for namespaced kinds."""
    kind = str(document.get("kind") or "")
    metadata = _metadata(document)
    group = f".{GROUP}" if kind in ("Region", "HospitalSite") else ""
    label = f"{kind.lower()}{group}/{metadata.get('name', '')}"
    if kind in ("Secret", "HospitalSite"):
        label += f" (namespace {metadata.get('namespace') or default_namespace})"
    return label


def unsupported_documents(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """The documents `apply` cannot send, as `kind name` (e.g. a ConfigMap: use kubectl)."""
    return [
        f"{d.get('kind') or '(no kind)'} {_metadata(d).get('name', '')}".strip()
        for d in documents
        if d.get("kind") not in APPLIED_KINDS
    ]


def apply_order(documents: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Namespaces, Secrets, Regions, then HospitalSites; file order within each kind."""
    return sorted(documents, key=lambda d: APPLIED_KINDS.index(str(d.get("kind"))))


# --- rendering HospitalSites ----------------------------------------------------------------------


def site_row(site: Mapping[str, Any]) -> list[str]:
    metadata, status = _metadata(site), site.get("status") or {}
    placed = (
        f"{status.get('systemsPlaced', 0)}/{status.get('systemCount', 0)}"
        if "systemCount" in status
        else "-"
    )
    return [
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        str(status.get("phase") or "-"),
        placed,
        str(status.get("drTier", "-")),
        str(status.get("conformance") or "-"),
        age(metadata.get("creationTimestamp")),
    ]


def sites_table(sites: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAMESPACE", "NAME", "PHASE", "PLACED", "DR TIER", "CONFORMANCE", "AGE"):
        table.add_column(column, no_wrap=True)
    for site in sites:
        table.add_row(*site_row(site))
    return table


def site_json(site: Mapping[str, Any]) -> dict[str, Any]:
    metadata = _metadata(site)
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "status": site.get("status") or {},
    }


def conditions_table(conditions: Iterable[Mapping[str, Any]], title: str = "Conditions") -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("Type", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Reason", no_wrap=True)
    table.add_column("Message", overflow="fold", ratio=1, min_width=10)
    table.add_column("Last transition", min_width=6)
    for condition in conditions:
        changed = condition.get("lastTransitionTime") or ""
        table.add_row(
            str(condition.get("type", "")),
            _status_text(str(condition.get("status", ""))),
            str(condition.get("reason") or "-"),
            Text(str(condition.get("message") or "")),
            f"{age(changed)} ago" if changed else "-",
        )
    return table


def placements_table(placements: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Placements", title_justify="left")
    table.add_column("System", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Centres", overflow="fold", min_width=16)
    for placement in placements:
        state = str(placement.get("state", ""))
        style = {"placed": "green", "degraded": "yellow"}.get(state, "red")
        table.add_row(
            str(placement.get("system", "")),
            Text(state, style=style),
            ", ".join(placement.get("centres") or []) or "-",
        )
    return table


def _spec_summary(site: Mapping[str, Any]) -> RenderableType:
    metadata, spec, status = _metadata(site), site.get("spec") or {}, site.get("status") or {}
    room = spec.get("room") or {}
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    hospital = str(spec.get("hospitalId", ""))
    if spec.get("displayName"):
        hospital += f" ({spec['displayName']})"
    observed = status.get("observedGeneration")
    for label, value in (
        ("Name", metadata.get("name", "")),
        ("Namespace", metadata.get("namespace", "")),
        ("Hospital", hospital),
        ("Region", spec.get("region", "")),
        (
            "Room",
            f"{room.get('centreId', '')} ({room.get('city', '')}, {room.get('province', '')})",
        ),
        (
            "Created",
            f"{metadata.get('creationTimestamp', '')} ({age(metadata.get('creationTimestamp'))} ago)",
        ),
        (
            "Generation",
            f"{metadata.get('generation', '-')} (observed {observed if observed is not None else '-'})",
        ),
        ("Phase", status.get("phase") or "-"),
        ("Conformance", status.get("conformance") or "-"),
    ):
        facts.add_row(label, Text(str(value)))
    if metadata.get("deletionTimestamp"):
        facts.add_row(
            "Deleting",
            Text(
                f"since {metadata['deletionTimestamp']}, finalizers {metadata.get('finalizers') or []}"
            ),
        )
    clusters = Table(title="Clusters", title_justify="left")
    for column in ("Name", "Role", "Centre", "Kubeconfig Secret"):
        clusters.add_column(column, no_wrap=True)
    for cluster in spec.get("clusters") or []:
        ref = cluster.get("kubeconfigSecretRef") or {}
        clusters.add_row(
            str(cluster.get("name", "")),
            str(cluster.get("role", "")),
            str(cluster.get("centreId", "")),
            f"{ref.get('name', '')}[{ref.get('key', 'kubeconfig')}]",
        )
    systems = Table(title="Systems", title_justify="left")
    for column in ("System", "Kind", "Classification", "Replicas", "DR tier", "Cluster", "Standby"):
        systems.add_column(column, no_wrap=True)
    for system in spec.get("systems") or []:
        systems.add_row(
            str(system.get("name", "")),
            str(system.get("kind", "")),
            str(system.get("classification", "")),
            str(system.get("replicas", 1)),
            str(system.get("drTier", 0)),
            str(system.get("cluster", "")),
            str(system.get("standbyCluster") or "-"),
        )
    return Group(facts, clusters, systems)


def events_table(events: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Events", title_justify="left")
    table.add_column("Type", no_wrap=True)
    table.add_column("Reason", no_wrap=True)
    table.add_column("Age", no_wrap=True)
    table.add_column("From", no_wrap=True)
    table.add_column("Message", overflow="fold", ratio=1, min_width=10)
    for event in events:
        count = int(event.get("count") or 1)
        when = age(_event_time(event))
        if count > 1:
            first = event.get("firstTimestamp") or _metadata(event).get("creationTimestamp")
            when = f"{when} (x{count} over {age(first)})"
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent", "")
        table.add_row(
            Text(str(event.get("type", "")), style="red" if event.get("type") == "Warning" else ""),
            str(event.get("reason", "")),
            when,
            str(source or "-"),
            Text(str(event.get("message", ""))),
        )
    return table


def describe(console: Console, management: Management, namespace: str, name: str) -> None:
    site = management.site(namespace, name)
    events = management.events(site)
    status = site.get("status") or {}
    console.print(_spec_summary(site))
    if _conditions(site):
        console.print(conditions_table(_conditions(site)))
    else:
        console.print("Conditions: none yet (is the operator running?)")
    if status.get("placements"):
        console.print(placements_table(status["placements"]))
    else:
        console.print("Placements: none")
    if events:
        console.print(events_table(events))
    else:
        console.print("Events: none")


# --- waiting on the operator ----------------------------------------------------------------------


def site_ready(site: Mapping[str, Any]) -> bool:
    """Ready True for the spec as it is now (the operator saw this generation)."""
    generation = int(_metadata(site).get("generation") or 0)
    status = site.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return False
    ready = _condition(site, "Ready")
    return (
        ready.get("status") == "True"
        and int(ready.get("observedGeneration") or generation) >= generation
    )


def _progress_line(key: str, site: Mapping[str, Any] | None, elapsed: float) -> Text:
    if site is None:
        return Text(f"{key}: not found", style="red")
    generation = int(_metadata(site).get("generation") or 0)
    status = site.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    line = Text(f"{key}: ", style="bold")
    if site_ready(site):
        line.append("Ready", style="green")
    elif not status:
        line.append("no status yet (waiting for the operator)", style="yellow")
    else:
        line.append(str(status.get("phase") or "Reconciling"), style="yellow")
        if observed < generation:
            line.append(f" (operator has seen generation {observed} of {generation})")
    line.append(f"  {elapsed:.0f}s", style="dim")
    return line


def _progress(sites: Mapping[str, Mapping[str, Any] | None], started: float) -> RenderableType:
    parts: list[RenderableType] = []
    elapsed = time.monotonic() - started
    for key, site in sites.items():
        parts.append(_progress_line(key, site, elapsed))
        if site is not None and _conditions(site):
            parts.append(conditions_table(_conditions(site), title=""))
    return Group(*parts)


def wait_ready(
    console: Console, management: Management, keys: list[tuple[str, str]], timeout: float
) -> int:
    """Shows each site's conditions live until all are Ready (0) or the timeout (3), then what
    is not True yet."""
    started = time.monotonic()
    found: dict[str, dict[str, Any] | None] = {f"{ns}/{name}": None for ns, name in keys}
    with Live(
        _progress(found, started), console=console, transient=True, refresh_per_second=4
    ) as live:
        while True:
            for namespace, name in keys:
                found[f"{namespace}/{name}"] = management.find_site(namespace, name)
            live.update(_progress(found, started))
            if all(site is not None and site_ready(site) for site in found.values()):
                break
            if time.monotonic() - started >= timeout:
                break
            time.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    waiting = []
    for key, site in found.items():
        if site is not None and site_ready(site):
            console.print(
                Text(f"hospitalsite.{GROUP}/{key} is Ready ({elapsed:.0f}s)", style="green")
            )
            continue
        waiting.append(key)
        console.print(_progress_line(key, site, elapsed))
        if site is None:
            continue
        pending = [c for c in _conditions(site) if c.get("status") != "True"]
        if pending:
            console.print(conditions_table(pending, title=f"{key}: conditions not True"))
        elif not (site.get("status") or {}):
            console.print(
                f"{key} has no status: is the operator running (python -m medcloud.operators)?"
            )
    if waiting:
        console.print(
            f"timed out after {timeout:g}s waiting for {', '.join(waiting)} to be Ready",
            style="red",
        )
        return EXIT_TIMED_OUT
    return EXIT_OK


def wait_deleted(
    console: Console, management: Management, namespace: str, name: str, timeout: float
) -> int:
    """Until the HospitalSite is gone (its finalizer ran), or the timeout (3)."""
    started = time.monotonic()
    key = f"{namespace}/{name}"
    site: dict[str, Any] | None = None
    with console.status(f"deleting {key}: waiting for the operator's finalizer") as spinner:
        while True:
            site = management.find_site(namespace, name)
            if site is None:
                break
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                break
            finalizers = ", ".join(_metadata(site).get("finalizers") or []) or "none"
            spinner.update(
                f"deleting {key}: waiting for finalizers ({finalizers}) to remove what the site "
                f"created  {elapsed:.0f}s"
            )
            time.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    if site is None:
        console.print(f"hospitalsite.{GROUP}/{name} deleted from {namespace} ({elapsed:.0f}s)")
        return EXIT_OK
    finalizers = _metadata(site).get("finalizers") or []
    hint = (
        f"; the finalizer {FINALIZER} is the operator's: is it running?"
        if FINALIZER in finalizers
        else ""
    )
    console.print(
        f"timed out after {timeout:g}s: {key} still exists with finalizers {finalizers}{hint}",
        style="red",
    )
    return EXIT_TIMED_OUT


# --- explain: a placement as scheduling decided it ------------------------------------------------


def _tls() -> TlsMaterial | None:
    try:
        return tls_from_environment()
    except ConfigError as error:
        raise CliError("TLS: " + "; ".join(error.problems)) from None


def _address(value: str | None, variable: str, what: str, option: str = "") -> str:
    if not value:
        instead = f", or pass {option}" if option else ""
        raise CliError(f"{variable} is not set: where {what} listens (HOST:PORT){instead}")
    try:
        return str(HostPort.parse(value))
    except ValueError as error:
        raise CliError(f"{variable}={value!r}: {error}") from None


def _rpc_error(service: str, address: str, what: str, error: grpc.RpcError) -> CliError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    where = f"{service} at {address}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return CliError(f"{what}: {where} is unreachable ({code.name}): {details}")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return CliError(
            f"{what}: {where} refused the caller ({code.name}): {details} (the certificate of "
            "MEDCLOUD_TLS_CERT_FILE names who calls)"
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return CliError(f"{what}: {where} refused it ({code.name}): {details}", EXIT_NOT_FOUND)
    return CliError(f"{what}: {where} answered {code.name}: {details}")


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower().replace("_", "-")
    except ValueError:
        return str(value)


def _instance(instance: scheduling_pb.Instance) -> str:
    return f"{_enum_name(scheduling_pb.Role, instance.role, 'ROLE_')}-{instance.index}"


def fetch_placement(system_id: str, address: str | None) -> tuple[scheduling_pb.Placement, str]:
    """The system's placement from scheduling (GetPlacement), and the address asked."""
    address = _address(address, "MEDCLOUD_SCHEDULING_ADDRESS", "scheduling", "--scheduling-address")
    tls = _tls()
    channel = (
        grpc.insecure_channel(address)
        if tls is None
        else grpc.secure_channel(address, tls.channel_credentials())
    )
    with channel:
        stub = scheduling_grpc.SchedulingServiceStub(channel)
        try:
            reply = stub.GetPlacement(
                scheduling_api.GetPlacementRequest(system_id=system_id),
                timeout=GRPC_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                raise CliError(
                    f"scheduling at {address} has no placement for system {system_id!r}: system "
                    "ids are <hospitalId>-<system>, e.g. central-hospital-his for system his of "
                    "the HospitalSite with spec.hospitalId central-hospital",
                    EXIT_NOT_FOUND,
                ) from None
            raise _rpc_error(
                "scheduling", address, f"read the placement of {system_id}", error
            ) from None
    return reply.placement, address


def placement_json(placement: scheduling_pb.Placement) -> dict[str, Any]:
    return json_format.MessageToDict(placement, preserving_proto_field_name=True)


def render_placement(console: Console, placement: scheduling_pb.Placement) -> None:
    system = placement.system
    state = _enum_name(scheduling_pb.PlacementState, placement.state, "PLACEMENT_STATE_")
    style = {"placed": "green", "degraded": "yellow"}.get(state, "red")
    heading = Text(f"Placement of {system.id}: ", style="bold")
    heading.append(state.upper(), style=style)
    heading.append(f" (generation {placement.generation})")
    console.print(heading)
    roles = ", ".join(
        f"{r.count} {_enum_name(scheduling_pb.Role, r.role, 'ROLE_')}" for r in system.roles
    )
    storage = (
        f"{system.storage_gib} GiB "
        + _enum_name(scheduling_pb.StorageClass, system.storage_class, "STORAGE_CLASS_")
        if system.storage_gib
        else "no storage"
    )
    kind = _enum_name(scheduling_pb.SystemKind, system.kind, "SYSTEM_KIND_")
    classification = _enum_name(
        classification_pb.DataClassification, system.classification, "DATA_CLASSIFICATION_"
    )
    console.print(
        Text(
            f"kind {kind}, data {classification}, DR tier {system.dr_tier}; "
            f"{roles or 'no instances'}; per instance {system.vcpu} vCPU, "
            f"{system.memory_gib} GiB memory, {storage}"
        )
    )
    if placement.message:
        console.print(Text(placement.message, style=style))
    assignments = Table(title="Assignments", title_justify="left")
    for column in ("Instance", "Host", "Centre", "Pool", "Score"):
        assignments.add_column(column, no_wrap=True)
    assignments.add_column("Scores by weigher", overflow="fold")
    for assignment in placement.assignments:
        assignments.add_row(
            _instance(assignment.instance),
            assignment.host_id,
            assignment.centre_id,
            assignment.pool_id or "-",
            f"{assignment.total_score:.3f}",
            ", ".join(f"{k} {v:.2f}" for k, v in sorted(assignment.scores.items())) or "-",
        )
    if placement.assignments:
        console.print(assignments)
    else:
        console.print("Assignments: none")
    tree = Tree(Text("Why", style="bold"))
    for explanation in placement.explanation:
        chosen = explanation.chosen_host_id
        label = Text(f"{_instance(explanation.instance)}: ", style="bold")
        label.append(
            f"host {chosen}" if chosen else "no host admitted it",
            style="green" if chosen else "red",
        )
        if explanation.summary:
            label.append(f" — {explanation.summary}")
        branch = tree.add(label)
        for title, removals in (("removed", explanation.removed), ("relaxed", explanation.relaxed)):
            for removal in removals:
                hosts = list(removal.hosts)
                by = (
                    f"{removal.requirement_id} ({removal.rule})"
                    if removal.requirement_id
                    else removal.rule
                )
                rule = branch.add(Text(f"{title} by {by}: {len(hosts)} host(s)"))
                for host in hosts[:HOSTS_SHOWN]:
                    rule.add(Text(f"{host.host_id}: {host.reason}"))
                if len(hosts) > HOSTS_SHOWN:
                    rule.add(Text(f"… and {len(hosts) - HOSTS_SHOWN} more", style="dim"))
    if placement.explanation:
        console.print(tree)


# --- embedded: the reconcile core without a Kubernetes API ----------------------------------------


@dataclass(frozen=True)
class EmbeddedSettings:
    inventory_address: HostPort = setting("MEDCLOUD_INVENTORY_ADDRESS", help="inventory's address")
    scheduling_address: HostPort = setting(
        "MEDCLOUD_SCHEDULING_ADDRESS", help="scheduling's address"
    )
    security_address: HostPort = setting("MEDCLOUD_SECURITY_ADDRESS", help="security's address")
    backup_address: HostPort = setting("MEDCLOUD_BACKUP_ADDRESS", help="backup's address")
    monitoring_address: HostPort = setting(
        "MEDCLOUD_MONITORING_ADDRESS", help="monitoring's address"
    )


def directory_secrets(directory: Path) -> Callable[[str, str], KubeconfigSecret | None]:
    """A SecretReader over a directory: the Secret `name` is the file DIR/name, which holds the
    kubeconfig itself (the key plays no part; whoever runs the command vouches for the files)."""

    def read(name: str, key: str) -> KubeconfigSecret | None:
        try:
            return KubeconfigSecret((directory / name).read_bytes(), None)
        except (FileNotFoundError, IsADirectoryError):
            return None

    return read


def apply_embedded(
    console: Console, documents: list[Mapping[str, Any]], secrets_dir: Path | None
) -> int:
    """Regions into the services, each HospitalSite through the reconcile core once; prints the
    conditions. 0 when every site is Ready, 1 when one is not, 2 when a service or member
    cluster did not answer."""
    try:
        settings = load_settings(EmbeddedSettings)
    except ConfigError as error:
        raise CliError(
            "--embedded needs the services' addresses: " + "; ".join(error.problems)
        ) from None
    tls = _tls()
    regions = [d for d in documents if d.get("kind") == "Region"]
    sites = [d for d in documents if d.get("kind") == "HospitalSite"]
    for document in documents:
        if document.get("kind") not in ("Region", "HospitalSite"):
            console.print(
                f"skipped {object_label(document)}: --embedded has no Kubernetes API "
                "(kubeconfigs come from --secrets-dir)",
                style="dim",
            )
    if sites and secrets_dir is None:
        raise CliError(
            "--embedded needs --secrets-dir DIR: a file per kubeconfig Secret, by its name"
        )
    if secrets_dir is not None and not secrets_dir.is_dir():
        raise CliError(f"--secrets-dir {secrets_dir}: no such directory")
    return asyncio.run(_embedded(console, settings, tls, regions, sites, secrets_dir))


async def _embedded(
    console: Console,
    settings: EmbeddedSettings,
    tls: TlsMaterial | None,
    regions: list[Mapping[str, Any]],
    sites: list[Mapping[str, Any]],
    secrets_dir: Path | None,
) -> int:
    # The operator's own pieces: importing them here keeps kopf out of the other commands.
    from medcloud.operators.__main__ import ManifestValidator
    from medcloud.operators.member_work import KubernetesMemberWork
    from medcloud.operators.reconcile import SiteReconciler, StepFailed
    from medcloud.operators.region import read_region
    from medcloud.operators.region_services import GrpcRegionServices, ServiceAddresses
    from medcloud.operators.site import read_site

    addresses = ServiceAddresses(
        inventory=str(settings.inventory_address),
        scheduling=str(settings.scheduling_address),
        security=str(settings.security_address),
        backup=str(settings.backup_address),
        monitoring=str(settings.monitoring_address),
    )
    services = GrpcRegionServices(addresses, tls)
    outcome = EXIT_OK
    try:
        for document in regions:
            region = read_region(document)
            try:
                with console.status(f"registering region {region.name} in inventory and backup"):
                    summary = await services.apply_region(region)
            except StepFailed as failed:
                code = EXIT_UNREACHABLE if failed.reason.endswith("Unavailable") else EXIT_NOT_FOUND
                raise CliError(f"Region {region.name}: {failed.message}", code) from None
            console.print(Text(f"region.{GROUP}/{region.name} applied: {summary}"))
        if not sites:
            return EXIT_OK
        assert secrets_dir is not None
        reconciler = SiteReconciler(
            services,
            KubernetesMemberWork(
                directory_secrets(secrets_dir), str(secrets_dir), require_enrolment=False
            ),
            ManifestValidator(),
        )
        for document in sites:
            site = read_site(document)
            with console.status(
                f"reconciling {site.key}: Validated, Inventoried, Placed, Secured, Protected, "
                "Monitored"
            ):
                report = await reconciler.reconcile(site)
            status = report.status(site)
            line = Text(f"hospitalsite.{GROUP}/{site.name} ({site.namespace}): ", style="bold")
            line.append(report.phase, style="green" if report.ready else "red")
            line.append(f", {status['systemsPlaced']}/{status['systemCount']} systems placed")
            console.print(line)
            console.print(conditions_table(status["conditions"]))  # type: ignore[arg-type]
            if status["placements"]:
                console.print(placements_table(status["placements"]))  # type: ignore[arg-type]
            failed = [c for c in report.conditions if c.status is False]
            if any(c.reason == "KubeconfigSecretMissing" for c in failed):
                console.print(
                    f"--embedded reads each kubeconfig Secret from {secrets_dir}/<Secret name>"
                )
            if report.ready:
                continue
            unreachable = [c for c in failed if c.reason.endswith("Unavailable")]
            for condition in unreachable:
                print(f"error: {site.key}: {condition.message}", file=sys.stderr)
            outcome = max(outcome, EXIT_UNREACHABLE if unreachable else EXIT_NOT_FOUND)
    finally:
        await services.close()
    return outcome


# --- conformance -----------------------------------------------------------------------------


def conformance_reports(documents: list[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """Each HospitalSite's conformance report, gathered from the services (their addresses and
    the caller's certificate from the environment)."""
    from medcloud.operators.conformance import load_requirements
    from medcloud.operators.conformance_sources import report
    from medcloud.operators.region_services import ServiceAddresses
    from medcloud.operators.site import read_site

    try:
        settings = load_settings(EmbeddedSettings)
    except ConfigError as error:
        raise CliError(
            "conformance needs the services' addresses: " + "; ".join(error.problems)
        ) from None
    addresses = ServiceAddresses(
        inventory=str(settings.inventory_address),
        scheduling=str(settings.scheduling_address),
        security=str(settings.security_address),
        backup=str(settings.backup_address),
        monitoring=str(settings.monitoring_address),
    )
    tls = _tls()
    requirements = load_requirements()
    sites = [read_site(d) for d in documents if d.get("kind") == "HospitalSite"]
    if not sites:
        raise CliError("no HospitalSite in the input: nothing to report on")

    async def gather_all() -> list[tuple[str, Any]]:
        return [(site.key, await report(site, addresses, tls, requirements)) for site in sites]

    return asyncio.run(gather_all())


def conformance_table(site: str, found: Any) -> Table:
    from medcloud.operators.conformance import COLUMNS

    table = Table(title=f"{site}: {found.summary_line()}", title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in found.rows():
        table.add_row(*(str(cell) for cell in row))
    return table
