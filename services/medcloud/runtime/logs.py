"""Structured JSON logs that never carry personal health data (GB/T 39725-2020)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from opentelemetry import trace

REDACTED = "[redacted]"

# Extra fields whose names say they hold a person's data are never printed, whatever their value.
_PERSONAL_FIELD_NAMES = re.compile(
    r"(patient|person|name|id_?number|identity|phone|mobile|address|birth|diagnos|"
    r"medical_record|insurance|email)",
    re.IGNORECASE,
)
# Values that look like a person's identifiers are masked wherever they appear in text.
_PERSONAL_VALUE_PATTERNS = (
    re.compile(
        r"(?<![0-9A-Za-z])[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])\d{2}\d{3}[0-9Xx](?![0-9A-Za-z])"
    ),
    re.compile(r"(?<!\d)(\+?86[- ]?)?1[3-9]\d{9}(?!\d)"),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def scrub_text(text: str) -> str:
    """Masks resident identity numbers, mobile numbers and e-mail addresses in free text."""
    for pattern in _PERSONAL_VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact_message(message: Message) -> dict[str, Any]:
    """A protobuf message as a dict with every field marked `personal_health_data` redacted."""
    from medcloud.common.v1 import annotations_pb2

    extension = annotations_pb2.personal_health_data
    rendered: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.GetOptions().Extensions[extension]:
            rendered[field.name] = REDACTED
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if field.label == field.LABEL_REPEATED:
                rendered[field.name] = [redact_message(item) for item in value]
            else:
                rendered[field.name] = redact_message(value)
        elif isinstance(value, str):
            rendered[field.name] = scrub_text(value)
        else:
            rendered[field.name] = value if not hasattr(value, "items") else dict(value.items())
    return rendered


def _safe_value(key: str, value: Any) -> Any:
    if _PERSONAL_FIELD_NAMES.search(key):
        return REDACTED
    if isinstance(value, Message):
        return redact_message(value)
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return scrub_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line with trace correlation and personal data removed."""

    def __init__(self, service: str, region: str) -> None:
        super().__init__()
        self._static = {"service": service, "region": region}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
            **self._static,
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = _safe_value(key, value)
        if record.exc_info:
            entry["exception"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, region: str, level: str = "INFO") -> None:
    """Routes every logger of the process to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, region))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
