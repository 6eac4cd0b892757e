"""The MLPS level-3 baseline (GB/T 22239-2019, clause 8.1) as it applies to one site of the
platform: a catalogue of controls, each naming the pooled capabilities and the facts it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.core.identifiers import DNS_LABEL, DNS_LABEL_RULE
from medcloud.security.domain.audit import MINIMUM_RETENTION_DAYS
from medcloud.security.domain.pool import Capability, SecurityPool, Zone

# builds the unified pool to MLPS level 3, so every control serves it besides its own IDs.
_POOL_REQUIREMENT = "R-7.2.4"

# Hardware redundancy of key network devices (8.1.2.1 d): the egress firewall survives the loss of
# a whole centre only if the site draws on firewalls in two of them (R-7.2.2 active-active).
MIN_FIREWALL_CENTRES = 2


@dataclass(frozen=True)
class SiteFacts:
    """What the baseline looks at for one site: the pool's coverage of its zones, the centres of
    the virtual firewalls at its internet boundary, and facts the security services report."""

    site_id: str
    coverage: Mapping[Zone, frozenset[Capability]]
    internet_firewall_centres: frozenset[str]
    log_retention_days: int
    # TLS (or IPsec) on every link between components, so data in transit is confidential and
    # its integrity checked.
    transport_encrypted: bool
    # No identity holds two of the system, security and audit administrator roles.
    separate_admin_roles: bool
    # The audit trail's hash chain and signed checkpoints verified without a problem.
    audit_trail_verified: bool


def site_facts(
    pool: SecurityPool,
    site_id: str,
    *,
    log_retention_days: int,
    transport_encrypted: bool,
    separate_admin_roles: bool,
    audit_trail_verified: bool,
) -> SiteFacts:
    """The site's facts, with coverage and firewall centres read from the pool."""
    return SiteFacts(
        site_id=site_id,
        coverage=pool.coverage(site_id),
        internet_firewall_centres=pool.centres_serving(
            site_id, Zone.INTERNET, Capability.VIRTUAL_FIREWALL
        ),
        log_retention_days=log_retention_days,
        transport_encrypted=transport_encrypted,
        separate_admin_roles=separate_admin_roles,
        audit_trail_verified=audit_trail_verified,
    )


# A fact check yields one sentence per shortfall; nothing means the facts meet the control.
FactCheck = Callable[[SiteFacts], Iterable[str]]


@dataclass(frozen=True)
class Control:
    """One control of the baseline: `clause` of GB/T 22239-2019 it implements, the medcloud
    requirements it serves, the capabilities the pool must allocate to the site in each zone, and
    a check of the site's other facts, if it needs any."""

    id: str
    clause: str
    requirement_ids: tuple[str, ...]
    title: str
    needs: tuple[tuple[Zone, Capability], ...] = ()
    check: FactCheck | None = None


@dataclass(frozen=True)
class BaselineFinding:
    """How one site stands against one control; `detail` says exactly what is missing."""

    control_id: str
    requirement_ids: tuple[str, ...]
    title: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class BaselineReport:
    site_id: str
    findings: tuple[BaselineFinding, ...]

    @property
    def passed(self) -> bool:
        return all(finding.passed for finding in self.findings)

    def failures(self) -> tuple[BaselineFinding, ...]:
        return tuple(finding for finding in self.findings if not finding.passed)

    @property
    def score(self) -> float:
        """The share of controls met, from 0.0 to 1.0; an empty catalogue is met vacuously."""
        if not self.findings:
            return 1.0
        return sum(finding.passed for finding in self.findings) / len(self.findings)


def _transport_encrypted(facts: SiteFacts) -> Iterator[str]:
    if not facts.transport_encrypted:
        yield (
            "traffic between components is not encrypted; TLS must protect its confidentiality "
            "and integrity"
        )


def _firewalls_in_two_centres(facts: SiteFacts) -> Iterator[str]:
    centres = sorted(facts.internet_firewall_centres)
    if len(centres) < MIN_FIREWALL_CENTRES:
        where = f"only in {', '.join(centres)}" if centres else "in no centre"
        yield (
            f"internet-zone virtual-firewall runs {where}; the key boundary device needs "
            f"instances in at least {MIN_FIREWALL_CENTRES} centres"
        )


