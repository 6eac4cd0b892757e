"""The security service as its users meet it: a trail nobody can quietly change, three-role
separation with refusals on the record, the sharing gate and the MLPS baseline (R-7.2.4, R-7.5)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import grpc
import pytest

from medcloud.common.v1 import data_classification_pb2 as classification
from medcloud.devstack.stack import AUDIT_ADMINISTRATOR, SECURITY_ADMINISTRATOR
from medcloud.security.adapters.codecs import AuditRecordCodec
from medcloud.security.adapters.signing import generate_key_pair
from medcloud.security.app.trail import sequence_key
from medcloud.security.v1 import security_pb2 as pb
from medcloud.security.v1 import security_service_pb2 as api
from medcloud.security.v1 import security_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel, connect_store
from tests.support.processes import start_service

pytestmark = pytest.mark.integration


@pytest.fixture
def security(etcd_server, nats_server, region, tmp_path) -> Iterator[str]:
    key_file = tmp_path / "signing.key"
    key_file.write_text(generate_key_pair()[0].hex())
    process, address = start_service(
        "medcloud.security",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "security.log",
        extra_env={"MEDCLOUD_SECURITY_SIGNING_KEY_FILE": str(key_file)},
    )
    yield address
    process.stop()


def _stub(address: str, role: str) -> tuple[grpc.Channel, api_grpc.SecurityServiceStub]:
    channel = client_channel(address, (role,))
    return channel, api_grpc.SecurityServiceStub(channel)


def _export(mode: int, data_class: int, dataset: str) -> api.DecideExportRequest:
    return api.DecideExportRequest(
        request=pb.ExportRequest(
            dataset_id=dataset,
            data_class=data_class,
            mode=mode,
            purpose="diabetes outcomes study",
        )
    )


def _records(address: str) -> list[pb.AuditRecord]:
    channel, auditor = _stub(address, AUDIT_ADMINISTRATOR)
    with channel:
        return list(auditor.ListAuditRecords(api.ListAuditRecordsRequest(limit=1000)).records)


def test_the_sharing_gate_refuses_identifiable_data_for_the_public_and_records_every_decision(
    security,
):
    channel, officer = _stub(security, SECURITY_ADMINISTRATOR)
    with channel:
        public = officer.DecideExport(
            _export(
                pb.SHARING_MODE_FULL_PUBLIC,
                classification.DATA_CLASSIFICATION_PERSONAL_HEALTH_DATA,
                "emr-2026",
            )
        )
        enclave = officer.DecideExport(
            _export(
                pb.SHARING_MODE_ENCLAVE,
                classification.DATA_CLASSIFICATION_PERSONAL_HEALTH_DATA,
                "emr-2026",
            )
        )
    assert not public.allowed and "enclave" in public.reason
    assert enclave.allowed
    decisions = [r for r in _records(security) if r.action == "data.export.decide"]
    assert [(r.outcome, r.target, r.actor) for r in decisions] == [
        ("refused", "dataset/emr-2026", "tester-security-administrator"),
        ("allowed", "dataset/emr-2026", "tester-security-administrator"),
    ]
    # Reading the trail is on the trail too: auditors are audited.
    (read,) = [r for r in _records(security) if r.action == "audit.read"][:1]
    assert (read.actor, read.detail["records"]) == ("tester-audit-administrator", "1-2")


def test_a_wrong_role_is_refused_and_the_refusal_joins_the_trail(security):
    channel, officer = _stub(security, SECURITY_ADMINISTRATOR)
    with channel, pytest.raises(grpc.RpcError) as refused:
        officer.VerifyAuditTrail(api.VerifyAuditTrailRequest())  # the auditor's, not theirs
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    deadline = time.monotonic() + 10
    while not (refusals := [r for r in _records(security) if r.outcome == "refused"]):
        assert time.monotonic() < deadline, "the refusal never reached the trail"
        time.sleep(0.1)
    (refusal,) = refusals
    assert refusal.action == "audit.verify"
    assert refusal.actor == "tester-security-administrator"
    assert refusal.target == "/medcloud.security.v1.SecurityService/VerifyAuditTrail"


async def test_changing_or_deleting_a_stored_record_is_found_and_named(
    security, etcd_server, region
):
    channel, officer = _stub(security, SECURITY_ADMINISTRATOR)
    with channel:
        for number in range(6):
            officer.DecideExport(
                _export(
                    pb.SHARING_MODE_ENCLAVE,
                    classification.DATA_CLASSIFICATION_INTERNAL,
                    f"set-{number}",
                )
            )
    channel, auditor = _stub(security, AUDIT_ADMINISTRATOR)
    with channel:
        clean = auditor.VerifyAuditTrail(api.VerifyAuditTrailRequest())
        assert clean.ok and clean.records_checked == 6 and clean.head == 6

        store = await connect_store(etcd_server.endpoint, region, "security")
        records = store.collection("audit", AuditRecordCodec())
        try:
            third = (await records.require(sequence_key(3))).value
            await records.update(
                sequence_key(3),
                lambda record: dataclasses.replace(record, outcome="refused"),
            )
            altered = auditor.VerifyAuditTrail(api.VerifyAuditTrailRequest())
            assert not altered.ok
            assert [(p.sequence, p.kind) for p in altered.problems] == [(3, "altered")]

            await records.update(sequence_key(3), lambda _: third)
            await records.delete(sequence_key(5))
            removed = auditor.VerifyAuditTrail(api.VerifyAuditTrailRequest())
            assert not removed.ok
            assert (5, "missing") in [(p.sequence, p.kind) for p in removed.problems]
        finally:
            await store.close()


def test_a_site_is_judged_against_the_mlps_level_3_baseline_from_its_pool(security):
    channel, officer = _stub(security, SECURITY_ADMINISTRATOR)
    with channel:
        officer.AddSecurityInstance(
            api.AddSecurityInstanceRequest(
                instance=pb.SecurityInstance(
                    id="fw-1",
                    capability=pb.CAPABILITY_VIRTUAL_FIREWALL,
                    centre_id="panyu-carrier-production",
                    capacity_units=40,
                    vendor="Hillstone",
                )
            )
        )
        officer.AllocateCapability(
            api.AllocateCapabilityRequest(
                site_id="panyu-hospital",
                zone=pb.ZONE_INTERNET,
                capability=pb.CAPABILITY_VIRTUAL_FIREWALL,
                units=10,
            )
        )
        with pytest.raises(grpc.RpcError) as full:
            officer.AllocateCapability(
                api.AllocateCapabilityRequest(
                    site_id="panyu-hospital",
                    zone=pb.ZONE_DMZ,
                    capability=pb.CAPABILITY_VIRTUAL_FIREWALL,
                    units=50,
                )
            )
        assert full.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        report = officer.EvaluateBaseline(api.EvaluateBaselineRequest(site_id="panyu-hospital"))
    by_control = {f.control_id: f for f in report.findings}
    assert not report.passed
    assert by_control["MLPS3-ABS-1"].passed  # the egress firewall is allocated
    assert not by_control["MLPS3-ABS-2"].passed  # no IPS/IDS at the internet boundary
    assert "ips-ids" in by_control["MLPS3-ABS-2"].detail
    assert by_control["MLPS3-CNS-3"].passed  # every call is mutual TLS
    assert by_control["MLPS3-SMC-1"].passed  # three-role separation


def _deidentify_request(records: list[dict], k_required: int) -> api.DeidentifyRecordsRequest:
    request = api.DeidentifyRecordsRequest(
        schema=[
            pb.FieldLabel(
                name="name", role=pb.FIELD_ROLE_DIRECT_IDENTIFIER, kind=pb.FIELD_KIND_TEXT
            ),
            pb.FieldLabel(
                name="id_card", role=pb.FIELD_ROLE_DIRECT_IDENTIFIER, kind=pb.FIELD_KIND_CODE
            ),
            pb.FieldLabel(name="age", role=pb.FIELD_ROLE_QUASI_IDENTIFIER, kind=pb.FIELD_KIND_AGE),
            pb.FieldLabel(name="diagnosis", role=pb.FIELD_ROLE_SENSITIVE, kind=pb.FIELD_KIND_CODE),
        ],
        techniques={
            "name": pb.Technique(kind=pb.TECHNIQUE_KIND_SUPPRESS),
            "id_card": pb.Technique(kind=pb.TECHNIQUE_KIND_PSEUDONYMISE),
            "age": pb.Technique(kind=pb.TECHNIQUE_KIND_GENERALISE_AGE, band_years=10),
            "diagnosis": pb.Technique(kind=pb.TECHNIQUE_KIND_KEEP),
        },
        k_required=k_required,
    )
    for record in records:
        request.records.add().update(record)
    return request


PATIENTS = [
    {"name": "张三", "id_card": "440126198001011234", "age": 45, "diagnosis": "E11"},
    {"name": "李四", "id_card": "440126198102021235", "age": 41, "diagnosis": "I10"},
    {"name": "王五", "id_card": "440126197503031236", "age": 87, "diagnosis": "E11"},
]


def test_records_are_released_without_direct_identifiers_and_pseudonyms_follow_the_key(security):
    channel, officer = _stub(security, SECURITY_ADMINISTRATOR)
    with channel:
        first = officer.DeidentifyRecords(_deidentify_request(PATIENTS, k_required=2))
        again = officer.DeidentifyRecords(_deidentify_request(PATIENTS[:1], k_required=1))
        rotated_key = officer.RotatePseudonymKey(api.RotatePseudonymKeyRequest()).key_id
        after = officer.DeidentifyRecords(_deidentify_request(PATIENTS[:1], k_required=1))
        with pytest.raises(grpc.RpcError) as refused:
            keeping = _deidentify_request(PATIENTS, k_required=2)
            keeping.techniques["id_card"].kind = pb.TECHNIQUE_KIND_KEEP
            officer.DeidentifyRecords(keeping)
    released = [dict(record) for record in first.records]
    text = repr(released)
    assert all(p["name"] not in text and p["id_card"] not in text for p in PATIENTS)
    assert [r["age"] for r in released] == ["40-49", "40-49", "80-89"]
    # Below k: the 80-89 group of one is named, and the release stays a limited data set.
    assert first.data_class == classification.DATA_CLASSIFICATION_LIMITED_DATA_SET
    assert first.k == 1
    assert [dict(g.values) for g in first.groups_below_k] == [{"age": "80-89"}]
    assert again.records[0]["id_card"] == released[0]["id_card"]  # stable under one key
    assert after.key_id == rotated_key != first.key_id
    assert after.records[0]["id_card"] != released[0]["id_card"]  # changed by the rotation
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "direct identifier" in refused.value.details()
    releases = [r for r in _records(security) if r.action == "data.deidentify"]
    assert [r.outcome for r in releases] == ["limited-data-set", "de-identified", "de-identified"]
