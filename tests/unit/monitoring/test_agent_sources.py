"""Sensor sources give the agent each reading once, skip what is not a reading and say so, keep
going when a gateway is away, and the simulator stays inside clause 7.1 unless told otherwise."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO

import psutil
import pytest

from medcloud.monitoring.agent.host_metrics import HostMetrics
from medcloud.monitoring.agent.sources import (
    Fault,
    FileSource,
    HttpSource,
    SensorReading,
    SimulatorSource,
    StdinSource,
    parse_reading,
    source_from_spec,
)
from medcloud.monitoring.domain.samples import Metric

NOW = 1_764_150_000.0


def line(metric: str = Metric.TEMPERATURE_CELSIUS, value: float = 22.5, **fields: object) -> str:
    return json.dumps({"metric": metric, "value": value, **fields}) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


# Reading format


def test_a_reading_parses_with_labels_and_time_optional():
    assert parse_reading({"metric": "room.noise_db", "value": 55}) == SensorReading(
        "room.noise_db", 55.0
    )
    assert parse_reading(
        {
            "metric": "room.illuminance_lux",
            "value": 480.5,
            "labels": {"area": "machine-room"},
            "observed_at": NOW,
        }
    ) == SensorReading("room.illuminance_lux", 480.5, {"area": "machine-room"}, NOW)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"metric": "Room Temperature", "value": 1}, "metric must be dotted lower-case words"),
        ({"metric": "temperature", "value": 1}, "metric must be dotted lower-case words"),
        ({"metric": "room.noise_db", "value": math.nan}, "value must be a finite number"),
        ({"metric": "room.noise_db", "value": "55"}, "value must be a finite number"),
        ({"metric": "room.noise_db", "value": True}, "value must be a finite number"),
        ({"metric": "room.noise_db", "value": 1, "labels": {"area": 3}}, "labels must map"),
        ({"metric": "room.noise_db", "value": 1, "observed_at": -5}, "observed_at must be"),
        ({"metric": "room.noise_db", "value": 1, "unit": "dB"}, "unknown fields ['unit']"),
        ([1, 2], "a reading must be a JSON object"),
    ],
)
def test_a_reading_that_breaks_a_rule_is_refused_naming_the_field(item, problem):
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_reading(item)


# FileSource


async def test_the_file_source_returns_each_appended_line_once(tmp_path):
    path = tmp_path / "sensors.jsonl"
    path.write_text(line(value=20.0))  # already there before the agent started: not read again
    source = FileSource(path)
    append(path, line(value=21.0) + line(Metric.NOISE_DB, 55.0, labels={"area": "machine-room"}))
    assert await source.read() == [
        SensorReading(Metric.TEMPERATURE_CELSIUS, 21.0),
        SensorReading(Metric.NOISE_DB, 55.0, {"area": "machine-room"}),
    ]
    assert await source.read() == []
    await source.close()


async def test_the_file_source_waits_for_a_line_to_be_finished(tmp_path):
    path = tmp_path / "sensors.jsonl"
    path.touch()
    source = FileSource(path)
    whole = line(value=23.0)
    append(path, whole[:10])
    assert await source.read() == []
    append(path, whole[10:])
    assert await source.read() == [SensorReading(Metric.TEMPERATURE_CELSIUS, 23.0)]
    await source.close()


async def test_the_file_source_reads_a_truncated_file_from_its_start(tmp_path):
    path = tmp_path / "sensors.jsonl"
    path.touch()
    source = FileSource(path)
    append(path, line(value=21.0) * 5)
    assert len(await source.read()) == 5
    path.write_text(line(value=24.0))
    assert await source.read() == [SensorReading(Metric.TEMPERATURE_CELSIUS, 24.0)]
    await source.close()


async def test_the_file_source_follows_rotation_without_losing_the_old_files_last_lines(tmp_path):
    path = tmp_path / "sensors.jsonl"
    path.touch()
    source = FileSource(path)
    append(path, line(value=21.0))
    assert len(await source.read()) == 1
    append(path, line(value=22.0))
    path.rename(tmp_path / "sensors.jsonl.1")
    path.write_text(line(value=23.0))
    assert [reading.value for reading in await source.read()] == [22.0, 23.0]
    await source.close()


async def test_the_file_source_skips_bad_lines_naming_the_line_and_the_problem(tmp_path, caplog):
    path = tmp_path / "sensors.jsonl"
    path.write_text(line(value=20.0))
    source = FileSource(path)
    append(
        path,
        line(value=21.0)
        + "not json\n"
        + line("Temperature", 22.0)
        + "\n"
        + line(value=23.0)
        + '{"metric": "room.noise_db", "value": NaN}\n',
    )
    with caplog.at_level(logging.WARNING, logger="medcloud.monitoring.agent.sources"):
        readings = await source.read()
    assert [reading.value for reading in readings] == [21.0, 23.0]
    assert source.skipped_readings == 3
    skipped = [(record.line_number, record.problem) for record in caplog.records]
    assert [number for number, _ in skipped] == [3, 4, 7]
    assert "Expecting value" in skipped[0][1]
    assert "metric must be dotted lower-case words" in skipped[1][1]
    assert "value must be a finite number" in skipped[2][1]
    await source.close()


async def test_a_file_that_appears_later_is_read_from_its_start(tmp_path):
    path = tmp_path / "sensors.jsonl"
    source = FileSource(path)
    assert await source.read() == []
    path.write_text(line(value=21.0))
    assert await source.read() == [SensorReading(Metric.TEMPERATURE_CELSIUS, 21.0)]
    await source.close()


# StdinSource


@pytest.fixture
def pipe() -> Iterator[tuple[BinaryIO, BinaryIO]]:
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as reader, open(write_end, "wb", buffering=0) as writer:
        yield reader, writer


async def test_the_stdin_source_returns_the_lines_received_since_the_last_read(pipe):
    stream, writer = pipe
    source = StdinSource(stream)
    assert await source.read() == []
    writer.write((line(value=21.0) + "oops\n" + line(value=22.0)).encode())
    readings: list[SensorReading] = []
    for _ in range(200):
        readings += await source.read()
        if len(readings) == 2:
            break
        await asyncio.sleep(0.01)
    assert [reading.value for reading in readings] == [21.0, 22.0]
    assert source.skipped_readings == 1
    await source.close()


# HttpSource


class _Gateway(BaseHTTPRequestHandler):
    body = b"[]"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, type[_Gateway]]]:
    handler = type("Gateway", (_Gateway,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/readings", handler
    server.shutdown()
    server.server_close()
    thread.join()


async def test_the_http_source_reads_a_list_or_an_object_of_readings(gateway):
    url, handler = gateway
    source = HttpSource(url, timeout_seconds=2.0)
    handler.body = json.dumps([{"metric": "room.noise_db", "value": 54.0}]).encode()
    assert await source.read() == [SensorReading("room.noise_db", 54.0)]
    handler.body = json.dumps(
        {"readings": [{"metric": "room.noise_db", "value": 56.0}, {"metric": "bad"}]}
    ).encode()
    assert await source.read() == [SensorReading("room.noise_db", 56.0)]
    assert source.skipped_readings == 1
    await source.close()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_an_unreachable_gateway_yields_nothing_and_is_logged_once_per_outage(caplog):
    source = HttpSource(f"http://127.0.0.1:{_unused_port()}/readings", timeout_seconds=1.0)
    with caplog.at_level(logging.WARNING, logger="medcloud.monitoring.agent.sources"):
        assert await source.read() == []
        assert await source.read() == []
    assert [record.getMessage() for record in caplog.records] == [
        "sensor gateway unavailable; will keep polling"
    ]
    await source.close()


async def test_a_gateway_answering_something_else_is_treated_as_unavailable(gateway):
    url, handler = gateway
    handler.body = b'{"status": "ok"}'
    assert await HttpSource(url, timeout_seconds=2.0).read() == []


# SimulatorSource

ENVIRONMENT_METRICS = {
    Metric.TEMPERATURE_CELSIUS,
    Metric.RELATIVE_HUMIDITY_PERCENT,
    Metric.DEW_POINT_CELSIUS,
    Metric.DUST_PARTICLES_PER_LITRE,
    Metric.MAGNETIC_FIELD_A_PER_M,
    Metric.FLOOR_VIBRATION_MM_PER_S2,
    Metric.RADIO_INTERFERENCE_DB,
    Metric.NOISE_DB,
    Metric.ILLUMINANCE_LUX,
    Metric.ELECTROSTATIC_POTENTIAL_VOLTS,
    Metric.MAINS_FREQUENCY_HZ,
    Metric.MAINS_VOLTAGE_VOLTS,
    Metric.WAVEFORM_DISTORTION_PERCENT,
    Metric.GROUND_RESISTANCE_OHMS,
    Metric.NEUTRAL_TO_GROUND_VOLTS,
}


def within_clause_7_1(reading: SensorReading) -> bool:
    """The limits of REQUIREMENTS.md R-7.1-*, as (inclusive low, exclusive high) per series."""
    key = (reading.metric, *reading.labels.values())
    limits = {
        # R-7.1-1: inside both the summer (23±2) and the winter (20±2) range.
        (Metric.TEMPERATURE_CELSIUS,): (21.0, 22.0),
        (Metric.RELATIVE_HUMIDITY_PERCENT,): (45.0, 65.0),
        (Metric.DUST_PARTICLES_PER_LITRE,): (0.0, 18_000.0),
        (Metric.MAGNETIC_FIELD_A_PER_M,): (0.0, 800.0),
        (Metric.FLOOR_VIBRATION_MM_PER_S2,): (0.0, 500.0),
        (Metric.RADIO_INTERFERENCE_DB,): (0.0, 126.0),
        (Metric.MAINS_FREQUENCY_HZ,): (49.8, 50.2),
        (Metric.MAINS_VOLTAGE_VOLTS, "three-phase"): (375.0, 385.0),
        (Metric.MAINS_VOLTAGE_VOLTS, "single-phase"): (215.0, 225.0),
        (Metric.WAVEFORM_DISTORTION_PERCENT,): (0.0, 5.0),
        (Metric.NOISE_DB,): (0.0, 65.0),
        (Metric.ILLUMINANCE_LUX, "machine-room"): (450.0, math.inf),
        (Metric.ILLUMINANCE_LUX, "auxiliary-room"): (300.0, math.inf),
        (Metric.ILLUMINANCE_LUX, "emergency"): (50.0, math.inf),
        (Metric.GROUND_RESISTANCE_OHMS, "dc"): (0.0, 1.0),
        (Metric.GROUND_RESISTANCE_OHMS, "ac-working"): (0.0, 4.0),
        (Metric.GROUND_RESISTANCE_OHMS, "safety"): (0.0, 4.0),
        (Metric.GROUND_RESISTANCE_OHMS, "lightning"): (0.0, 10.0),
        (Metric.NEUTRAL_TO_GROUND_VOLTS,): (0.0, 1.0),
        (Metric.ELECTROSTATIC_POTENTIAL_VOLTS,): (0.0, 1_000.0),
        # No condensation (R-7.1-2): the dew point stays well below the room's temperature.
        (Metric.DEW_POINT_CELSIUS,): (0.0, 18.0),
    }
    low, high = limits[key]
    return low <= reading.value < high


def test_the_simulator_reports_every_clause_7_1_series_inside_its_limits():
    simulator = SimulatorSource(seed=7)
    temperatures = []
    for minute in range(0, 2 * 24 * 60, 10):
        readings = simulator.readings_at(NOW + minute * 60)
        assert {reading.metric for reading in readings} == ENVIRONMENT_METRICS
        assert all(reading.observed_at == NOW + minute * 60 for reading in readings)
        outside = [reading for reading in readings if not within_clause_7_1(reading)]
        assert outside == []
        temperatures += [r.value for r in readings if r.metric == Metric.TEMPERATURE_CELSIUS]
    # R-7.1-2: less than 5 °C per hour; six readings ten minutes apart make an hour.
    assert max(abs(b - a) for a, b in zip(temperatures, temperatures[6:], strict=False)) < 5
    assert max(temperatures) - min(temperatures) > 0.3  # the day shows


def test_the_same_seed_gives_the_same_readings():
    assert SimulatorSource(seed=3).readings_at(NOW) == SimulatorSource(seed=3).readings_at(NOW)
    assert SimulatorSource(seed=3).readings_at(NOW) != SimulatorSource(seed=4).readings_at(NOW)


async def test_a_fault_overrides_its_series_in_its_window_only():
    now = [NOW]
    hot = Fault(Metric.TEMPERATURE_CELSIUS, 28.0, start_at=NOW + 30, end_at=NOW + 90)
    simulator = SimulatorSource(seed=1, clock=lambda: now[0], faults=[hot])

    async def temperature_at(at: float) -> float:
        now[0] = at
        readings = await simulator.read()
        return next(r.value for r in readings if r.metric == Metric.TEMPERATURE_CELSIUS)

    assert await temperature_at(NOW + 29.9) < 25
    assert await temperature_at(NOW + 30) == 28.0
    assert await temperature_at(NOW + 89.9) == 28.0
    assert await temperature_at(NOW + 90) < 25


def test_a_fault_with_labels_overrides_only_the_series_carrying_them():
    faulty_ground = Fault(Metric.GROUND_RESISTANCE_OHMS, 1.5, labels={"ground": "dc"})
    readings = SimulatorSource(seed=1, faults=[faulty_ground]).readings_at(NOW)
    grounds = {
        r.labels["ground"]: r.value for r in readings if r.metric == Metric.GROUND_RESISTANCE_OHMS
    }
    assert grounds["dc"] == 1.5
    assert all(within_clause_7_1(r) for r in readings if r.labels.get("ground") != "dc")


def test_the_dew_point_follows_a_humidity_fault():
    wet = Fault(Metric.RELATIVE_HUMIDITY_PERCENT, 95.0)
    readings = SimulatorSource(seed=1, faults=[wet]).readings_at(NOW)
    values = {r.metric: r.value for r in readings if not r.labels}
    assert values[Metric.TEMPERATURE_CELSIUS] - values[Metric.DEW_POINT_CELSIUS] < 1.0


def test_a_fault_for_a_series_the_simulator_does_not_have_is_refused():
    with pytest.raises(ValueError, match=r"fault for room\.temprature_celsius \{\} matches no"):
        SimulatorSource(faults=[Fault("room.temprature_celsius", 28.0)])
    with pytest.raises(ValueError, match="matches no simulated series"):
        SimulatorSource(faults=[Fault(Metric.ILLUMINANCE_LUX, 10.0, labels={"area": "roof"})])


# Fault.parse


def test_a_fault_parses_with_a_window_relative_to_now():
    assert Fault.parse("room.temperature_celsius=28@+30s..+90s", NOW) == Fault(
        Metric.TEMPERATURE_CELSIUS, 28.0, NOW + 30, NOW + 90
    )
    assert Fault.parse(" power.mains_frequency_hz = 49.5 @ +2m .. +1.5h ", NOW) == Fault(
        Metric.MAINS_FREQUENCY_HZ, 49.5, NOW + 120, NOW + 5400
    )


def test_a_fault_parses_with_labels_absolute_times_and_open_ends():
    assert Fault.parse("ground.resistance_ohms{ground=dc}=1.5@+10s..", NOW) == Fault(
        Metric.GROUND_RESISTANCE_OHMS, 1.5, NOW + 10, math.inf, {"ground": "dc"}
    )
    assert Fault.parse("room.noise_db=70@1764150000..1764150060.5", NOW) == Fault(
        Metric.NOISE_DB, 70.0, 1_764_150_000.0, 1_764_150_060.5
    )
    assert Fault.parse("room.noise_db=70", NOW) == Fault(Metric.NOISE_DB, 70.0)
    assert Fault.parse("room.noise_db=70@..+1m", NOW).end_at == NOW + 60


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("room.noise_db", "cannot find METRIC=VALUE"),
        ("Noise=70", "metric must be dotted lower-case words"),
        ("room.noise_db=loud", "value 'loud' is not a number"),
        ("room.noise_db=inf", "value must be finite"),
        ("room.noise_db=70@+30s", "the window must be START..END"),
        ("room.noise_db=70@+30x..+60s", "'+30x' is neither"),
        ("room.noise_db=70@+60s..+30s", "the window ends before it starts"),
        ("ground.resistance_ohms{dc}=1", "label 'dc' is not NAME=VALUE"),
    ],
)
def test_a_fault_that_does_not_parse_names_the_problem_and_the_format(text, problem):
    with pytest.raises(ValueError) as raised:
        Fault.parse(text, NOW)
    assert problem in str(raised.value)
    assert str(raised.value).startswith(f"fault {text!r}: ")
    assert "expected METRIC[{LABEL=VALUE,...}]=VALUE[@START..END]" in str(raised.value)


# source_from_spec


async def test_each_accepted_spec_gives_its_source(tmp_path):
    assert isinstance(source_from_spec("simulator"), SimulatorSource)
    seeded = source_from_spec("simulator:seed=7")
    assert isinstance(seeded, SimulatorSource)
    assert seeded.readings_at(NOW) == SimulatorSource(seed=7).readings_at(NOW)
    assert isinstance(source_from_spec("stdin"), StdinSource)
    assert isinstance(source_from_spec("http://gateway:8080/readings"), HttpSource)
    assert isinstance(source_from_spec("https://gateway/readings"), HttpSource)
    file_source = source_from_spec(f"file:{tmp_path / 'sensors.jsonl'}")
    assert isinstance(file_source, FileSource)
    await file_source.close()
    faulty = source_from_spec("simulator", faults=[Fault(Metric.NOISE_DB, 70.0)])
    assert isinstance(faulty, SimulatorSource)
    assert any(r.value == 70.0 for r in faulty.readings_at(NOW))


@pytest.mark.parametrize(
    "spec", ["", "simulate", "simulator:", "simulator:seed=x", "file:", "ftp://x/y", "http://"]
)
def test_an_unknown_spec_is_refused_naming_it_and_the_accepted_forms(spec):
    with pytest.raises(ValueError) as raised:
        source_from_spec(spec)
    assert str(raised.value).startswith(f"sensor source {spec!r}")
    assert "accepted: simulator, simulator:seed=N, file:PATH, stdin, http" in str(raised.value)


def test_faults_for_a_source_other_than_the_simulator_are_refused():
    with pytest.raises(ValueError, match="faults can only be injected into the simulator"):
        source_from_spec("stdin", faults=[Fault(Metric.NOISE_DB, 70.0)])


# HostMetrics


def test_host_metrics_are_plausible():
    readings = HostMetrics().collect(NOW)
    by_metric: dict[str, list[SensorReading]] = {}
    for reading in readings:
        by_metric.setdefault(reading.metric, []).append(reading)
        assert reading.observed_at == NOW
    [cpu] = by_metric[Metric.HOST_CPU_UTILISATION_PERCENT]
    [memory] = by_metric[Metric.HOST_MEMORY_UTILISATION_PERCENT]
    [load] = by_metric[Metric.HOST_LOAD_PER_CPU]
    assert 0 <= cpu.value <= 100 and 0 < memory.value <= 100 and 0 <= load.value < 1000
    disks = by_metric.get(Metric.HOST_DISK_UTILISATION_PERCENT, [])
    assert all(0 <= disk.value <= 100 for disk in disks)
    mounts = [disk.labels["mount"] for disk in disks]
    assert len(mounts) == len(set(mounts))
    if any(partition.mountpoint == "/" for partition in psutil.disk_partitions()):
        assert "/" in mounts


def test_disk_usage_leaves_out_read_only_and_repeated_mounts(monkeypatch):
    partitions = [
        ("/dev/vda1", "/", "ext4", "rw,relatime"),
        ("/dev/vda1", "/etc/hosts", "ext4", "rw,relatime"),  # a bind mount of the same disk
        ("/dev/vdb1", "/var/lib/data", "xfs", "rw"),
        ("/dev/loop3", "/snap/core/17200", "squashfs", "ro,nodev"),  # always 100 % full
        ("/dev/sr0", "/media/cdrom", "ext4", "ro"),
    ]
    monkeypatch.setattr(
        psutil,
        "disk_partitions",
        lambda all=False: [
            SimpleNamespace(device=d, mountpoint=m, fstype=f, opts=o) for d, m, f, o in partitions
        ],
    )
    monkeypatch.setattr(psutil, "disk_usage", lambda mount: SimpleNamespace(percent=42.0))

    def mounts(metrics: HostMetrics) -> list[str]:
        return [
            reading.labels["mount"]
            for reading in metrics.collect(NOW)
            if reading.metric == Metric.HOST_DISK_UTILISATION_PERCENT
        ]

    assert mounts(HostMetrics()) == ["/", "/var/lib/data"]
    assert mounts(HostMetrics(max_mounts=1)) == ["/"]
