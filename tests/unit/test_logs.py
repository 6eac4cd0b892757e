"""Logs are JSON lines that never carry personal health data."""

from __future__ import annotations

import json
import logging

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from medcloud.common.v1 import annotations_pb2
from medcloud.runtime.logs import REDACTED, JsonFormatter, redact_message, scrub_text


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "medcloud.test", "levelname": "INFO", "levelno": 20, "msg": message, "args": ()}
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_identity_numbers_phones_and_emails_are_masked_in_text():
    text = "patient 440102199003071234 phone 13812345678 mail li.lei@example.cn bed 12"
    assert scrub_text(text) == f"patient {REDACTED} phone {REDACTED} mail {REDACTED} bed 12"


def test_ordinary_numbers_survive():
    assert scrub_text("placed 12 instances, 256 GiB, revision 4401021990") == (
        "placed 12 instances, 256 GiB, revision 4401021990"
    )


def test_a_log_line_is_json_with_service_region_and_no_personal_fields():
    line = JsonFormatter("inventory", "panyu").format(
        _record("registered site for 13812345678", patient_name="Li Lei", site="hosp-1", beds=300)
    )
    entry = json.loads(line)
    assert entry["service"] == "inventory" and entry["region"] == "panyu"
    assert entry["message"] == f"registered site for {REDACTED}"
    assert entry["patient_name"] == REDACTED
    assert entry["site"] == "hosp-1" and entry["beds"] == 300
    assert "13812345678" not in line and "Li Lei" not in line


def _message_with_a_personal_field():
    """A message type like a future API's, with one field marked personal_health_data."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2.DESCRIPTOR, annotations_pb2.DESCRIPTOR):
        pool.Add(_descriptor_file(dependency))
    record = descriptor_pb2.FileDescriptorProto(
        name="test/record.proto",
        package="test",
        syntax="proto3",
        dependency=["medcloud/common/v1/annotations.proto"],
    )
    message = record.message_type.add(name="Record")
    message.field.add(name="record_id", number=1, type=9, label=1)
    diagnosis = message.field.add(name="diagnosis", number=2, type=9, label=1)
    diagnosis.options.Extensions[annotations_pb2.personal_health_data] = True
    pool.Add(record)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test.Record"))


def _descriptor_file(file_descriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    return proto


def test_protobuf_fields_marked_personal_health_data_are_redacted():
    record_type = _message_with_a_personal_field()
    rendered = redact_message(record_type(record_id="r-7", diagnosis="type 2 diabetes"))
    assert rendered == {"record_id": "r-7", "diagnosis": REDACTED}
