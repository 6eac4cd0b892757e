"""medcloudctl, the operators' command line: checks Region and HospitalSite manifests offline
with the same schema and CEL rules the API server enforces (`validate`), applies them to the
management cluster and follows the operator's progress (`apply`, `get`, `describe`, `delete`),
drives the reconcile core directly where there is no Kubernetes API (`apply --embedded`), and
shows why scheduling placed a system where it did (`explain`).

Exit codes: 0 all clean (applied and Ready, found, deleted); 1 some manifest has problems, or
the object or placement is not there, or (embedded) a site is not Ready; 2 the input could not be
read, or a cluster or service could not be reached or refused the caller, or the configuration
(kubeconfig, addresses, TLS files) is missing or wrong; 3 a wait timed out."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medcloud.operators.manifests import (
    CRD_FILES,
    GROUP,
    ManifestError,
    Problem,
    load_documents,
    manifest_files,
    validate_manifest,
)

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2

app = typer.Typer(
    name="medcloudctl",
    no_args_is_help=True,
    add_completion=False,
)

# Commands that act on a running region (apply, get, describe, delete, conformance, explain) are
# registered on `app` alongside `validate`, each as its own `@app.command()`. Their Kubernetes and
# gRPC parts live in `cli_cluster`, imported when such a command runs: `validate` stays quick
# and needs neither.


@app.callback()
def medcloudctl() -> None:
    """Operate a medcloud region: its Region and HospitalSite resources."""


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class CheckedObject:
    """One Region or HospitalSite document and what is wrong with it."""

    file: str
    kind: str
    namespace: str
    name: str
    problems: tuple[Problem, ...]

    @property
    def label(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "problems": [asdict(p) for p in self.problems]}


def _is_medcloud(document: dict[str, Any]) -> bool:
    api_version = str(document.get("apiVersion") or "")
    return api_version.startswith(f"{GROUP}/") or document.get("kind") in CRD_FILES


def check_path(path: Path) -> list[CheckedObject]:
    """Every Region and HospitalSite in a file or directory, validated; other kinds (a Namespace,
    say) are left alone. ManifestError when something cannot be read."""
    checked = []
    for file in manifest_files(path):
        for document in load_documents(file):
            if not _is_medcloud(document):
                continue
            metadata = (
                document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
            )
            checked.append(
                CheckedObject(
                    file=str(file),
                    kind=str(document.get("kind") or ""),
                    namespace=str(metadata.get("namespace") or ""),
                    name=str(metadata.get("name") or ""),
                    problems=tuple(validate_manifest(document)),
                )
            )
    return checked


def _print_table(console: Console, checked: list[CheckedObject]) -> None:
    """One table per object with problems (field, and what is wrong with it), then a verdict line
    per object."""
    for item in checked:
        if not item.problems:
            continue
        table = Table(title=f"{item.label} ({item.file})", title_justify="left", show_lines=True)
        table.add_column("Field", overflow="fold")
        table.add_column("Problem", overflow="fold", ratio=3)
        for problem in item.problems:
            # The message repeats the field as its prefix, like the API server's; the column has it.
            text = (
                problem.message.removeprefix(f"{problem.field}: ")
                if problem.field
                else problem.message
            )
            table.add_row(problem.field or "-", text)
        console.print(table)
    for item in checked:
        verdict = f"{len(item.problems)} problem(s)" if item.problems else "valid"
        console.print(f"{item.label} ({item.file}): {verdict}", markup=False)


@app.command()
def validate(
    filename: Annotated[
        Path,
        typer.Option(
            "--filename",
            "-f",
            help="A manifest file, or a directory of them (*.yaml, *.yml; multi-document).",
        ),
    ],
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="How to print the verdicts.")
    ] = OutputFormat.TABLE,
) -> None:
    """Check Region and HospitalSite manifests offline against the CRDs' schemas and CEL rules.

    Names every problem as the API server would. Secrets and other objects are not looked up."""
    console = Console(highlight=False)
    try:
        checked = check_path(filename)
    except (ManifestError, OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from error
    if not checked:
        typer.echo(f"error: no Region or HospitalSite manifests in {filename}", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    valid = not any(item.problems for item in checked)
    if output is OutputFormat.JSON:
        report = {"valid": valid, "objects": [item.as_json() for item in checked]}
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_table(console, checked)
    raise typer.Exit(EXIT_CLEAN if valid else EXIT_PROBLEMS)


# --- commands against a running region ------------------------------------------------------------

Kubeconfig = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="The management cluster's kubeconfig (default: $KUBECONFIG, then ~/.kube/config).",
        show_default=False,
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="The HospitalSite's namespace (default: the kubeconfig context's).",
        show_default=False,
    ),
]


@contextmanager
def _cluster_errors() -> Iterator[Any]:
    """The `cli_cluster` module, imported now; its CliError becomes one line on stderr and the
    exit code it carries."""
    from medcloud.operators import cli_cluster

    try:
        yield cli_cluster
    except cli_cluster.CliError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


@app.command()
def apply(
    filename: Annotated[
        Path,
        typer.Option(
            "--filename",
            "-f",
            help="A manifest file, or a directory of them: Regions, HospitalSites, and the "
            "Namespaces and Secrets they need.",
        ),
    ],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", help="Follow each HospitalSite's conditions until it is Ready."
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait for Ready.")
    ] = 300.0,
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="No Kubernetes API: drive the reconcile core directly against the services "
            "(MEDCLOUD_{INVENTORY,SCHEDULING,SECURITY,BACKUP,MONITORING}_ADDRESS, "
            "MEDCLOUD_TLS_*).",
        ),
    ] = False,
    secrets_dir: Annotated[
        Path | None,
        typer.Option(
            "--secrets-dir",
            help="With --embedded: a directory holding each kubeconfig Secret as a file named "
            "after the Secret.",
            show_default=False,
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Validate the manifests offline, then server-side apply them and follow the operator.

    Nothing is applied when a manifest has problems (exit 1). With --wait, exits 0 once every
    HospitalSite is Ready and 3 at the timeout, listing the conditions not True yet."""
    console = Console(highlight=False)
    try:
        checked = check_path(filename)
        documents = load_documents(filename)
    except (ManifestError, OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from error
    if not documents:
        typer.echo(f"error: no manifests in {filename}", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    if any(item.problems for item in checked):
        _print_table(console, checked)
        typer.echo(f"error: nothing applied: {filename} has problems (listed above)", err=True)
        raise typer.Exit(EXIT_PROBLEMS)
    with _cluster_errors() as cluster:
        unsupported = cluster.unsupported_documents(documents)
        if unsupported:
            raise cluster.CliError(
                f"nothing applied: medcloudctl applies Namespaces, Secrets, Regions and "
                f"HospitalSites, and {filename} also holds {', '.join(unsupported)} "
                "(apply those with kubectl)",
                EXIT_PROBLEMS,
            )
        if embedded:
            raise typer.Exit(cluster.apply_embedded(console, documents, secrets_dir))
        management = cluster.Management(kubeconfig)
        sites: list[tuple[str, str]] = []
        try:
            for document in cluster.apply_order(documents):
                outcome = management.apply(document)
                label = cluster.object_label(document, management.default_namespace)
                console.print(f"{label} {outcome}", markup=False)
                if document.get("kind") == "HospitalSite":
                    metadata = document.get("metadata") or {}
                    namespace = metadata.get("namespace") or management.default_namespace
                    sites.append((str(namespace), str(metadata.get("name"))))
            code = (
                cluster.wait_ready(console, management, sites, timeout)
                if wait and sites
                else EXIT_CLEAN
            )
        finally:
            management.close()
    raise typer.Exit(code)


@app.command()
def get(
    name: Annotated[
        str | None,
        typer.Argument(help="A HospitalSite's name; every one of the namespace without it."),
    ] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="HospitalSites of every namespace.")
    ] = False,
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", help="A table, or JSON (name, namespace, status)."),
    ] = OutputFormat.TABLE,
    kubeconfig: Kubeconfig = None,
) -> None:
    """List HospitalSites: phase, systems placed, DR tier, conformance, age."""
    if name and all_namespaces:
        typer.echo("error: a HospitalSite is named within one namespace: drop -A or NAME", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    with _cluster_errors() as cluster:
        management = cluster.Management(kubeconfig)
        try:
            where = namespace or management.default_namespace
            scope = None if all_namespaces else where
            sites = [management.site(where, name)] if name else management.sites(scope)
        finally:
            management.close()
        if output is OutputFormat.JSON:
            found = [cluster.site_json(site) for site in sites]
            typer.echo(json.dumps(found[0] if name else found, indent=2, ensure_ascii=False))
        elif not sites:
            scope = "any namespace" if all_namespaces else f"namespace {where}"
            typer.echo(f"No HospitalSites found in {scope}.", err=True)
        else:
            Console(highlight=False).print(cluster.sites_table(sites))


@app.command()
def describe(
    name: Annotated[str, typer.Argument(help="The HospitalSite's name.")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """One HospitalSite: its spec in short, conditions, placements and recent events."""
    with _cluster_errors() as cluster:
        management = cluster.Management(kubeconfig)
        try:
            cluster.describe(
                Console(highlight=False),
                management,
                namespace or management.default_namespace,
                name,
            )
        finally:
            management.close()


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="The HospitalSite's name.")],
    namespace: Namespace = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait until it is gone: the operator's finalizer removed what it created.",
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait for it to go.")
    ] = 120.0,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Delete a HospitalSite, and wait until the operator has removed what it created.

    Its finalizer releases the placements, protections, inventory entries and member-cluster
    objects before the object goes. Exits 3 when it is still there at the timeout."""
    console = Console(highlight=False)
    with _cluster_errors() as cluster:
        management = cluster.Management(kubeconfig)
        try:
            where = namespace or management.default_namespace
            if not management.delete_site(where, name):
                raise cluster.CliError(
                    f"HospitalSite {name} not found in namespace {where} "
                    f"(management cluster at {management.host})",
                    cluster.EXIT_NOT_FOUND,
                )
            if not wait:
                console.print(
                    f"hospitalsite.medcloud.io/{name} deletion requested in {where}: the "
                    "operator's finalizer removes what the site created",
                    markup=False,
                )
                code = EXIT_CLEAN
            else:
                code = cluster.wait_deleted(console, management, where, name, timeout)
        finally:
            management.close()
    raise typer.Exit(code)


@app.command()
def explain(
    system_id: Annotated[
        str,
        typer.Argument(
            help="The placed system's id: <hospitalId>-<system>, e.g. central-hospital-his."
        ),
    ],
    scheduling_address: Annotated[
        str | None,
        typer.Option(
            "--scheduling-address",
            envvar="MEDCLOUD_SCHEDULING_ADDRESS",
            help="Where scheduling listens (HOST:PORT); TLS from MEDCLOUD_TLS_*.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="A tree and tables, or JSON.")
    ] = OutputFormat.TABLE,
) -> None:
    """Why scheduling placed a system where it did.

    Each instance's host, centre and scores, and the rules (with their requirement ids) that
    removed the other hosts. Exits 1 when scheduling holds no placement for the system."""
    with _cluster_errors() as cluster:
        placement, _ = cluster.fetch_placement(system_id, scheduling_address)
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(cluster.placement_json(placement), indent=2, ensure_ascii=False))
        else:
            cluster.render_placement(Console(highlight=False), placement)


@app.command()
def conformance(
    filename: Annotated[
        Path,
        typer.Option("--filename", "-f", help="A HospitalSite manifest, or a directory of them."),
    ],
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="A table, or JSON for machines.")
    ] = OutputFormat.TABLE,
) -> None:
    """Where each hospital stands against T/GYJS 003-2022, from the services' evidence.

    Every requirement software can judge: pass, fail, not applicable, or unknown when no
    source could give evidence (never a pass). Service addresses come from
    MEDCLOUD_*_ADDRESS, the caller's certificate from MEDCLOUD_TLS_*. Exits 1 when any
    requirement fails."""
    try:
        documents = load_documents(filename)
    except ManifestError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    with _cluster_errors() as cluster:
        reports = cluster.conformance_reports(documents)
        if output is OutputFormat.JSON:
            merged = {site: json.loads(found.to_json()) for site, found in reports}
            only = next(iter(merged.values())) if len(merged) == 1 else merged
            typer.echo(json.dumps(only, indent=2, ensure_ascii=False))
        else:
            console = Console(highlight=False)
            for site, found in reports:
                console.print(cluster.conformance_table(site, found))
        if any(found.as_dict()["summary"]["fail"] for _, found in reports):
            raise typer.Exit(EXIT_PROBLEMS)


if __name__ == "__main__":
    app()