def _audit_trail_verified(facts: SiteFacts) -> Iterator[str]:
    if not facts.audit_trail_verified:
        yield (
            "the audit trail did not verify; its records must be protected against deletion, "
            "alteration and overwriting"
        )


def _separate_admin_roles(facts: SiteFacts) -> Iterator[str]:
    if not facts.separate_admin_roles:
        yield (
            "an identity holds two of the system, security and audit administrator roles; "
            "each must be held apart"
        )


# 8.1.5.4 d keeps audit records as long as the law says: six months under the Cybersecurity Law,
# article 21, the same floor the platform's own audit trail keeps.
def _log_retention(facts: SiteFacts) -> Iterator[str]:
    if facts.log_retention_days < MINIMUM_RETENTION_DAYS:
        yield (
            f"logs are kept {facts.log_retention_days} days; they must be kept at least "
            f"{MINIMUM_RETENTION_DAYS} days (six months)"
        )


def _control(
    control_id: str,
    clause: str,
    requirement_ids: tuple[str, ...],
    title: str,
    needs: tuple[tuple[Zone, Capability], ...] = (),
    check: FactCheck | None = None,
) -> Control:
    return Control(control_id, clause, (*requirement_ids, _POOL_REQUIREMENT), title, needs, check)


# Controls are named MLPS3-<part>-<n> after the part of GB/T 22239-2019 clause 8.1 they belong to:
# CNS communication network (8.1.2), ABS area boundary (8.1.3), CES computing environment (8.1.4),
# SMC security management centre (8.1.5). The management centre's devices sit beside the core
# switch (R-A.2.8), so what it needs is allocated in the core zone.
MLPS_LEVEL_3: tuple[Control, ...] = (
    _control(
        "MLPS3-CNS-1",
        "8.1.2.1 c",
        ("R-A.2.8", "R-7.5a"),
        "Zones that face outside bodies are isolated from the rest by firewalls",
        needs=(
            (Zone.EXTRANET, Capability.VIRTUAL_FIREWALL),
            (Zone.DMZ, Capability.VIRTUAL_FIREWALL),
        ),
    ),
    _control(
        "MLPS3-CNS-2",
        "8.1.2.1 d",
        ("R-A.2.8", "R-7.2.2"),
        "The egress firewall, a key boundary device, is redundant across centres",
        check=_firewalls_in_two_centres,
    ),
    _control(
        "MLPS3-CNS-3",
        "8.1.2.2 a, b",
        ("R-7.5c",),
        "Communication is protected by cryptography for integrity and confidentiality",
        check=_transport_encrypted,
    ),
    _control(
        "MLPS3-ABS-1",
        "8.1.3.1 a",
        ("R-A.2.8", "R-7.5a"),
        "Traffic crossing the internet boundary passes a controlled port of the egress firewall",
        needs=((Zone.INTERNET, Capability.VIRTUAL_FIREWALL),),
    ),
    _control(
        "MLPS3-ABS-2",
        "8.1.3.3 a",
        ("R-A.2.8", "R-7.5b"),
        "Attacks launched from the internet are detected and prevented",
        needs=((Zone.INTERNET, Capability.IPS_IDS),),
    ),
    _control(
        "MLPS3-ABS-3",
        "8.1.3.3 a, b",
        ("R-A.2.8", "R-7.5b"),
        "Attacks over the extranet, from outside or from inside, are detected and prevented",
        needs=((Zone.EXTRANET, Capability.IPS_IDS),),
    ),
    _control(
        "MLPS3-ABS-4",
        "8.1.3.2 e",
        ("R-7.5a", "R-7.5b"),
        "Web systems in the DMZ get access control by application protocol and content",
        needs=((Zone.DMZ, Capability.WAF),),
    ),
    _control(
        "MLPS3-CES-1",
        "8.1.4.5",
        ("R-7.5b",),
        "Hosts in the core are protected against malicious code",
        needs=((Zone.CORE, Capability.ANTI_MALWARE),),
    ),
    _control(
        "MLPS3-CES-2",
        "8.1.4.3 a, b",
        ("R-7.5a", "R-7.5b"),
        "Every database user's operations on health records are audited",
        needs=((Zone.CORE, Capability.DATABASE_AUDIT),),
    ),
    _control(
        "MLPS3-CES-3",
        "8.1.4.3 c",
        ("R-7.5a", "R-7.5b"),
        "Audit records are protected against unexpected deletion, alteration or overwriting",
        check=_audit_trail_verified,
    ),
    _control(
        "MLPS3-CES-4",
        "8.1.4.4 e",
        ("R-7.5b",),
        "Known vulnerabilities are found in the core and the internet-facing DMZ",
        needs=(
            (Zone.CORE, Capability.VULNERABILITY_SCANNING),
            (Zone.DMZ, Capability.VULNERABILITY_SCANNING),
        ),
    ),
    _control(
        "MLPS3-CES-5",
        "8.1.4.7, 8.1.4.8",
        ("R-7.5c", "R-6.4"),
        "Keys for the integrity and confidentiality of stored data are managed centrally",
        needs=((Zone.CORE, Capability.KEY_MANAGEMENT),),
    ),
    _control(
        "MLPS3-CES-6",
        "8.1.4.11 b",
        ("R-7.5c",),
        "Personal health data leaving through the extranet or the DMZ is masked",
        needs=((Zone.EXTRANET, Capability.DATA_MASKING), (Zone.DMZ, Capability.DATA_MASKING)),
    ),
    _control(
        "MLPS3-SMC-1",
        "8.1.5.1, 8.1.5.2, 8.1.5.3",
        ("R-7.5a",),
        "System, audit and security administration are separate roles",
        check=_separate_admin_roles,
    ),
    _control(
        "MLPS3-SMC-2",
        "8.1.5.4 b, 8.1.4.1 c",
        ("R-7.5a", "R-7.5b"),
        "Administrators reach devices only through a bastion host on a secure management path",
        needs=((Zone.CORE, Capability.BASTION_HOST),),
    ),
    _control(
        "MLPS3-SMC-3",
        "8.1.5.4 d",
        ("R-7.5a", "R-7.5b", "R-6.6"),
        "Audit data of every device is collected, analysed centrally and kept six months",
        needs=((Zone.CORE, Capability.LOG_AUDIT),),
        check=_log_retention,
    ),
)


