"""Samples as agents report them: one value of one series at one instant, numbered per agent so
the centre can put a backfill in order and drop what it already holds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# What the centre accepts as names; agents check the same before they buffer a reading.
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
METRIC_NAME_RULE = "dotted lower-case words, unit last, such as room.temperature_celsius"
LABEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Metric:
    """Names of the series medcloud knows, with their unit in the name. Environment series follow
    clause 7.1; `labels` tell apart what one name measures in several places."""

    TEMPERATURE_CELSIUS = "room.temperature_celsius"
    RELATIVE_HUMIDITY_PERCENT = "room.relative_humidity_percent"
    DEW_POINT_CELSIUS = "room.dew_point_celsius"
    DUST_PARTICLES_PER_LITRE = "room.dust_particles_per_litre"  # particles >= 0.5 um
    MAGNETIC_FIELD_A_PER_M = "room.magnetic_field_a_per_m"
    FLOOR_VIBRATION_MM_PER_S2 = "room.floor_vibration_mm_per_s2"
    RADIO_INTERFERENCE_DB = "room.radio_interference_db"
    NOISE_DB = "room.noise_db"
    ILLUMINANCE_LUX = "room.illuminance_lux"  # label area: machine-room, auxiliary-room, emergency
    ELECTROSTATIC_POTENTIAL_VOLTS = "room.electrostatic_potential_volts"
    MAINS_FREQUENCY_HZ = "power.mains_frequency_hz"
    MAINS_VOLTAGE_VOLTS = "power.mains_voltage_volts"  # label supply: three-phase, single-phase
    WAVEFORM_DISTORTION_PERCENT = "power.waveform_distortion_percent"
    GROUND_RESISTANCE_OHMS = (
        "ground.resistance_ohms"  # label ground: dc, ac-working, safety, lightning
    )
    NEUTRAL_TO_GROUND_VOLTS = "ground.neutral_to_ground_volts"

    HOST_CPU_UTILISATION_PERCENT = "host.cpu_utilisation_percent"
    HOST_MEMORY_UTILISATION_PERCENT = "host.memory_utilisation_percent"
    HOST_DISK_UTILISATION_PERCENT = "host.disk_utilisation_percent"  # label mount
    HOST_LOAD_PER_CPU = "host.load_per_cpu"  # 1-minute load average divided by logical CPUs

    CAPACITY_UTILISATION_PERCENT = (
        "capacity.utilisation_percent"  # label resource: vcpu, memory, storage
    )


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One series: a metric measured at one node of one centre. `labels` are sorted (name, value)
    pairs; use `SeriesKey.of` to build one."""

    metric: str
    centre_id: str
    node_id: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, metric: str, centre_id: str, node_id: str, **labels: str) -> SeriesKey:
        return cls(metric, centre_id, node_id, tuple(sorted(labels.items())))

    def label(self, name: str, default: str = "") -> str:
        for key, value in self.labels:
            if key == name:
                return value
        return default


@dataclass(frozen=True, slots=True)
class Sample:
    """`observed_at` is Unix seconds at the node. `sequence` increases by one per sample an agent
    takes (0 for samples not from an agent, such as capacity figures the centre derives)."""

    series: SeriesKey
    observed_at: float
    value: float
    sequence: int = 0


class SeriesKeys:
    """The SeriesKeys of one node's samples, one object per distinct series rather than one per
    sample: a node repeats the same few dozen series every interval."""

    def __init__(self, centre_id: str, node_id: str) -> None:
        self._centre_id = centre_id
        self._node_id = node_id
        self._keys: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesKey] = {}

    def __call__(self, metric: str, labels: Mapping[str, str]) -> SeriesKey:
        key = (metric, tuple(sorted(labels.items())))
        series = self._keys.get(key)
        if series is None:
            series = SeriesKey(metric, self._centre_id, self._node_id, key[1])
            self._keys[key] = series
        return series
