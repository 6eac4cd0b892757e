"""Settings from environment variables: every problem is named by its variable."""

from __future__ import annotations

import pytest

from medcloud.runtime.config import ConfigError, HostPort, ServiceSettings, load_settings
from medcloud.runtime.tls import tls_from_environment

GOOD = {
    "MEDCLOUD_REGION": "panyu",
    "MEDCLOUD_ETCD_ENDPOINT": "127.0.0.1:2379",
    "MEDCLOUD_NATS_URL": "nats://127.0.0.1:4222",
}


def test_good_environment_gives_typed_settings_with_defaults():
    settings = load_settings(ServiceSettings, GOOD)
    assert settings.region == "panyu"
    assert settings.etcd_endpoint == HostPort("127.0.0.1", 2379)
    assert settings.grpc_listen == HostPort("127.0.0.1", 0)
    assert settings.shutdown_grace_seconds == 10.0
    assert settings.otlp_endpoint is None


def test_every_bad_variable_is_named_with_its_rule():
    environ = {
        **GOOD,
        "MEDCLOUD_REGION": "Pan Yu",
        "MEDCLOUD_ETCD_ENDPOINT": "127.0.0.1:99999",
        "MEDCLOUD_SHUTDOWN_GRACE_SECONDS": "-1",
        "MEDCLOUD_LOG_LEVEL": "LOUD",
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(ServiceSettings, environ)
    assert raised.value.problems == [
        "MEDCLOUD_REGION='Pan Yu': must be a DNS label (lower-case letters, digits, '-')",
        "MEDCLOUD_ETCD_ENDPOINT='127.0.0.1:99999': port '99999' is not a number from 0 to 65535",
        "MEDCLOUD_LOG_LEVEL='LOUD': must be one of DEBUG, INFO, WARNING, ERROR",
        "MEDCLOUD_SHUTDOWN_GRACE_SECONDS='-1': must be at least 0.0",
    ]


def test_missing_required_variables_are_all_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        load_settings(ServiceSettings, {})
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "MEDCLOUD_REGION",
        "MEDCLOUD_ETCD_ENDPOINT",
        "MEDCLOUD_NATS_URL",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.1:80", HostPort("10.0.0.1", 80)), ("[::1]:2379", HostPort("::1", 2379))],
)
def test_host_port_parses_ipv4_and_ipv6(text, expected):
    assert HostPort.parse(text) == expected
    assert str(expected) == text


def test_a_number_that_is_not_one_is_refused():
    with pytest.raises(
        ConfigError, match="MEDCLOUD_SHUTDOWN_GRACE_SECONDS='soon': expected a number"
    ):
        load_settings(ServiceSettings, {**GOOD, "MEDCLOUD_SHUTDOWN_GRACE_SECONDS": "soon"})


def test_tls_files_are_all_or_nothing_and_must_exist(tmp_path):
    assert tls_from_environment({}) is None
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(ConfigError) as partial:
        tls_from_environment(
            {"MEDCLOUD_TLS_CA_FILE": str(ca), "MEDCLOUD_TLS_KEY_FILE": str(tmp_path / "gone.key")}
        )
    assert partial.value.problems == [
        "MEDCLOUD_TLS_CERT_FILE: required with the other TLS files",
        f"MEDCLOUD_TLS_KEY_FILE={str(tmp_path / 'gone.key')!r}: no such file",
    ]
