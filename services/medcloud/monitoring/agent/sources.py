"""Where an agent's machine-room sensor readings come from: a gateway's file, standard input, a
gateway's HTTP endpoint, or a simulator for demos and tests, chosen by one spec string."""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from medcloud.monitoring.domain.samples import LABEL_NAME, METRIC_NAME, METRIC_NAME_RULE, Metric

log = logging.getLogger(__name__)

# The centre refuses a whole batch over one badly named series (monitoring's intake), so the agent
# holds readings to the same rules before they reach the buffer.


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One reading as a source reports it; `observed_at` (Unix seconds) is None when the source
    does not say, and the agent stamps it with its own clock."""

    metric: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    observed_at: float | None = None


class SensorSource(Protocol):
    async def read(self) -> list[SensorReading]:
        """The readings since the last call; called once per collection interval."""
        ...

    async def close(self) -> None: ...


def parse_reading(item: object) -> SensorReading:
    """A reading from its JSON form, {"metric": "room.temperature_celsius", "value": 23.4,
    "labels": {"area": "machine-room"}, "observed_at": 1764150000.0}, labels and observed_at
    optional. Raises ValueError naming the field and the rule."""
    if not isinstance(item, dict):
        raise ValueError(f"a reading must be a JSON object, got {type(item).__name__}")
    metric = item.get("metric")
    if not isinstance(metric, str) or not METRIC_NAME.match(metric):
        raise ValueError(f"metric must be {METRIC_NAME_RULE}, got {metric!r}")
    value = item.get("value")
    if not _is_finite_number(value):
        raise ValueError(f"value must be a finite number, got {value!r}")
    labels = item.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(name, str) and LABEL_NAME.match(name) and isinstance(label, str)
        for name, label in labels.items()
    ):
        raise ValueError(
            f"labels must map lower-case words to strings, such as {{'area': 'machine-room'}}, "
            f"got {labels!r}"
        )
    observed_at = item.get("observed_at")
    if observed_at is not None and not (_is_finite_number(observed_at) and observed_at > 0):
        raise ValueError(f"observed_at must be positive Unix seconds, got {observed_at!r}")
    unknown = sorted(set(item) - {"metric", "value", "labels", "observed_at"})
    if unknown:
        raise ValueError(
            f"unknown fields {unknown}; a reading has metric, value, labels, observed_at"
        )
    return SensorReading(
        metric, float(value), dict(labels), None if observed_at is None else float(observed_at)
    )


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Intake:
    """Turns a source's JSON lines or items into readings, skipping and reporting the bad ones."""

    def __init__(self, source: str) -> None:
        self._source = source
        self.skipped = 0

    def line(self, line: bytes, line_number: int) -> SensorReading | None:
        if not line.strip():
            return None
        try:
            return parse_reading(json.loads(line))
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._skip("line_number", line_number, error)
            return None

    def item(self, item: object, index: int) -> SensorReading | None:
        try:
            return parse_reading(item)
        except ValueError as error:
            self._skip("item_index", index, error)
            return None

    def _skip(self, position: str, at: int, error: ValueError) -> None:
        self.skipped += 1
        log.warning(
            "skipped a sensor reading that does not parse",
            extra={"source": self._source, position: at, "problem": str(error)},
        )


