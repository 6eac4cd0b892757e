"""A tamper-evident audit trail: append-only records, each carrying the hash of the one before,
sealed now and then by signed checkpoints, that verification checks record by record (R-7.5a,
R-7.5b, MLPS level 3)."""

from __future__ import annotations

import bisect
import enum
import hashlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_string
from types import MappingProxyType
from typing import Protocol

from medcloud.core.errors import FailedPrecondition, FieldViolation, InvalidArgument

# Part of every hashed or signed encoding, so that neither can be mistaken for the other, nor for
# a later format.
RECORD_FORMAT = "medcloud.audit.v1"
CHECKPOINT_FORMAT = "medcloud.audit-checkpoint.v1"

# What the first record names as the hash before it.
GENESIS_HASH = "0" * 64

# The service seals the newest record at least this often; it may seal sooner on a timer.
CHECKPOINT_EVERY_RECORDS = 1000

# R-7.5c; MLPS level 3 (GB/T 22239-2019, 8.1.5.4 d) keeps audit records as long as the law
# says, and the Cybersecurity Law (article 21) says at least six months.
MINIMUM_RETENTION_DAYS = 180
SECONDS_PER_DAY = 86_400

MICROSECONDS_PER_SECOND = 1_000_000

# Bounds on one event, so that one caller cannot flood etcd through the trail.
MAX_ACTOR_CHARS = 512
MAX_ROLE_CHARS = 64
MAX_ACTION_CHARS = 128
MAX_TARGET_CHARS = 512
MAX_OUTCOME_CHARS = 64
MAX_DETAIL_ENTRIES = 32
MAX_DETAIL_KEY_CHARS = 64
MAX_DETAIL_VALUE_CHARS = 1024

# Beyond this many problems a report only counts them: a trail rewritten from end to end must not
# exhaust the verifier's memory.
DEFAULT_MAX_PROBLEMS = 1000

_ACTION = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_.-]*$")

# How far back, in records, verification remembers hashes to check the link of a record that
# arrives out of order; a record moved further than this is still reported as reordered.
_RECENT_RECORDS = 1024


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something that happened and must be recorded: a policy change, a data access, an export
    decision, an administrative action. `actor` is the caller's identity (a certificate subject),
    `role` the role it acted in, `action` a dotted name ("policy.update"), `outcome` what came of
    it ("allowed", "refused"). `detail` holds identifiers and reasons, never personal health
    data: the trail is kept for years and read by auditors, not clinicians."""

    actor: str
    role: str
    action: str
    target: str
    outcome: str
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        violations = list(_event_violations(self))
        if violations:
            raise InvalidArgument(violations)
        # A private, sorted copy: the caller's dict may change after the event was validated.
        object.__setattr__(self, "detail", MappingProxyType(dict(sorted(self.detail.items()))))


def _text_violations(
    field_name: str, value: object, limit: int, *, required: bool
) -> Iterator[FieldViolation]:
    if not isinstance(value, str):
        yield FieldViolation(field_name, f"must be a string, got {type(value).__name__}")
        return
    if required and not value:
        yield FieldViolation(field_name, "must not be empty")
    if len(value) > limit:
        yield FieldViolation(field_name, f"must be at most {limit} characters, got {len(value)}")
    try:
        value.encode()
    except UnicodeEncodeError:
        yield FieldViolation(field_name, "must be valid Unicode (no lone surrogates)")


def _event_violations(event: AuditEvent) -> Iterator[FieldViolation]:
    yield from _text_violations("event.actor", event.actor, MAX_ACTOR_CHARS, required=True)
    yield from _text_violations("event.role", event.role, MAX_ROLE_CHARS, required=False)
    yield from _text_violations("event.action", event.action, MAX_ACTION_CHARS, required=True)
    if isinstance(event.action, str) and event.action and not _ACTION.match(event.action):
        yield FieldViolation(
            "event.action",
            "must be dotted lower-case words ('policy.update'), got " + repr(event.action),
        )
    yield from _text_violations("event.target", event.target, MAX_TARGET_CHARS, required=False)
    yield from _text_violations("event.outcome", event.outcome, MAX_OUTCOME_CHARS, required=True)
    if not isinstance(event.detail, Mapping):
        yield FieldViolation("event.detail", "must map strings to strings")
        return
    if len(event.detail) > MAX_DETAIL_ENTRIES:
        yield FieldViolation(
            "event.detail",
            f"must have at most {MAX_DETAIL_ENTRIES} entries, got {len(event.detail)}",
        )
    for key, value in event.detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            yield FieldViolation(
                "event.detail",
                f"key {key!r} must be lower-case ASCII letters, digits, '_', '.' or '-', "
                "starting with a letter",
            )
            continue
        if len(key) > MAX_DETAIL_KEY_CHARS:
            yield FieldViolation(
                f"event.detail.{key}", f"key must be at most {MAX_DETAIL_KEY_CHARS} characters"
            )
        yield from _text_violations(
            f"event.detail.{key}", value, MAX_DETAIL_VALUE_CHARS, required=False
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One event as the trail keeps it. Sequences run 1, 2, 3... without gaps; `recorded_at_us`
    is Unix time in whole microseconds, so that the hashed value is an integer and no float
    formatting can change it; `previous_hash` is the `hash` of the record before (GENESIS_HASH
    for the first); `hash` is the hex SHA-256 of `canonical_encoding` of every other field."""

    sequence: int
    recorded_at_us: int
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    detail: Mapping[str, str]
    previous_hash: str
    hash: str

    @property
    def recorded_at(self) -> float:
        """Unix seconds."""
        return self.recorded_at_us / MICROSECONDS_PER_SECOND


