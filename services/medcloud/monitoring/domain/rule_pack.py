"""The rules medcloud applies out of the box: clause 7.1's machine-room limits and the capacity and
performance thresholds of R-6.5b."""

from __future__ import annotations

from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.rules import (
    DaysToFullRule,
    Limits,
    Quantity,
    RangeRule,
    RateOfChangeRule,
    Rule,
    Season,
    SeasonalRangeRule,
    UtilisationRule,
)
from medcloud.monitoring.domain.samples import Metric

CRITICAL = Severity.CRITICAL
WARNING = Severity.WARNING

TEMPERATURE = Quantity("temperature", "°C")
FIVE_MINUTES = 300.0
# Season is frozen, so one instance can serve as every default.
DEFAULT_SEASON = Season()


def _range(
    rule_id: str,
    requirement_id: str,
    metric: str,
    quantity: Quantity,
    severity: Severity,
    limits: Limits,
    **labels: str,
) -> RangeRule:
    return RangeRule(
        id=rule_id,
        requirement_id=requirement_id,
        metric=metric,
        quantity=quantity,
        severity=severity,
        limits=limits,
        labels=tuple(labels.items()),
    )


def _at_most(limit: float) -> Limits:
    return Limits(maximum=limit)


def _below(limit: float, text: str = "") -> Limits:
    return Limits(maximum=limit, maximum_inclusive=False, text=text)


def _at_least(limit: float) -> Limits:
    return Limits(minimum=limit)


def environment_rules(season: Season = DEFAULT_SEASON) -> tuple[Rule, ...]:
    """Clause 7.1. Critical where a breach threatens the equipment within hours (climate, mains
    supply, earthing); warning where it degrades conditions (dust, fields, noise, light). Floor load
    (R-7.1-20, R-7.1-21) is a property of the building, not a series, and has no rule."""
    return (
        SeasonalRangeRule(
            id="env.temperature",
            requirement_id="R-7.1-1",
            metric=Metric.TEMPERATURE_CELSIUS,
            quantity=TEMPERATURE,
            severity=CRITICAL,
            summer=Limits(21.0, 25.0, text="23±2 °C"),
            winter=Limits(18.0, 22.0, text="20±2 °C"),
            season=season,
        ),
        # A fast swing stresses hardware and is the first sign of a cooling failure; the absolute
        # range above is what is critical.
        RateOfChangeRule(
            id="env.temperature-change",
            requirement_id="R-7.1-2",
            metric=Metric.TEMPERATURE_CELSIUS,
            quantity=TEMPERATURE,
            severity=WARNING,
            max_change_per_hour=5.0,
        ),
        _range(
            "env.humidity",
            "R-7.1-4",
            Metric.RELATIVE_HUMIDITY_PERCENT,
            Quantity("relative humidity", "%"),
            CRITICAL,
            Limits(45.0, 65.0, text="45\N{EN DASH}65 %, best 55 %"),
        ),
        # The standard says "not less than 18,000"; an upper limit is what makes sense for dust.
        _range(
            "env.dust",
            "R-7.1-3",
            Metric.DUST_PARTICLES_PER_LITRE,
            Quantity("dust (≥ 0.5 µm)", "particles/L", 0),
            WARNING,
            _at_most(18_000.0),
        ),
        _range(
            "env.magnetic-field",
            "R-7.1-6",
            Metric.MAGNETIC_FIELD_A_PER_M,
            Quantity("magnetic field", "A/m", 0),
            WARNING,
            _below(800.0),
        ),
        _range(
            "env.floor-vibration",
            "R-7.1-7",
            Metric.FLOOR_VIBRATION_MM_PER_S2,
            Quantity("floor vibration", "mm/s²", 0),
            WARNING,
            _at_most(500.0),
        ),
        _range(
            "env.radio-interference",
            "R-7.1-8",
            Metric.RADIO_INTERFERENCE_DB,
            Quantity("radio interference", "dB"),
            WARNING,
            _at_most(126.0),
        ),
        _range(
            "env.mains-frequency",
            "R-7.1-9",
            Metric.MAINS_FREQUENCY_HZ,
            Quantity("mains frequency", "Hz", 2),
            CRITICAL,
            Limits(49.8, 50.2, text="50±0.2 Hz"),
        ),
        _range(
            "env.mains-voltage.three-phase",
            "R-7.1-10",
            Metric.MAINS_VOLTAGE_VOLTS,
            Quantity("three-phase mains voltage", "V"),
            CRITICAL,
            Limits(375.0, 385.0, text="380 V ±5 V"),
            supply="three-phase",
        ),
        _range(
            "env.mains-voltage.single-phase",
            "R-7.1-10",
            Metric.MAINS_VOLTAGE_VOLTS,
            Quantity("single-phase mains voltage", "V"),
            CRITICAL,
            Limits(215.0, 225.0, text="220 V ±5 V"),
            supply="single-phase",
        ),
        _range(
            "env.waveform-distortion",
            "R-7.1-11",
            Metric.WAVEFORM_DISTORTION_PERCENT,
            Quantity("waveform distortion", "%"),
            WARNING,
            _at_most(5.0),
        ),
        _range(
            "env.noise",
            "R-7.1-12",
            Metric.NOISE_DB,
            Quantity("noise", "dB"),
            WARNING,
            _below(65.0),
        ),
        _range(
            "env.illuminance.machine-room",
            "R-7.1-13",
            Metric.ILLUMINANCE_LUX,
            Quantity("machine-room illuminance", "lx", 0),
            WARNING,
            _at_least(450.0),
            area="machine-room",
        ),
        _range(
            "env.illuminance.auxiliary-room",
            "R-7.1-13",
            Metric.ILLUMINANCE_LUX,
            Quantity("auxiliary-room illuminance", "lx", 0),
            WARNING,
            _at_least(300.0),
            area="auxiliary-room",
        ),
        _range(
            "env.illuminance.emergency",
            "R-7.1-13",
            Metric.ILLUMINANCE_LUX,
            Quantity("emergency illuminance", "lx", 0),
            WARNING,
            _at_least(50.0),
            area="emergency",
        ),
        _range(
            "env.ground.dc",
            "R-7.1-15",
            Metric.GROUND_RESISTANCE_OHMS,
            Quantity("DC ground resistance", "Ω", 2),
            CRITICAL,
            _at_most(1.0),
            ground="dc",
        ),
        _range(
            "env.neutral-to-ground",
            "R-7.1-15",
            Metric.NEUTRAL_TO_GROUND_VOLTS,
            Quantity("neutral-to-ground voltage", "V", 2),
            WARNING,
            _below(1.0),
        ),
        _range(
            "env.ground.ac-working",
            "R-7.1-16",
            Metric.GROUND_RESISTANCE_OHMS,
            Quantity("AC working ground resistance", "Ω", 2),
            CRITICAL,
            _below(4.0),
            ground="ac-working",
        ),
        _range(
            "env.ground.safety",
            "R-7.1-17",
            Metric.GROUND_RESISTANCE_OHMS,
            Quantity("safety and ESD ground resistance", "Ω", 2),
            CRITICAL,
            _below(4.0),
            ground="safety",
        ),
        _range(
            "env.ground.lightning",
            "R-7.1-18",
            Metric.GROUND_RESISTANCE_OHMS,
            Quantity("lightning ground resistance", "Ω", 2),
            CRITICAL,
            _below(10.0),
            ground="lightning",
        ),
        _range(
            "env.electrostatic-potential",
            "R-7.1-19",
            Metric.ELECTROSTATIC_POTENTIAL_VOLTS,
            Quantity("electrostatic potential", "V", 0),
            WARNING,
            _below(1000.0, text="< 1 kV"),
        ),
    )