class FileSource:
    """Follows a file of JSON lines that a sensor gateway appends to, like `tail -F`: readings
    already in the file when the source starts are not read (they were read before a restart); a
    file truncated, or replaced by rotation, is read again from its start. A line the gateway has
    not finished writing waits for its newline. A file truncated and refilled past the old length
    between two reads cannot be told from one that grew."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._intake = _Intake(str(path))
        self._file: BinaryIO | None = None
        self._partial_line = b""
        self._line_number = 0
        self._missing_reported = False
        self._open(from_start=False)

    @property
    def skipped_readings(self) -> int:
        return self._intake.skipped

    async def read(self) -> list[SensorReading]:
        return await asyncio.to_thread(self._read_new_lines)

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, from_start: bool) -> None:
        try:
            file = self._path.open("rb")
        except FileNotFoundError:
            if not self._missing_reported:
                log.warning("sensor file does not exist (yet)", extra={"path": str(self._path)})
                self._missing_reported = True
            return
        self._missing_reported = False
        self._file = file
        self._partial_line = b""
        self._line_number = 0
        if not from_start:
            # Counted so that a bad line is reported with its real line number.
            while chunk := file.read(1024 * 1024):
                lines = chunk.count(b"\n")
                self._line_number += lines
                if lines:
                    self._partial_line = chunk[chunk.rfind(b"\n") + 1 :]
                else:
                    self._partial_line += chunk

    def _read_new_lines(self) -> list[SensorReading]:
        if self._file is None:
            self._open(from_start=True)
            if self._file is None:
                return []
        # Finish the file we hold first: lines written just before a rotation are still there.
        readings = self._take_lines(self._file.read())
        try:
            on_disk = os.stat(self._path)
        except FileNotFoundError:
            return readings
        held = os.fstat(self._file.fileno())
        if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            self._file.close()
            self._open(from_start=True)
            if self._file is not None:
                readings.extend(self._take_lines(self._file.read()))
        elif on_disk.st_size < self._file.tell():
            log.info(
                "sensor file was truncated; reading it from the start",
                extra={"path": str(self._path)},
            )
            self._file.seek(0)
            self._partial_line = b""
            self._line_number = 0
            readings.extend(self._take_lines(self._file.read()))
        return readings

    def _take_lines(self, data: bytes) -> list[SensorReading]:
        lines = (self._partial_line + data).split(b"\n")
        self._partial_line = lines.pop()
        readings = []
        for line in lines:
            self._line_number += 1
            reading = self._intake.line(line, self._line_number)
            if reading is not None:
                readings.append(reading)
        return readings


class StdinSource:
    """JSON lines from standard input (or `stream`), read from the first `read()` on. A daemon
    thread does the blocking reads, because an event loop cannot watch every kind of stdin (a
    redirected file, for one) and a read stuck in the default executor would hold up the
    process's exit."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._intake = _Intake("stdin")
        # deque appends and pops are atomic, so the thread and the loop share it without a lock.
        self._received: collections.deque[bytes] = collections.deque()
        self._line_number = 0
        self._closed = threading.Event()
        # Started on first use, so a source built only to check a spec leaves stdin alone.
        self._receiver = threading.Thread(
            target=self._receive, name="stdin-sensor-reader", daemon=True
        )

    @property
    def skipped_readings(self) -> int:
        return self._intake.skipped

    async def read(self) -> list[SensorReading]:
        if self._receiver.ident is None and not self._closed.is_set():
            self._receiver.start()
        readings = []
        while self._received:
            self._line_number += 1
            reading = self._intake.line(self._received.popleft(), self._line_number)
            if reading is not None:
                readings.append(reading)
        return readings

    async def close(self) -> None:
        self._closed.set()

    def _receive(self) -> None:
        for line in self._stream:
            if self._closed.is_set():
                return
            self._received.append(line)
        log.info("standard input closed; no more sensor readings from it")