def canonical_encoding(record: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but `hash`, as UTF-8 JSON with keys sorted by
    code point, no whitespace and non-ASCII characters unescaped, plus "format" naming this
    encoding:

        {"action":…,"actor":…,"detail":{…},"format":"medcloud.audit.v1","outcome":…,
         "previous_hash":…,"recorded_at_us":<int>,"role":…,"sequence":<int>,"target":…}

    Strings escape only '"', '\\' and U+0000-U+001F (\\b \\t \\n \\f \\r, else \\u00xx in
    lower-case hex); integers are plain decimals. This is exactly what `json.dumps(...,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes, built by hand because
    that call costs twice as much and verification runs it a million times."""
    q = _json_string
    detail = ",".join([f"{q(key)}:{q(value)}" for key, value in sorted(record.detail.items())])
    return (
        f'{{"action":{q(record.action)},"actor":{q(record.actor)},"detail":{{{detail}}},'
        f'"format":"{RECORD_FORMAT}","outcome":{q(record.outcome)},'
        f'"previous_hash":{q(record.previous_hash)},"recorded_at_us":{record.recorded_at_us:d},'
        f'"role":{q(record.role)},"sequence":{record.sequence:d},"target":{q(record.target)}}}'
    ).encode()


def record_hash(record: AuditRecord) -> str:
    """The hex SHA-256 a record should carry as `hash`."""
    return hashlib.sha256(canonical_encoding(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    """Where a chain starts: the sequence and hash of the record just before its first. The
    default is the start of the trail; after pruning, the last pruned record."""

    sequence: int = 0
    hash: str = GENESIS_HASH


def next_record(
    previous: AuditRecord | ChainAnchor | None, event: AuditEvent, at: float
) -> AuditRecord:
    """The record that follows `previous` (None at the start of the trail), made at Unix time
    `at`. Pure: the caller stores it, and retries with the new last record if another writer
    stored one first."""
    before = previous if previous is not None else ChainAnchor()
    unsealed = AuditRecord(
        sequence=before.sequence + 1,
        recorded_at_us=round(at * MICROSECONDS_PER_SECOND),
        actor=event.actor,
        role=event.role,
        action=event.action,
        target=event.target,
        outcome=event.outcome,
        detail=event.detail,
        previous_hash=before.hash,
        hash="",
    )
    return _with_hash(unsealed, record_hash(unsealed))


def _with_hash(record: AuditRecord, digest: str) -> AuditRecord:
    # dataclasses.replace would run the constructor again; this is the hot path of appending.
    object.__setattr__(record, "hash", digest)
    return record


class AuditChain:
    """Appends events to one chain held in memory. Threads may share it: appends are serialised,
    so sequences stay gapless and each record links to the one stored before it."""

    def __init__(self, last: AuditRecord | ChainAnchor | None = None) -> None:
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self) -> AuditRecord | ChainAnchor | None:
        return self._last

    def append(self, event: AuditEvent, at: float) -> AuditRecord:
        with self._lock:
            record = next_record(self._last, event, at)
            self._last = record
            return record


class Signer(Protocol):
    """Signs checkpoints with one private key; `key_id` names the public key that verifies."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks signatures against the public keys it knows, by key id; an unknown key id fails."""

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signature over one record's sequence and hash, which seals that record and, through the
    hash links, every record before it. `signed_at_us` is Unix time in whole microseconds;
    `signature` is hex."""

    sequence: int
    record_hash: str
    signed_at_us: int
    key_id: str
    signature: str


def _checkpoint_message(sequence: int, record_hash: str, signed_at_us: int, key_id: str) -> bytes:
    # The same canonical JSON as records, so that no other field set can produce these bytes.
    q = _json_string
    return (
        f'{{"format":"{CHECKPOINT_FORMAT}","key_id":{q(key_id)},"record_hash":{q(record_hash)},'
        f'"sequence":{sequence:d},"signed_at_us":{signed_at_us:d}}}'
    ).encode()


def make_checkpoint(record: AuditRecord, signer: Signer, at: float) -> Checkpoint:
    """Seals `record` at Unix time `at`. Refuses a record whose hash does not match its content:
    sealing it would vouch for whatever changed it."""
    if record_hash(record) != record.hash:
        raise FailedPrecondition(
            f"audit record {record.sequence} does not match its hash; refusing to seal it"
        )
    signed_at_us = round(at * MICROSECONDS_PER_SECOND)
    message = _checkpoint_message(record.sequence, record.hash, signed_at_us, signer.key_id)
    return Checkpoint(
        sequence=record.sequence,
        record_hash=record.hash,
        signed_at_us=signed_at_us,
        key_id=signer.key_id,
        signature=signer.sign(message).hex(),
    )


def checkpoint_due(
    last_checkpoint_sequence: int, record_sequence: int, every: int = CHECKPOINT_EVERY_RECORDS
) -> bool:
    """Whether the record just stored should be sealed, counting records since the last seal (0
    when there is none)."""
    if every < 1:
        raise InvalidArgument.single(
            "audit.checkpoint_every_records", f"must be at least 1, got {every}"
        )
    return record_sequence - last_checkpoint_sequence >= every


class ProblemKind(enum.StrEnum):
    # The record's content no longer matches its own hash.
    ALTERED = "altered"
    # Sequences are absent from the trail.
    MISSING = "missing"
    # A record arrived after one with a higher sequence.
    REORDERED = "reordered"
    # A sequence appeared twice.
    DUPLICATE = "duplicate"
    # A record's previous_hash is not the hash of the record before it.
    BROKEN_LINK = "broken-link"
    # A checkpoint's signature does not verify.
    BAD_CHECKPOINT = "bad-checkpoint"
    # A record a valid checkpoint sealed is gone or hashes differently.
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the trail, at the record `sequence` names (the first of a missing
    range; the later record of a broken link)."""

    sequence: int
    kind: ProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What verification found. `problems` is sorted by sequence; `problems_omitted` counts those
    beyond the report's limit. `head` is the highest record seen, worth keeping outside the trail
    as the next `expected_last_sequence`."""

    ok: bool
    records_checked: int
    problems: tuple[Problem, ...]
    head: ChainAnchor
    problems_omitted: int = 0


class _Findings:
    def __init__(self, limit: int) -> None:
        self.problems: list[Problem] = []
        self.omitted = 0
        self._limit = limit

    def add(self, sequence: int, kind: ProblemKind, detail: str) -> None:
        if len(self.problems) < self._limit:
            self.problems.append(Problem(sequence, kind, detail))
        else:
            self.omitted += 1


class _Gaps:
    """Sequences not seen yet below the highest seen, as sorted, disjoint inclusive ranges: a
    range one million long costs what a range of one does."""

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def add(self, first: int, last: int) -> None:
        # Gaps open only above the highest sequence seen, so they arrive in order.
        self._firsts.append(first)
        self._lasts.append(last)

    def _index(self, sequence: int) -> int | None:
        index = bisect.bisect_right(self._firsts, sequence) - 1
        if index >= 0 and sequence <= self._lasts[index]:
            return index
        return None

    def __contains__(self, sequence: int) -> bool:
        return self._index(sequence) is not None

    def discard(self, sequence: int) -> bool:
        """Removes a sequence that turned up late; False if it was not missing."""
        index = self._index(sequence)
        if index is None:
            return False
        first, last = self._firsts[index], self._lasts[index]
        del self._firsts[index], self._lasts[index]
        if sequence < last:
            self._firsts.insert(index, sequence + 1)
            self._lasts.insert(index, last)
        if first < sequence:
            self._firsts.insert(index, first)
            self._lasts.insert(index, sequence - 1)
        return True

    def ranges(self) -> Iterator[tuple[int, int]]:
        return zip(self._firsts, self._lasts, strict=True)


def _sealing_checkpoints(
    checkpoints: Iterable[Checkpoint], verifier: Verifier, start: ChainAnchor, found: _Findings
) -> dict[int, list[Checkpoint]]:
    """The checkpoints whose signatures verify, by the sequence they seal; the others are
    reported. Those sealing pruned records are dropped, the one sealing the anchor checked."""
    sealing: dict[int, list[Checkpoint]] = {}
    # A checkpoint vouches for the anchor, or the anchor is the start of the trail.
    anchor_checked = start.sequence == 0
    for checkpoint in checkpoints:
        try:
            message = _checkpoint_message(
                checkpoint.sequence,
                checkpoint.record_hash,
                checkpoint.signed_at_us,
                checkpoint.key_id,
            )
            valid = verifier.verify(checkpoint.key_id, message, bytes.fromhex(checkpoint.signature))
        except (TypeError, ValueError):
            valid = False
        if not valid:
            found.add(
                checkpoint.sequence,
                ProblemKind.BAD_CHECKPOINT,
                f"the checkpoint sealing record {checkpoint.sequence} does not verify with key "
                f"{checkpoint.key_id!r} (unknown key, or not signed by it)",
            )
        elif checkpoint.sequence == start.sequence:
            anchor_checked = True
            if checkpoint.record_hash != start.hash:
                found.add(
                    start.sequence,
                    ProblemKind.CHECKPOINT_MISMATCH,
                    f"the chain starts after record {start.sequence} with hash {start.hash}, "
                    f"but a checkpoint sealed that record with hash {checkpoint.record_hash}",
                )
        elif checkpoint.sequence > start.sequence:
            sealing.setdefault(checkpoint.sequence, []).append(checkpoint)
    if not anchor_checked:
        found.add(
            start.sequence,
            ProblemKind.CHECKPOINT_MISMATCH,
            f"no valid checkpoint seals record {start.sequence}, where the chain starts: the "
            "anchor cannot be told from a forged one",
        )
    return sealing


def verify(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[Checkpoint],
    verifier: Verifier,
    *,
    anchor: ChainAnchor | None = None,
    expected_last_sequence: int | None = None,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> VerificationReport:
    """Checks a trail, records in stored order, in one pass and constant memory (the checkpoints,
    one per thousand records or so, are held). Reports, naming the record:

    - a record whose content no longer matches its hash ("altered");
    - a record changed and re-hashed: the next record's link breaks ("broken-link");
    - removed records ("missing", with the link that jumps over them);
    - records out of order ("reordered") or repeated ("duplicate");
    - a record a signed checkpoint sealed that is gone or differs ("checkpoint-mismatch"), which
      catches a rewritten or truncated chain up to the last checkpoint; and checkpoints whose
      signature fails ("bad-checkpoint").

    What hashes cannot show: records after the last checkpoint that were rewritten, re-hashed and
    re-linked to the end, or removed from the end, when the later checkpoints went too. Pass
    `expected_last_sequence`, the highest sequence known from elsewhere (an earlier report's
    `head`, another replica), to catch a shortened tail. A chain verified from an `anchor` (after
    pruning) needs the checkpoint sealing the anchor, or a forged anchor would pass."""
    start = anchor if anchor is not None else ChainAnchor()
    found = _Findings(max_problems)
    sealing = _sealing_checkpoints(checkpoints, verifier, start, found)
    sealed_seen: set[int] = set()
    gaps = _Gaps()
    # Links into a gap, to check if the missing record turns up: {missing: (claimant, hash)}.
    claims: dict[int, tuple[int, str]] = {}
    recent: list[AuditRecord | None] = [None] * _RECENT_RECORDS
    mask = _RECENT_RECORDS - 1
    previous_sequence, previous_hash = start.sequence, start.hash
    highest = start.sequence
    head: AuditRecord | ChainAnchor = start
    checked = 0
    sha256 = hashlib.sha256
    for record in records:
        checked += 1
        sequence = record.sequence
        try:
            content_hash = sha256(canonical_encoding(record)).hexdigest()
        except (TypeError, ValueError) as error:
            content_hash = f"(cannot be encoded: {error})"
        if content_hash != record.hash:
            found.add(
                sequence,
                ProblemKind.ALTERED,
                f"record {sequence} hashes to {content_hash}, not to its stored hash "
                f"{record.hash}: its content was changed",
            )
        if sequence == previous_sequence + 1 and previous_sequence == highest:
            # In order, the common case: the record before is the one just checked.
            if record.previous_hash != previous_hash:
                found.add(sequence, ProblemKind.BROKEN_LINK, _link_detail(record, previous_hash))
            highest, head = sequence, record
        else:
            highest = _out_of_order(
                record, previous_sequence, highest, start, gaps, claims, recent, found
            )
            if highest == sequence:
                head = record
        if sequence in sealing:
            sealed_seen.add(sequence)
            for checkpoint in sealing[sequence]:
                if checkpoint.record_hash != content_hash:
                    found.add(
                        sequence,
                        ProblemKind.CHECKPOINT_MISMATCH,
                        f"record {sequence} hashes to {content_hash}, but the checkpoint signed "
                        f"by {checkpoint.key_id!r} sealed it with hash {checkpoint.record_hash}",
                    )
        recent[sequence & mask] = record
        previous_sequence, previous_hash = sequence, record.hash
    _report_end(highest, start, expected_last_sequence, sealing, sealed_seen, gaps, claims, found)
    return VerificationReport(
        ok=not found.problems and not found.omitted,
        records_checked=checked,
        problems=tuple(sorted(found.problems, key=lambda problem: problem.sequence)),
        head=ChainAnchor(head.sequence, head.hash),
        problems_omitted=found.omitted,
    )


def _link_detail(record: AuditRecord, before_hash: str) -> str:
    before = record.sequence - 1
    return (
        f"record {record.sequence} names {record.previous_hash} as the hash of record {before}, "
        f"but record {before} carries {before_hash}: record {before} was changed and re-hashed, "
        f"or record {record.sequence}'s link was"
    )


def _out_of_order(
    record: AuditRecord,
    previous_sequence: int,
    highest: int,
    start: ChainAnchor,
    gaps: _Gaps,
    claims: dict[int, tuple[int, str]],
    recent: list[AuditRecord | None],
    found: _Findings,
) -> int:
    """Handles a record that does not simply follow the one before; returns the new highest."""
    sequence = record.sequence
    if sequence > highest:
        if sequence > highest + 1:
            gaps.add(highest + 1, sequence - 1)
        highest = sequence
    else:
        if gaps.discard(sequence):
            found.add(
                sequence,
                ProblemKind.REORDERED,
                f"record {sequence} comes after record {previous_sequence}",
            )
        elif sequence <= start.sequence:
            found.add(
                sequence,
                ProblemKind.REORDERED,
                f"record {sequence} comes after record {previous_sequence}, but belongs "
                f"before the chain, which starts after record {start.sequence}",
            )
        else:
            found.add(
                sequence,
                ProblemKind.DUPLICATE,
                f"record {sequence} appears again, after record {previous_sequence}",
            )
        claim = claims.pop(sequence, None)
        if claim is not None and claim[1] != record.hash:
            claimant, claimed = claim
            found.add(
                claimant,
                ProblemKind.BROKEN_LINK,
                f"record {claimant} names {claimed} as the hash of record {sequence}, but "
                f"record {sequence} carries {record.hash}",
            )
    before = sequence - 1
    if before == start.sequence:
        before_hash: str | None = start.hash
    else:
        candidate = recent[before & (_RECENT_RECORDS - 1)]
        before_hash = candidate.hash if candidate and candidate.sequence == before else None
    if before_hash is not None:
        if record.previous_hash != before_hash:
            found.add(sequence, ProblemKind.BROKEN_LINK, _link_detail(record, before_hash))
    elif before in gaps:
        claims.setdefault(before, (sequence, record.previous_hash))
    # Otherwise the record before went past too long ago to compare; the disorder is reported.
    return highest


def _report_end(
    highest: int,
    start: ChainAnchor,
    expected_last_sequence: int | None,
    sealing: Mapping[int, list[Checkpoint]],
    sealed_seen: set[int],
    gaps: _Gaps,
    claims: Mapping[int, tuple[int, str]],
    found: _Findings,
) -> None:
    """Reports what never turned up: a shortened tail, missing ranges, the links into them and the
    sealed records that are gone."""
    known_last = max([start.sequence, expected_last_sequence or 0, *sealing])
    if known_last > highest:
        gaps.add(highest + 1, known_last)
    for first, last in gaps.ranges():
        found.add(
            first,
            ProblemKind.MISSING,
            f"record {first} is missing"
            if first == last
            else f"records {first} to {last} are missing ({last - first + 1} records)",
        )
    for missing, (claimant, _) in claims.items():
        found.add(
            claimant,
            ProblemKind.BROKEN_LINK,
            f"record {claimant} links to record {missing}, which is missing",
        )
    for sequence in sorted(sealing.keys() - sealed_seen):
        found.add(
            sequence,
            ProblemKind.CHECKPOINT_MISMATCH,
            f"a checkpoint sealed record {sequence}, which is missing",
        )


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long records must be kept before they may be pruned, in days (R-7.5c)."""

    minimum_days: int = MINIMUM_RETENTION_DAYS

    def __post_init__(self) -> None:
        days = self.minimum_days
        if not isinstance(days, int) or isinstance(days, bool):
            raise InvalidArgument.single(
                "retention.minimum_days", f"must be a whole number of days, got {days!r}"
            )
        if days < MINIMUM_RETENTION_DAYS:
            raise InvalidArgument.single(
                "retention.minimum_days",
                f"must be at least {MINIMUM_RETENTION_DAYS} days (R-7.5c; MLPS level 3 keeps "
                f"audit records at least six months), got {days}",
            )

    def prunable_before(self, now: float) -> float:
        """Records made before this Unix time may be pruned."""
        return now - self.minimum_days * SECONDS_PER_DAY


def prune_point(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[Checkpoint],
    policy: RetentionPolicy,
    now: float,
) -> ChainAnchor | None:
    """The last record that may be pruned, with everything before it: the newest record both
    older than the retention and sealed by a checkpoint, within the oldest run of records older
    than the retention (records in sequence order, from a trail that verifies). Pruning there
    keeps the rest verifiable from the returned anchor, and the checkpoint sealing the anchor (to
    be kept) proves the anchor genuine. None when nothing may be pruned."""
    cutoff_us = round(policy.prunable_before(now) * MICROSECONDS_PER_SECOND)
    sealed = {(checkpoint.sequence, checkpoint.record_hash) for checkpoint in checkpoints}
    point = None
    for record in records:
        if record.recorded_at_us >= cutoff_us:
            break
        if (record.sequence, record.hash) in sealed:
            point = ChainAnchor(record.sequence, record.hash)
    return point
