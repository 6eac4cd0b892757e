"""Typed settings read from environment variables, refusing to start on any bad or missing one."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from medcloud.core.identifiers import DNS_LABEL

_MISSING: Any = object()


class ConfigError(Exception):
    """One or more environment variables are missing or malformed; each problem names its variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class HostPort:
    """A TCP address as `host:port`; port 0 asks the OS for a free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("expected HOST:PORT")
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
        return cls(host.strip("[]"), int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def setting(
    env: str,
    *,
    default: Any = _MISSING,
    check: Callable[[Any], str | None] | None = None,
    help: str = "",
) -> Any:
    """Declares a settings field read from `env`; `check` returns a rule's text when the value breaks it."""
    return dataclasses.field(
        default=None if default is _MISSING else default,
        metadata={"env": env, "required": default is _MISSING, "check": check, "help": help},
    )


def matches(pattern: re.Pattern[str], rule: str) -> Callable[[str], str | None]:
    return lambda value: None if pattern.match(value) else rule


def at_least(minimum: float) -> Callable[[float], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


_PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: _parse_int,
    float: _parse_float,
    bool: _parse_bool,
    HostPort: HostPort.parse,
}


def _parser_for(annotation: Any) -> Callable[[str], Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _parser_for(inner)
    return _PARSERS[annotation]


T = typing.TypeVar("T")


def load_settings(settings_type: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Builds `settings_type` from the environment, or raises ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(settings_type)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(settings_type):  # type: ignore[arg-type]
        meta = field.metadata
        raw = environ.get(meta["env"], "")
        if raw == "":
            if meta["required"]:
                problems.append(f"{meta['env']}: required but not set ({meta['help']})")
            continue
        try:
            value = _parser_for(hints[field.name])(raw)
        except ValueError as error:
            problems.append(f"{meta['env']}={raw!r}: {error}")
            continue
        rule = meta["check"](value) if meta["check"] else None
        if rule:
            problems.append(f"{meta['env']}={raw!r}: {rule}")
            continue
        values[field.name] = value
    if problems:
        raise ConfigError(problems)
    return settings_type(**values)


@dataclass(frozen=True)
class ServiceSettings:
    """What every medcloud service process needs to start."""

    region: str = setting(
        "MEDCLOUD_REGION",
        check=matches(DNS_LABEL, "must be a DNS label (lower-case letters, digits, '-')"),
        help="the region this install serves, e.g. panyu",
    )
    grpc_listen: HostPort = setting(
        "MEDCLOUD_GRPC_LISTEN",
        default=HostPort("127.0.0.1", 0),
        help="address the gRPC server binds",
    )
    etcd_endpoint: HostPort = setting(
        "MEDCLOUD_ETCD_ENDPOINT", help="etcd v3 client endpoint as HOST:PORT"
    )
    nats_url: str = setting(
        "MEDCLOUD_NATS_URL",
        check=matches(re.compile(r"^(nats|tls)://"), "must start with nats:// or tls://"),
        help="NATS server URL with JetStream enabled",
    )
    nats_user: str = setting(
        "MEDCLOUD_NATS_USER",
        default="",
        help="this service's NATS user; it may publish only on the service's own subjects",
    )
    nats_password_file: str = setting(
        "MEDCLOUD_NATS_PASSWORD_FILE", default="", help="a file holding the NATS user's password"
    )
    log_level: str = setting(
        "MEDCLOUD_LOG_LEVEL",
        default="INFO",
        check=one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    shutdown_grace_seconds: float = setting(
        "MEDCLOUD_SHUTDOWN_GRACE_SECONDS",
        default=10.0,
        check=at_least(0.0),
        help="how long in-flight calls may run after SIGTERM",
    )
    otlp_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default=None,
        help="OTLP/gRPC collector; telemetry is exported only when set",
    )