class HttpSource:
    """Polls a sensor gateway's endpoint that answers with a JSON list of readings or
    {"readings": [...]}. An unreachable or misbehaving gateway is logged once per outage and
    yields no readings; it never stops the agent."""

    _MAX_RESPONSE_BYTES = 8 * 1024 * 1024

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._timeout_seconds = timeout_seconds
        self._intake = _Intake(url)
        self._failing = False

    @property
    def skipped_readings(self) -> int:
        return self._intake.skipped

    async def read(self) -> list[SensorReading]:
        try:
            items = await asyncio.to_thread(self._fetch)
        # URLError, HTTPError and timeouts are OSErrors; a cut-off answer is an HTTPException.
        except (OSError, http.client.HTTPException, ValueError) as error:
            if not self._failing:
                log.warning(
                    "sensor gateway unavailable; will keep polling",
                    extra={"url": self._url, "problem": str(error)},
                )
                self._failing = True
            return []
        if self._failing:
            log.info("sensor gateway answers again", extra={"url": self._url})
            self._failing = False
        readings = (self._intake.item(item, index) for index, item in enumerate(items))
        return [reading for reading in readings if reading is not None]

    async def close(self) -> None:
        return None

    def _fetch(self) -> list[object]:
        request = urllib.request.Request(self._url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self._timeout_seconds) as response:
            body = response.read(self._MAX_RESPONSE_BYTES + 1)
        if len(body) > self._MAX_RESPONSE_BYTES:
            raise ValueError(f"response larger than {self._MAX_RESPONSE_BYTES} bytes")
        document = json.loads(body)
        if isinstance(document, dict):
            document = document.get("readings")
        if not isinstance(document, list):
            raise ValueError('response is neither a list of readings nor {"readings": [...]}')
        return document


_OFFSET = re.compile(r"^\+(\d+(?:\.\d+)?)([smh])$")
_OFFSET_SECONDS = {"s": 1, "m": 60, "h": 3600}
_FAULT_FORMAT = "METRIC[{LABEL=VALUE,...}]=VALUE[@START..END]"
_FAULT = re.compile(
    r"^(?P<metric>[^{}=@]+)(?:\{(?P<labels>[^{}]*)\})?=(?P<value>[^@]*)(?:@(?P<window>.*))?$"
)


