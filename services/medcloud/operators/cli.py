"""medcloudctl, the operators' command line: checks Region and HospitalSite manifests offline
with the same schema and CEL rules the API server enforces.

Exit codes: 0 all clean, 1 some manifest has problems, 2 the input could not be read."""

from __future__ import annotations

import enum
import json
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
# registered on `app` alongside `validate`, each as its own `@app.command()`.


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


if __name__ == "__main__":
    app()
