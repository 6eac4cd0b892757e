"""What the centre accepts from an agent: well-named series, finite values, sequences in order,
and each sequence once."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.core.identifiers import dns_label_violations
from medcloud.monitoring.domain.samples import LABEL_NAME, METRIC_NAME, METRIC_NAME_RULE, Sample

MAX_BATCH_SAMPLES = 10_000


def check_sender(node_id: str, centre_id: str) -> None:
    violations = [
        *dns_label_violations("node_id", node_id),
        *dns_label_violations("centre_id", centre_id),
    ]
    if violations:
        raise InvalidArgument(violations)


def check_centre_id(centre_id: str) -> None:
    if violations := list(dns_label_violations("centre_id", centre_id)):
        raise InvalidArgument(violations)


def _sample_violations(index: int, sample: Sample, previous: int) -> Iterator[FieldViolation]:
    at = f"samples[{index}]"
    if not METRIC_NAME.match(sample.series.metric):
        yield FieldViolation(f"{at}.metric", f"must be {METRIC_NAME_RULE}")
    for name, _ in sample.series.labels:
        if not LABEL_NAME.match(name):
            yield FieldViolation(f"{at}.labels", f"label name {name!r} must be a lower-case word")
    if not math.isfinite(sample.value):
        yield FieldViolation(f"{at}.value", "must be a finite number")
    if not math.isfinite(sample.observed_at) or sample.observed_at <= 0:
        yield FieldViolation(f"{at}.observed_at_unix_seconds", "must be a positive Unix time")
    if sample.sequence <= previous:
        yield FieldViolation(
            f"{at}.sequence", f"must increase within a batch: {sample.sequence} after {previous}"
        )


def check_batch(node_id: str, centre_id: str, samples: Sequence[Sample]) -> None:
    """Refuses the whole batch, naming every broken field, so nothing of it is half-taken."""
    check_sender(node_id, centre_id)
    if len(samples) > MAX_BATCH_SAMPLES:
        raise InvalidArgument.single("samples", f"at most {MAX_BATCH_SAMPLES} per message")
    violations: list[FieldViolation] = []
    previous = 0
    for index, sample in enumerate(samples):
        violations.extend(_sample_violations(index, sample, previous))
        previous = max(previous, sample.sequence)
    if violations:
        raise InvalidArgument(violations)


@dataclass
class Intake:
    """The highest sequence held per node: a resend after a reconnect repeats what the centre
    already holds, and only what lies beyond that mark is new."""

    held: dict[str, int]

    def fresh(self, node_id: str, samples: Sequence[Sample]) -> list[Sample]:
        mark = self.held.get(node_id, 0)
        return [sample for sample in samples if sample.sequence > mark]

    def mark_held(self, node_id: str, samples: Sequence[Sample]) -> None:
        if samples:
            self.held[node_id] = max(self.held.get(node_id, 0), samples[-1].sequence)

    def acknowledged(self, node_id: str) -> int:
        return self.held.get(node_id, 0)