def capacity_rules() -> tuple[Rule, ...]:
    """Capacity management (R-6.5b) on `capacity.utilisation_percent`, one series per resource."""
    return (
        UtilisationRule(
            id="capacity.utilisation.warning",
            requirement_id="R-6.5b",
            severity=WARNING,
            threshold_percent=80.0,
        ),
        UtilisationRule(
            id="capacity.utilisation.critical",
            requirement_id="R-6.5b",
            severity=CRITICAL,
            threshold_percent=90.0,
        ),
        # A week of trend smooths the working-day rhythm out of the growth; a day is the least
        # worth extrapolating a month from.
        DaysToFullRule(
            id="capacity.days-to-full",
            requirement_id="R-6.5b",
            severity=WARNING,
            within_days=30.0,
        ),
    )


def performance_rules() -> tuple[Rule, ...]:
    """Performance management (R-6.5b) of hosts: sustained load, not a single busy sample."""
    return (
        RangeRule(
            id="perf.host-cpu",
            requirement_id="R-6.5b",
            metric=Metric.HOST_CPU_UTILISATION_PERCENT,
            quantity=Quantity("host CPU utilisation", "%"),
            severity=WARNING,
            limits=_at_most(90.0),
            for_seconds=FIVE_MINUTES,
        ),
        RangeRule(
            id="perf.host-memory",
            requirement_id="R-6.5b",
            metric=Metric.HOST_MEMORY_UTILISATION_PERCENT,
            quantity=Quantity("host memory utilisation", "%"),
            severity=CRITICAL,
            limits=_at_most(95.0),
            for_seconds=FIVE_MINUTES,
        ),
        RangeRule(
            id="perf.host-disk",
            requirement_id="R-6.5b",
            metric=Metric.HOST_DISK_UTILISATION_PERCENT,
            quantity=Quantity("host disk utilisation", "%"),
            severity=WARNING,
            limits=_at_most(90.0),
        ),
        # Two runnable tasks per CPU for five minutes means work is queueing, not just busy.
        RangeRule(
            id="perf.host-load",
            requirement_id="R-6.5b",
            metric=Metric.HOST_LOAD_PER_CPU,
            quantity=Quantity("host load per CPU", "", 2),
            severity=WARNING,
            limits=_at_most(2.0),
            for_seconds=FIVE_MINUTES,
        ),
    )


def default_rules(season: Season = DEFAULT_SEASON) -> tuple[Rule, ...]:
    return environment_rules(season) + capacity_rules() + performance_rules()
