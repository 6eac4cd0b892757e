"""Changing, deleting or reordering any stored audit record is detected by verification, naming the
record; checkpoints catch rewritten and truncated chains; retention keeps at least 180 days."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading

import pytest

from medcloud.core.errors import FailedPrecondition, InvalidArgument
from medcloud.security.adapters.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    generate_key_pair,
)
from medcloud.security.domain.audit import (
    GENESIS_HASH,
    SECONDS_PER_DAY,
    AuditChain,
    AuditEvent,
    AuditRecord,
    ChainAnchor,
    Checkpoint,
    RetentionPolicy,
    canonical_encoding,
    checkpoint_due,
    make_checkpoint,
    next_record,
    prune_point,
    record_hash,
    verify,
)

PRIVATE_KEY, PUBLIC_KEY = generate_key_pair()
SIGNER = Ed25519Signer(PRIVATE_KEY, "audit-2025")
VERIFIER = Ed25519Verifier({"audit-2025": PUBLIC_KEY})
START = 1_700_000_000.0
RECORDS = 50
CHECKPOINT_EVERY = 20


def event(index: int) -> AuditEvent:
    return AuditEvent(
        actor=f"CN=admin-{index % 3},O=Regional Hospital",
        role="security-administrator",
        action="policy.update",
        target=f"policy/{index}",
        outcome="allowed",
        detail={"request_id": f"req-{index}"},
    )


def trail(count: int = RECORDS) -> tuple[list[AuditRecord], list[Checkpoint]]:
    """`count` records a minute apart, sealed at 20 and 40."""
    records: list[AuditRecord] = []
    checkpoints: list[Checkpoint] = []
    previous = None
    for index in range(count):
        at = START + 60 * index
        previous = next_record(previous, event(index), at)
        records.append(previous)
        last_sealed = checkpoints[-1].sequence if checkpoints else 0
        if checkpoint_due(last_sealed, previous.sequence, CHECKPOINT_EVERY):
            checkpoints.append(make_checkpoint(previous, SIGNER, at))
    return records, checkpoints


def problems(report) -> set[tuple[int, str]]:
    return {(problem.sequence, problem.kind.value) for problem in report.problems}


def rehashed(record: AuditRecord, **changes) -> AuditRecord:
    changed = dataclasses.replace(record, **changes)
    return dataclasses.replace(changed, hash=record_hash(changed))


def test_an_untouched_trail_verifies():
    records, checkpoints = trail()
    assert [checkpoint.sequence for checkpoint in checkpoints] == [20, 40]
    report = verify(records, checkpoints, VERIFIER)
    assert report.ok
    assert report.problems == ()
    assert report.records_checked == RECORDS
    assert report.head == ChainAnchor(RECORDS, records[-1].hash)


def test_the_chain_links_each_record_to_the_one_before():
    records, _ = trail(3)
    assert [record.sequence for record in records] == [1, 2, 3]
    assert records[0].previous_hash == GENESIS_HASH
    assert records[1].previous_hash == records[0].hash
    assert records[2].previous_hash == records[1].hash
    assert records[0].recorded_at == START


@pytest.mark.parametrize(
    "change",
    [
        {"detail": {"request_id": "req-forged"}},
        {"outcome": "refused"},
        {"actor": "CN=someone-else"},
        {"recorded_at_us": 1},
        {"previous_hash": "f" * 64},
    ],
    ids=["detail", "outcome", "actor", "time", "link"],
)
def test_an_altered_record_is_named(change):
    records, checkpoints = trail()
    records[24] = dataclasses.replace(records[24], **change)
    report = verify(records, checkpoints, VERIFIER)
    assert not report.ok
    assert (25, "altered") in problems(report)
    if "previous_hash" not in change:
        assert problems(report) == {(25, "altered")}
    assert "record 25" in report.problems[0].detail


def test_an_altered_sealed_record_also_breaks_its_checkpoint():
    records, checkpoints = trail()
    records[19] = dataclasses.replace(records[19], outcome="refused")
    assert problems(verify(records, checkpoints, VERIFIER)) == {
        (20, "altered"),
        (20, "checkpoint-mismatch"),
    }


def test_a_record_altered_and_rehashed_breaks_the_next_link_naming_both():
    records, checkpoints = trail()
    records[24] = rehashed(records[24], outcome="refused")
    report = verify(records, checkpoints, VERIFIER)
    assert problems(report) == {(26, "broken-link")}
    assert "record 26" in report.problems[0].detail
    assert "record 25" in report.problems[0].detail


def test_a_rewritten_suffix_is_caught_by_the_next_checkpoint():
    records, checkpoints = trail()
    # Rewrite 25 onwards, re-hashing and re-linking every record: only the seal at 40 can tell.
    previous = records[23]
    for index in range(24, RECORDS):
        previous = next_record(previous, event(1000 + index), START + 60 * index)
        records[index] = previous
    assert problems(verify(records, checkpoints, VERIFIER)) == {(40, "checkpoint-mismatch")}


def test_a_record_deleted_in_the_middle_is_named_missing_with_the_link_over_it():
    records, checkpoints = trail()
    del records[29]
    report = verify(records, checkpoints, VERIFIER)
    assert problems(report) == {(30, "missing"), (31, "broken-link")}
    missing = next(problem for problem in report.problems if problem.kind == "missing")
    assert missing.detail == "record 30 is missing"


def test_several_deleted_records_are_named_as_one_range():
    records, checkpoints = trail()
    del records[29:33]
    report = verify(records, checkpoints, VERIFIER)
    assert problems(report) == {(30, "missing"), (34, "broken-link")}
    assert "records 30 to 33 are missing (4 records)" in {p.detail for p in report.problems}


def test_deleting_the_first_record_is_detected():
    records, checkpoints = trail()
    del records[0]
    assert problems(verify(records, checkpoints, VERIFIER)) == {(1, "missing"), (2, "broken-link")}


def test_two_swapped_records_are_named_reordered():
    records, checkpoints = trail()
    records[29], records[30] = records[30], records[29]
    report = verify(records, checkpoints, VERIFIER)
    assert problems(report) == {(30, "reordered")}
    assert report.problems[0].detail == "record 30 comes after record 31"


def test_a_record_moved_far_back_is_named_reordered():
    records, checkpoints = trail()
    moved = records.pop(4)
    records.insert(44, moved)
    assert problems(verify(records, checkpoints, VERIFIER)) == {(5, "reordered")}


def test_a_repeated_record_is_named_duplicate():
    records, checkpoints = trail()
    records.insert(33, records[10])
    assert problems(verify(records, checkpoints, VERIFIER)) == {(11, "duplicate")}


def test_truncating_the_tail_before_the_last_checkpoint_is_detected():
    records, checkpoints = trail()
    report = verify(records[:30], checkpoints, VERIFIER)
    assert problems(report) == {(31, "missing"), (40, "checkpoint-mismatch")}
    assert "records 31 to 40 are missing (10 records)" in {p.detail for p in report.problems}


def test_truncating_after_the_last_checkpoint_needs_the_expected_last_sequence():
    records, checkpoints = trail()
    assert verify(records[:45], checkpoints, VERIFIER).ok
    report = verify(records[:45], checkpoints, VERIFIER, expected_last_sequence=RECORDS)
    assert problems(report) == {(46, "missing")}


def test_a_tampered_checkpoint_signature_is_a_bad_checkpoint():
    records, checkpoints = trail()
    signature = checkpoints[0].signature
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    checkpoints[0] = dataclasses.replace(checkpoints[0], signature=flipped)
    assert problems(verify(records, checkpoints, VERIFIER)) == {(20, "bad-checkpoint")}


def test_a_checkpoint_moved_to_another_record_or_by_an_unknown_key_is_a_bad_checkpoint():
    records, checkpoints = trail()
    moved = dataclasses.replace(checkpoints[0], sequence=21, record_hash=records[20].hash)
    other_private, _ = generate_key_pair()
    forged = make_checkpoint(records[44], Ed25519Signer(other_private, "intruder"), START)
    report = verify(records, [*checkpoints, moved, forged], VERIFIER)
    assert problems(report) == {(21, "bad-checkpoint"), (45, "bad-checkpoint")}
    assert "'intruder'" in report.problems[1].detail


def test_sealing_a_record_that_does_not_match_its_hash_is_refused():
    records, _ = trail(3)
    with pytest.raises(FailedPrecondition, match="audit record 2"):
        make_checkpoint(dataclasses.replace(records[1], outcome="refused"), SIGNER, START)


def test_checkpoints_fall_due_every_so_many_records():
    assert not checkpoint_due(0, 999)
    assert checkpoint_due(0, 1000)
    assert checkpoint_due(1000, 2000, every=1000)
    with pytest.raises(InvalidArgument) as raised:
        checkpoint_due(0, 1, every=0)
    assert raised.value.violations[0].field == "audit.checkpoint_every_records"


def test_a_report_counts_problems_beyond_its_limit():
    records, checkpoints = trail()
    records = [dataclasses.replace(record, outcome="refused") for record in records]
    report = verify(records, checkpoints, VERIFIER, max_problems=10)
    assert not report.ok
    assert len(report.problems) == 10
    assert report.problems_omitted == RECORDS + len(checkpoints) - 10


def test_the_canonical_encoding_is_fixed():
    # Golden values: if this test fails, every stored trail stops verifying.
    record = next_record(
        None,
        AuditEvent(
            actor='CN=张伟,O=Regional Hospital "A"',
            role="security-administrator",
            action="policy.update",
            target="policy/egress",
            outcome="allowed",
            detail={"request_id": "r-1", "reason": "line1\nline2\t\\ é 🚑"},
        ),
        1_700_000_000.123456,
    )
    assert (
        canonical_encoding(record)
        == (
            '{"action":"policy.update","actor":"CN=张伟,O=Regional Hospital \\"A\\"",'
            '"detail":{"reason":"line1\\nline2\\t\\\\ é 🚑","request_id":"r-1"},'
            '"format":"medcloud.audit.v1","outcome":"allowed",'
            '"previous_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
            '"recorded_at_us":1700000000123456,"role":"security-administrator","sequence":1,'
            '"target":"policy/egress"}'
        ).encode()
    )
    assert record.hash == "eb171904001d62eb38327a1ddbb7114fafba458b5d6f68b2408ff163fff9e1d6"
    assert record.hash == hashlib.sha256(canonical_encoding(record)).hexdigest()


@pytest.mark.parametrize(
    "text", ["plain", 'quote " and \\ backslash', "\x00\x01\x1f\x7f", "é中文🚑\u2028", ""]
)
def test_the_canonical_encoding_is_what_json_dumps_writes(text):
    record = next_record(
        None,
        AuditEvent(text or "actor", text, "audit.read", text, "allowed", {"a": text, "b.c": "x"}),
        START,
    )
    as_json = {
        "action": record.action,
        "actor": record.actor,
        "detail": dict(record.detail),
        "format": "medcloud.audit.v1",
        "outcome": record.outcome,
        "previous_hash": record.previous_hash,
        "recorded_at_us": record.recorded_at_us,
        "role": record.role,
        "sequence": record.sequence,
        "target": record.target,
    }
    expected = json.dumps(as_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_encoding(record) == expected.encode()


def test_an_event_breaking_rules_is_refused_naming_each_field():
    with pytest.raises(InvalidArgument) as raised:
        AuditEvent(
            actor="",
            role="x" * 65,
            action="Policy Update",
            target="t",
            outcome="",
            detail={"Bad Key": "v", "ok": 3, "long": "v" * 1025},  # type: ignore[dict-item]
        )
    assert [violation.field for violation in raised.value.violations] == [
        "event.actor",
        "event.role",
        "event.action",
        "event.outcome",
        "event.detail",
        "event.detail.ok",
        "event.detail.long",
    ]


def test_an_event_with_a_lone_surrogate_is_refused():
    with pytest.raises(InvalidArgument) as raised:
        AuditEvent("CN=a", "", "audit.read", "bad \udc80", "allowed")
    assert raised.value.violations[0].field == "event.target"


def test_an_event_keeps_its_own_copy_of_the_detail():
    detail = {"request_id": "r-1"}
    audit_event = AuditEvent("CN=a", "", "audit.read", "", "allowed", detail)
    detail["request_id"] = "changed"
    assert audit_event.detail == {"request_id": "r-1"}
    with pytest.raises(TypeError):
        audit_event.detail["request_id"] = "changed"  # type: ignore[index]


def test_concurrent_writers_leave_a_gapless_chain():
    chain = AuditChain()
    records: list[AuditRecord] = []

    def write(writer: int) -> None:
        for index in range(200):
            records.append(chain.append(event(writer * 1000 + index), START))

    writers = [threading.Thread(target=write, args=(writer,)) for writer in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    records.sort(key=lambda record: record.sequence)
    assert [record.sequence for record in records] == list(range(1, 1601))
    assert verify(records, [], VERIFIER).ok


def test_retention_below_180_days_is_refused():
    with pytest.raises(InvalidArgument) as raised:
        RetentionPolicy(minimum_days=90)
    (violation,) = raised.value.violations
    assert violation.field == "retention.minimum_days"
    assert "at least 180 days" in violation.description
    assert "R-7.5c" in violation.description
    assert "MLPS" in violation.description
    assert RetentionPolicy().minimum_days == 180
    assert RetentionPolicy(365).prunable_before(400 * SECONDS_PER_DAY) == 35 * SECONDS_PER_DAY


def test_pruning_at_a_checkpoint_older_than_the_retention_keeps_the_rest_verifiable():
    records, checkpoints = trail()
    policy = RetentionPolicy()
    # Records 1-45 are older than 180 days; the newest sealed one among them is 40.
    now = START + 60 * 45 + policy.minimum_days * SECONDS_PER_DAY
    anchor = prune_point(records, checkpoints, policy, now)
    assert anchor == ChainAnchor(40, records[39].hash)
    kept = [record for record in records if record.sequence > anchor.sequence]
    kept_checkpoints = [c for c in checkpoints if c.sequence >= anchor.sequence]
    report = verify(kept, kept_checkpoints, VERIFIER, anchor=anchor)
    assert report.ok
    assert report.records_checked == 10


def test_nothing_is_prunable_within_the_retention():
    records, checkpoints = trail()
    assert prune_point(records, checkpoints, RetentionPolicy(), START + SECONDS_PER_DAY) is None


def test_a_forged_anchor_is_detected():
    records, checkpoints = trail()
    # Drop records 1-25 and claim they were pruned: no checkpoint seals record 25.
    forged = ChainAnchor(25, records[24].hash)
    report = verify(records[25:], checkpoints, VERIFIER, anchor=forged)
    assert problems(report) == {(25, "checkpoint-mismatch")}
    # An anchor at a sealed record whose hash was swapped.
    swapped = ChainAnchor(20, records[21].hash)
    assert problems(verify(records[20:], checkpoints, VERIFIER, anchor=swapped)) == {
        (20, "checkpoint-mismatch"),
        (21, "broken-link"),
    }


def test_a_record_before_the_anchor_is_out_of_place():
    records, checkpoints = trail()
    anchor = ChainAnchor(20, records[19].hash)
    kept = [records[5], *records[20:]]
    assert (6, "reordered") in problems(verify(kept, checkpoints, VERIFIER, anchor=anchor))