@dataclass(frozen=True)
class Fault:
    """Makes the simulator report `value` for `metric` from `start_at` (inclusive) to `end_at`
    (exclusive), Unix seconds; only for series carrying every label in `labels`, if given."""

    metric: str
    value: float
    start_at: float = -math.inf
    end_at: float = math.inf
    labels: Mapping[str, str] | None = None

    def matches(self, metric: str, labels: Mapping[str, str]) -> bool:
        return metric == self.metric and all(
            labels.get(name) == value for name, value in (self.labels or {}).items()
        )

    def applies(self, metric: str, labels: Mapping[str, str], now: float) -> bool:
        return self.start_at <= now < self.end_at and self.matches(metric, labels)

    @classmethod
    def parse(cls, text: str, now: float) -> Fault:
        """Reads `METRIC[{LABEL=VALUE,...}]=VALUE[@START..END]`, for a command-line flag or an
        environment variable. START and END are `+N` seconds (`+30s`, `+2m`, `+1h`) after `now`,
        or absolute Unix seconds; either may be left out for an open end, and without `@...` the
        fault lasts for ever. Examples: `room.temperature_celsius=28@+30s..+90s`,
        `ground.resistance_ohms{ground=dc}=1.5@+10s..`, `power.mains_frequency_hz=49.5`."""

        def invalid(problem: str) -> ValueError:
            return ValueError(f"fault {text!r}: {problem}; expected {_FAULT_FORMAT}")

        parts = _FAULT.match(text.strip())
        if parts is None:
            raise invalid("cannot find METRIC=VALUE")
        metric = parts["metric"].strip()
        if not METRIC_NAME.match(metric):
            raise invalid(f"metric must be {METRIC_NAME_RULE}")
        labels = None
        if parts["labels"] is not None:
            labels = {}
            for pair in filter(None, (pair.strip() for pair in parts["labels"].split(","))):
                name, has_value, label = pair.partition("=")
                if not has_value or not LABEL_NAME.match(name.strip()):
                    raise invalid(f"label {pair!r} is not NAME=VALUE with a lower-case name")
                labels[name.strip()] = label.strip()
        try:
            value = float(parts["value"])
        except ValueError:
            raise invalid(f"value {parts['value'].strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise invalid("value must be finite")
        start_at, end_at = -math.inf, math.inf
        if parts["window"] is not None:
            start_text, dots, end_text = parts["window"].partition("..")
            if not dots:
                raise invalid("the window must be START..END")
            start_at = _instant(start_text, now, -math.inf, invalid)
            end_at = _instant(end_text, now, math.inf, invalid)
            if end_at <= start_at:
                raise invalid("the window ends before it starts")
        return cls(metric, value, start_at, end_at, labels)


def _instant(text: str, now: float, open_end: float, invalid: Callable[[str], ValueError]) -> float:
    text = text.strip()
    if not text:
        return open_end
    offset = _OFFSET.match(text)
    if offset:
        return now + float(offset[1]) * _OFFSET_SECONDS[offset[2]]
    try:
        instant = float(text)
    except ValueError:
        raise invalid(f"{text!r} is neither +N[s|m|h] nor Unix seconds") from None
    if not math.isfinite(instant):
        raise invalid(f"{text!r} is not a finite time")
    return instant


@dataclass(frozen=True)
class _SimulatedSeries:
    metric: str
    labels: Mapping[str, str]
    typical: float
    noise: float  # readings stay within typical ± (wave + noise)
    daily_wave: float = 0.0


# Typical values of a healthy machine room, each well inside its clause 7.1 limit. Temperature sits
# at 21.5 °C, where the summer (23±2 °C) and the winter (20±2 °C) ranges of R-7.1-1 overlap.
_ROOM = (
    _SimulatedSeries(Metric.TEMPERATURE_CELSIUS, {}, 21.5, 0.05, daily_wave=0.3),
    _SimulatedSeries(Metric.RELATIVE_HUMIDITY_PERCENT, {}, 55.0, 0.5, daily_wave=-2.0),
    _SimulatedSeries(Metric.DUST_PARTICLES_PER_LITRE, {}, 8000.0, 500.0),
    _SimulatedSeries(Metric.MAGNETIC_FIELD_A_PER_M, {}, 100.0, 10.0),
    _SimulatedSeries(Metric.FLOOR_VIBRATION_MM_PER_S2, {}, 100.0, 10.0),
    _SimulatedSeries(Metric.RADIO_INTERFERENCE_DB, {}, 90.0, 2.0),
    _SimulatedSeries(Metric.NOISE_DB, {}, 55.0, 1.5),
    _SimulatedSeries(Metric.ILLUMINANCE_LUX, {"area": "machine-room"}, 500.0, 10.0),
    _SimulatedSeries(Metric.ILLUMINANCE_LUX, {"area": "auxiliary-room"}, 350.0, 10.0),
    _SimulatedSeries(Metric.ILLUMINANCE_LUX, {"area": "emergency"}, 80.0, 3.0),
    _SimulatedSeries(Metric.ELECTROSTATIC_POTENTIAL_VOLTS, {}, 200.0, 20.0),
    _SimulatedSeries(Metric.MAINS_FREQUENCY_HZ, {}, 50.0, 0.05),
    _SimulatedSeries(Metric.MAINS_VOLTAGE_VOLTS, {"supply": "three-phase"}, 380.0, 1.0),
    _SimulatedSeries(Metric.MAINS_VOLTAGE_VOLTS, {"supply": "single-phase"}, 220.0, 1.0),
    _SimulatedSeries(Metric.WAVEFORM_DISTORTION_PERCENT, {}, 2.0, 0.3),
    _SimulatedSeries(Metric.GROUND_RESISTANCE_OHMS, {"ground": "dc"}, 0.5, 0.02),
    _SimulatedSeries(Metric.GROUND_RESISTANCE_OHMS, {"ground": "ac-working"}, 2.0, 0.05),
    _SimulatedSeries(Metric.GROUND_RESISTANCE_OHMS, {"ground": "safety"}, 2.0, 0.05),
    _SimulatedSeries(Metric.GROUND_RESISTANCE_OHMS, {"ground": "lightning"}, 5.0, 0.1),
    _SimulatedSeries(Metric.NEUTRAL_TO_GROUND_VOLTS, {}, 0.3, 0.03),
)
_SECONDS_PER_DAY = 86_400.0


def _dew_point_celsius(temperature_celsius: float, relative_humidity_percent: float) -> float:
    """The Magnus approximation (Sonntag's constants), good to ±0.35 °C from -45 to 60 °C."""
    gamma = math.log(relative_humidity_percent / 100.0) + 17.62 * temperature_celsius / (
        243.12 + temperature_celsius
    )
    return 243.12 * gamma / (17.62 - gamma)


class SimulatorSource:
    """A plausible machine room for demos and tests: every clause 7.1 series, inside its limits,
    with a slow daily wave and small bounded noise, plus `faults` that override a series for a
    while. The dew point follows from the reported temperature and humidity, faults included."""

    def __init__(
        self,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        faults: Sequence[Fault] = (),
    ) -> None:
        simulated = [(series.metric, series.labels) for series in _ROOM]
        simulated.append((Metric.DEW_POINT_CELSIUS, {}))
        for fault in faults:
            if not any(fault.matches(metric, labels) for metric, labels in simulated):
                raise ValueError(
                    f"fault for {fault.metric} {dict(fault.labels or {})} matches no simulated "
                    f"series; simulated: {sorted({metric for metric, _ in simulated})}"
                )
        self._random = random.Random(seed)
        self._clock = clock
        self._faults = tuple(faults)

    async def read(self) -> list[SensorReading]:
        return self.readings_at(self._clock())

    async def close(self) -> None:
        return None

    def readings_at(self, now: float) -> list[SensorReading]:
        phase = math.sin(2 * math.pi * (now % _SECONDS_PER_DAY) / _SECONDS_PER_DAY)
        readings = []
        for series in _ROOM:
            value = (
                series.typical
                + series.daily_wave * phase
                + self._random.uniform(-series.noise, series.noise)
            )
            readings.append(self._reading(series.metric, value, series.labels, now))
        values = {reading.metric: reading.value for reading in readings if not reading.labels}
        humidity = values[Metric.RELATIVE_HUMIDITY_PERCENT]
        # A fault may set the humidity to zero (a dead sensor), where no dew point exists.
        if humidity > 0:
            dew_point = _dew_point_celsius(values[Metric.TEMPERATURE_CELSIUS], humidity)
            readings.append(self._reading(Metric.DEW_POINT_CELSIUS, dew_point, {}, now))
        return readings

    def _reading(
        self, metric: str, value: float, labels: Mapping[str, str], now: float
    ) -> SensorReading:
        for fault in self._faults:
            if fault.applies(metric, labels, now):
                value = fault.value
        return SensorReading(metric, value, dict(labels), now)


_SPEC_FORMS = "simulator, simulator:seed=N, file:PATH, stdin, http://HOST[:PORT]/PATH (or https)"


def source_from_spec(spec: str, faults: Sequence[Fault] = ()) -> SensorSource:
    """The source a flag or environment variable names; `faults` are for the simulator only."""
    kind, _, argument = spec.partition(":")
    if faults and kind != "simulator":
        raise ValueError(f"sensor source {spec!r}: faults can only be injected into the simulator")
    if spec == "simulator":
        return SimulatorSource(faults=faults)
    if kind == "simulator":
        name, _, seed = argument.partition("=")
        if name != "seed" or not re.fullmatch(r"-?\d+", seed):
            raise ValueError(
                f"sensor source {spec!r}: the seed must be an integer; accepted: {_SPEC_FORMS}"
            )
        return SimulatorSource(seed=int(seed), faults=faults)
    if kind == "file" and argument:
        return FileSource(Path(argument))
    if spec == "stdin":
        return StdinSource()
    if kind in ("http", "https") and urllib.parse.urlsplit(spec).netloc:
        return HttpSource(spec)
    raise ValueError(f"sensor source {spec!r} is not recognised; accepted: {_SPEC_FORMS}")