def facts_violations(facts: SiteFacts) -> list[FieldViolation]:
    """Every rule the facts break; an empty list means the baseline can be evaluated."""
    violations = []
    if not DNS_LABEL.match(facts.site_id):
        violations.append(FieldViolation("facts.site_id", DNS_LABEL_RULE))
    if facts.log_retention_days < 0:
        violations.append(
            FieldViolation(
                "facts.log_retention_days", f"must not be negative, got {facts.log_retention_days}"
            )
        )
    return violations


def _shortfalls(control: Control, facts: SiteFacts) -> list[str]:
    missing = [
        f"{zone.value} zone has no {capability.value} allocated"
        for zone, capability in control.needs
        if capability not in facts.coverage.get(zone, frozenset())
    ]
    if control.check is not None:
        missing += control.check(facts)
    return missing


def _finding(control: Control, facts: SiteFacts) -> BaselineFinding:
    shortfalls = _shortfalls(control, facts)
    cited = ", ".join((control.id, *control.requirement_ids))
    detail = f"{'; '.join(shortfalls)} ({cited})" if shortfalls else f"met ({cited})"
    return BaselineFinding(
        control.id, control.requirement_ids, control.title, not shortfalls, detail
    )


def evaluate_baseline(
    facts: SiteFacts, controls: Iterable[Control] = MLPS_LEVEL_3
) -> BaselineReport:
    """One finding per control, in catalogue order."""
    violations = facts_violations(facts)
    if violations:
        raise InvalidArgument(violations)
    return BaselineReport(facts.site_id, tuple(_finding(c, facts) for c in controls))
