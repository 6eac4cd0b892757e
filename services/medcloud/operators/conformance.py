"""The conformance report: for every requirement of REQUIREMENTS.md that software can judge, pass,
fail, not applicable or unknown, with the subject and a message, built from the evidence the
services give (`conformance_sources` gathers it over gRPC). Pure: no gRPC, no Kubernetes.

JUDGED is the contract: the report always lists every ID in it, whether or not REQUIREMENTS.md can
be found (a copy of the standard's restatement ships in operators/REQUIREMENTS.md); the file only
adds each requirement's text and clause.

An ID no source gave evidence for is never a pass: it is "unknown", and so is an ID one of whose
sources could not be asked, unless another source already found it failing."""

from __future__ import annotations

import enum
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Where REQUIREMENTS.md is, when set; otherwise the copy in operators/ (kept identical to
# ../shared/spec/REQUIREMENTS.md, which the standard's restatement lives in).
REQUIREMENTS_FILE_VARIABLE = "MEDCLOUD_REQUIREMENTS_FILE"
# services/medcloud/operators/conformance.py -> the repository root.
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_REQUIREMENTS_FILE = REPOSITORY_ROOT / "operators" / "REQUIREMENTS.md"

# The evidence sources: the five services, and the operator's own view of the platform.
INVENTORY = "inventory"
SCHEDULING = "scheduling"
SECURITY = "security"
MONITORING = "monitoring"
BACKUP = "backup"
PLATFORM = "platform"
SOURCES = (INVENTORY, SCHEDULING, SECURITY, MONITORING, BACKUP, PLATFORM)

# How long a subject or a message of the report may grow before it is trimmed.
MAX_SUBJECT = 200
MAX_MESSAGE = 600


# -- the requirements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    id: str
    text: str
    # The heading it stands under: "Network architecture (clause 7.2, figure 2)".
    clause: str


# R-6.5a, R-7.1-10, R-7.2.1, R-7.3-arch, R-7.4-0, R-A.2.10.
REQUIREMENT_ID = re.compile(r"R-(?:A|\d+)(?:\.\d+)*(?:-(?:\d+|[a-z]+)|[a-z])?(?![\w.-]*\w)")
# Where a bullet starts another requirement: at its start, or after "; " or " · " (clause 7.1's
# grounds and floor loads, clause 7.9's thirteen steps share a bullet).
_STARTS_ANOTHER = re.compile(r"(?:^|[;·]\s*)$")


def requirements_file() -> Path | None:
    """REQUIREMENTS.md as configured (MEDCLOUD_REQUIREMENTS_FILE), else the repository's copy in
    operators/ when it exists, else None."""
    configured = os.environ.get(REQUIREMENTS_FILE_VARIABLE, "").strip()
    if configured:
        return Path(configured)
    return DEFAULT_REQUIREMENTS_FILE if DEFAULT_REQUIREMENTS_FILE.is_file() else None


def load_requirements(path: Path | None = None) -> list[Requirement]:
    """The requirements of REQUIREMENTS.md in the order it lists them. `path`, or the file
    MEDCLOUD_REQUIREMENTS_FILE names, must exist (FileNotFoundError otherwise); without either,
    an empty list when operators/REQUIREMENTS.md is not there either: the report still
    covers JUDGED, only without the requirements' text."""
    chosen = path or requirements_file()
    if chosen is None:
        log.warning(
            "REQUIREMENTS.md not found at %s; set %s to add the requirements' text to the report",
            DEFAULT_REQUIREMENTS_FILE,
            REQUIREMENTS_FILE_VARIABLE,
        )
        return []
    return parse_requirements(chosen.read_text(encoding="utf-8"))


def parse_requirements(markdown: str) -> list[Requirement]:
    """Each requirement of the document: a bullet under a `## ` heading starting with its ID
    (continuation lines are indented); one bullet may hold several, separated by ";" or "·"."""
    requirements: list[Requirement] = []
    clause = ""
    bullet: list[str] = []

    def flush() -> None:
        if bullet:
            requirements.extend(_bullet_requirements(" ".join(bullet), clause))
            bullet.clear()

    for line in markdown.splitlines():
        if line.startswith("#"):
            flush()
            clause = line.lstrip("#").strip()
        elif line.startswith("- "):
            flush()
            bullet.append(line[2:].strip())
        elif bullet and line.startswith(" ") and line.strip():
            bullet.append(line.strip())
        else:
            flush()
    flush()
    return requirements


def _bullet_requirements(text: str, clause: str) -> list[Requirement]:
    starts = [
        match
        for match in REQUIREMENT_ID.finditer(text)
        if _STARTS_ANOTHER.search(text[: match.start()])
    ]
    if not starts or starts[0].start() != 0:
        return []  # the vocabulary: bullets that define words, not requirements
    found = []
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = text[match.end() : end].strip().rstrip(";·").strip()
        found.append(Requirement(match.group(), body, clause))
    return found


# -- what the software judges ---------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """A requirement the report judges: the sources that give evidence for it, and how."""

    id: str
    sources: tuple[str, ...]
    how: str


def _environment(requirement_id: str) -> Judged:
    return Judged(
        requirement_id,
        (MONITORING,),
        "monitoring's latest inspection of the site's room (GetInspectionReport) judges every "
        "node's latest reading against the clause 7.1 rule, a missing reading fails; a rule the "
        "region disabled fails (ListRules)",
    )


_TOPOLOGY = (
    "inventory's ValidateTopology over the whole region: each finding fails it, none passes it"
)

# In the order of REQUIREMENTS.md. Not judged, though a service names them
# (security's baseline tags the key-management and log-audit controls with them, but each is one
# of many things those requirements ask), R-7.4d (no source shows cold data as one storage
# space), R-7.6a (the DR plan orders failover, nothing measures "multi-level wide-area"), R-7.7b
# (escalation runs, but no source reports how fast faults escalated), R-7.1-20 and R-7.1-21
# (floor load is a property of the building: no series, no rule). The rest are processes,
# hardware or programme goals (R-6.5a, R-7.2.3, R-7.3b, R-7.6d, R-7.7a, R-7.9.x but and
# R-A.1, R-A.2.7, R-A.2.9, R-A.2.10) no service has evidence of.
JUDGED: tuple[Judged, ...] = (
    Judged(
        "R-5.5",
        (INVENTORY,),
        "every cluster the site declares is registered in inventory, the one management plane "
        "(GetCluster)",
    ),
    Judged(
        "R-6.5b",
        (MONITORING,),
        "monitoring holds a recent automated inspection of the site's room (GetInspectionReport) "
        "and its capacity and performance rules are enabled (ListRules)",
    ),
    *(
        _environment(f"R-7.1-{number}")
        for number in (1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19)
    ),
    Judged(
        "R-7.2.1",
        (INVENTORY,),
        "the site has a private cluster in its hospital room and a public cluster in a carrier "
        "room, as inventory registers them (GetCluster, GetCentre)",
    ),
    Judged(
        "R-7.2.2",
        (INVENTORY, SECURITY),
        f"{_TOPOLOGY} (a carrier production room in each hospital room's city); security's "
        "baseline control MLPS3-CNS-2 (the site's egress firewall in two centres)",
    ),
    Judged(
        "R-7.2.4",
        (SECURITY,),
        "security's MLPS level-3 baseline for the site (EvaluateBaseline): every control serves "
        "the unified pool",
    ),
    Judged(
        "R-7.2.5",
        (INVENTORY, BACKUP),
        f"{_TOPOLOGY} (the backup centre out of province); backup's protections of the site "
        "(ListProtections): every system protected, with an out-of-province copy, its plan "
        "still feasible against the region's facts now (GetRegionFacts) and its scheduled "
        "copies in place",
    ),
    Judged(
        "R-7.3-arch",
        (BACKUP,),
        "each protection of the site copies to a centre in another city (data level), and from "
        "tier 5, where a standby runs, to a same-city DR centre (application level)",
    ),
    Judged(
        "R-7.3a",
        (SCHEDULING,),
        "each system of the site is placed (GetPlacement), with its instances on different "
        "hosts so that no single server takes two; a failed or degraded placement fails it",
    ),
    Judged(
        "R-7.3c",
        (INVENTORY, SCHEDULING),
        f"{_TOPOLOGY} (flavors); each placed system's instance size",
    ),
    Judged("R-7.4-0", (INVENTORY,), f"{_TOPOLOGY} (block, object and file pools)"),
    Judged(
        "R-7.4a",
        (SCHEDULING,),
        "each placed database-backed system (HIS, EMR, LIS, RIS, PACS database, CDR, clinical "
        "pathway) has block FC-SAN storage; not applicable without one",
    ),
    Judged(
        "R-7.4b",
        (SCHEDULING,),
        "each placed PACS image archive has file NAS storage; not applicable without one",
    ),
    Judged(
        "R-7.4c",
        (SCHEDULING,),
        "each placed portal, e-mail and OA system has distributed (virtualised) storage; not "
        "applicable without one",
    ),
    Judged(
        "R-7.5a",
        (SECURITY,),
        "security's baseline controls for it (boundary firewalls, database audit, a verified "
        "audit trail, three-role separation, the bastion host, log audit)",
    ),
    Judged(
        "R-7.5b",
        (SECURITY,),
        "security's baseline controls for it (intrusion prevention, WAF, anti-malware, "
        "vulnerability scanning, audit)",
    ),
    Judged(
        "R-7.5c",
        (SECURITY, PLATFORM),
        "security's baseline controls for it (TLS between components, key management, "
        "masking); the operator reaching every service over mutual TLS",
    ),
    Judged(
        "R-7.6b",
        (SCHEDULING, BACKUP),
        "each tier-5 system's standby placed in another centre than its primaries (in their "
        "city); its protection at tier 5 (two-site two-phase commit) still feasible; not "
        "applicable without a tier-5 system",
    ),
    Judged(
        "R-7.6c",
        (SCHEDULING, BACKUP),
        "each tier-6+ system's standby placed in another city; its protection at its tier "
        "(synchronous mirror) still feasible; not applicable without a tier-6+ system",
    ),
    Judged(
        "R-7.7c",
        (MONITORING,),
        "the inspection's 'node reports' check: every node of the room heard from recently",
    ),
    Judged("R-7.8a", (INVENTORY,), f"{_TOPOLOGY} (dark fibre ≥ 10G, symmetric)"),
    Judged("R-7.8b", (INVENTORY,), f"{_TOPOLOGY} (no FC-SAN or core interconnect over xPON)"),
    Judged(
        "R-7.9.4",
        (SCHEDULING,),
        "each placed database-backed system runs a primary with a replica or a standby, not a "
        "single instance; not applicable without one",
    ),
    Judged(
        "R-7.9.9",
        (SCHEDULING,),
        "each placed system with a standby has it on another host than every primary; not "
        "applicable without a standby",
    ),
    Judged("R-A.2", (INVENTORY,), f"{_TOPOLOGY} (every kind of room, with its core nodes)"),
    Judged("R-A.2.1", (INVENTORY,), f"{_TOPOLOGY} (core A to carrier production, 2 x 10G IP)"),
    Judged("R-A.2.2", (INVENTORY,), f"{_TOPOLOGY} (hospital to carrier production FC-SAN)"),
    Judged("R-A.2.3", (INVENTORY,), f"{_TOPOLOGY} (core B to carrier standby, 2 x 10G IP)"),
    Judged("R-A.2.4", (INVENTORY,), f"{_TOPOLOGY} (40G between core A and B and carrier rooms)"),
    Judged("R-A.2.5", (INVENTORY,), f"{_TOPOLOGY} (branch lines to both rooms, ≥ 1000M)"),
    Judged("R-A.2.6", (INVENTORY,), f"{_TOPOLOGY} (paired resources in different conduits)"),
    Judged(
        "R-A.2.8",
        (SECURITY,),
        "security's baseline controls for the internet and extranet boundary (egress firewall, "
        "intrusion prevention)",
    ),
)


def judged_ids(source: str, judged: Iterable[Judged] = JUDGED) -> tuple[str, ...]:
    """The IDs `source` gives evidence for."""
    return tuple(item.id for item in judged if source in item.sources)


# -- evidence -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What one source found about one requirement on one subject ("link/x", "site/y",
    "system/z"): met, or not and why."""

    requirement_id: str
    subject: str
    passed: bool
    message: str
    source: str


@dataclass(frozen=True)
class NotApplicable:
    """A source says the requirement has nothing to judge here (no tier-5 system, say)."""

    requirement_id: str
    reason: str
    source: str = ""
    subject: str = ""


@dataclass(frozen=True)
class NoEvidence:
    """A source could not be asked, or had nothing to show, for `requirement_ids` (all the IDs
    it judges when empty): those IDs are unknown unless something failed them."""

    source: str
    reason: str
    requirement_ids: tuple[str, ...] = ()
    subject: str = ""

    def covers(self, requirement_id: str, judged: Judged) -> bool:
        if self.requirement_ids:
            return requirement_id in self.requirement_ids
        return self.source in judged.sources


Evidence = Finding | NotApplicable | NoEvidence


def unavailable_sources(evidence: Iterable[Evidence]) -> dict[str, str]:
    """The sources that could not be asked at all, with why."""
    return {
        item.source: item.reason
        for item in evidence
        if isinstance(item, NoEvidence) and not item.requirement_ids
    }


# -- the report -----------------------------------------------------------------------------------


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReportEntry:
    id: str
    status: Status
    subject: str
    message: str
    # From REQUIREMENTS.md, when it was found.
    text: str = ""
    clause: str = ""
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "status": self.status.value,
            "subject": self.subject,
            "message": self.message,
        }


COLUMNS = ("Requirement", "Status", "Subject", "Message")


@dataclass(frozen=True)
class Report:
    entries: tuple[ReportEntry, ...]
    # The sources that could not be asked, with why.
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for entry in self.entries:
            counts[entry.status.value] += 1
        return {**counts, "total": len(self.entries)}

    def entry(self, requirement_id: str) -> ReportEntry:
        for entry in self.entries:
            if entry.id == requirement_id:
                return entry
        raise KeyError(requirement_id)

    def with_status(self, status: Status) -> tuple[ReportEntry, ...]:
        return tuple(entry for entry in self.entries if entry.status is status)

    def as_dict(self) -> dict[str, Any]:
        """{"requirements": [{"id", "status", "subject", "message"}, ...], "summary": {"pass",
        "fail", "not-applicable", "unknown", "total"}}."""
        return {
            "requirements": [entry.as_dict() for entry in self.entries],
            "summary": self.summary,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False)

    def summary_line(self) -> str:
        """For HospitalSite status `conformance`: "38 pass, 2 fail, 11 n/a, 0 unknown"."""
        counts = self.summary
        return (
            f"{counts[Status.PASS]} pass, {counts[Status.FAIL]} fail, "
            f"{counts[Status.NOT_APPLICABLE]} n/a, {counts[Status.UNKNOWN]} unknown"
        )

    def rows(self) -> list[tuple[str, str, str, str]]:
        """One row per requirement for a table of COLUMNS."""
        return [
            (entry.id, entry.status.value, entry.subject, entry.message) for entry in self.entries
        ]


def build_report(
    evidence: Iterable[Evidence],
    judged: Sequence[Judged] = JUDGED,
    requirements: Sequence[Requirement] | None = None,
) -> Report:
    """One entry per judged ID, in `judged`'s order. Per ID: fail when any finding failed it;
    else not applicable when a source says so and none judged it; else unknown when a source
    that judges it gave no evidence (it could not be asked, or had nothing to show); else pass
    when findings exist and all passed; else unknown. Evidence for IDs not judged is ignored."""
    items = list(evidence)
    known = {requirement.id: requirement for requirement in requirements or ()}
    entries = []
    for item in judged:
        requirement = known.get(item.id)
        if requirements is not None and requirement is None:
            log.warning("judged requirement %s is not in REQUIREMENTS.md", item.id)
        status, subject, message = _judge(item, items)
        entries.append(
            ReportEntry(
                item.id,
                status,
                subject,
                message,
                requirement.text if requirement else "",
                requirement.clause if requirement else "",
                item.sources,
            )
        )
    return Report(tuple(entries), unavailable_sources(items))


def _judge(judged: Judged, evidence: list[Evidence]) -> tuple[Status, str, str]:
    findings = [e for e in evidence if isinstance(e, Finding) and e.requirement_id == judged.id]
    failed = [finding for finding in findings if not finding.passed]
    passed = [finding for finding in findings if finding.passed]
    exempt = [e for e in evidence if isinstance(e, NotApplicable) and e.requirement_id == judged.id]
    gaps = [e for e in evidence if isinstance(e, NoEvidence) and e.covers(judged.id, judged)]
    if failed:
        return Status.FAIL, _subjects(failed), _messages(failed)
    if exempt and not passed:
        reasons = [f"{e.source}: {e.reason}" if e.source else e.reason for e in exempt]
        return (
            Status.NOT_APPLICABLE,
            _trim(", ".join(_unique(e.subject for e in exempt if e.subject)), MAX_SUBJECT),
            _joined(_unique(reasons), MAX_MESSAGE),
        )
    if gaps:
        missing = _unique(f"no evidence from {gap.source}: {gap.reason}" for gap in gaps)
        if passed:
            missing.append(f"what was gathered passed ({_messages(passed)})")
        subjects = _unique(gap.subject for gap in gaps if gap.subject)
        return (
            Status.UNKNOWN,
            _trim(", ".join(subjects), MAX_SUBJECT),
            _joined(missing, MAX_MESSAGE),
        )
    if passed:
        return Status.PASS, _subjects(passed), _messages(passed)
    return (
        Status.UNKNOWN,
        "",
        f"no evidence gathered (source {' or '.join(judged.sources)} unavailable?)",
    )


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _subjects(findings: list[Finding]) -> str:
    return _joined(_unique(finding.subject for finding in findings), MAX_SUBJECT, ", ")


def _messages(findings: list[Finding]) -> str:
    """Each finding's message, after its subject unless they all share one (the entry's
    subject already names it)."""
    one_subject = len({finding.subject for finding in findings}) == 1
    return _joined(
        _unique(
            finding.message
            if one_subject or not finding.subject
            else f"{finding.subject}: {finding.message}"
            for finding in findings
        ),
        MAX_MESSAGE,
    )


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _joined(parts: list[str], limit: int, separator: str = "; ") -> str:
    """The parts joined while they fit in `limit`, then how many more there were."""
    shown: list[str] = []
    for index, part in enumerate(parts):
        rest = len(parts) - index - 1
        tail = f" … (+{rest} more)" if rest else ""
        if len(separator.join([*shown, part])) + len(tail) <= limit:
            shown.append(part)
        elif shown:
            return separator.join(shown) + f" … (+{rest + 1} more)"
        else:
            return _trim(part, limit - len(tail)) + tail
    return separator.join(shown)
