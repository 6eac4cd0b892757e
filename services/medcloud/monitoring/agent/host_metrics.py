"""The node's own load, measured with psutil: CPU, memory, disk per mount and load per CPU."""

from __future__ import annotations

import psutil

from medcloud.monitoring.agent.sources import SensorReading
from medcloud.monitoring.domain.samples import Metric

# Physical filesystems that are read-only by nature always look full (snap packages on squashfs
# sit at 100 %) and can never fill up, so they would only raise false disk alerts.
_NEVER_FILLING_FILESYSTEMS = frozenset({"squashfs", "iso9660", "udf", "erofs"})


class HostMetrics:
    """Takes one reading of each host series per `collect`. CPU utilisation is the average since
    the previous call (the first one since construction), so call it once per interval."""

    def __init__(self, max_mounts: int = 16) -> None:
        self._max_mounts = max_mounts
        psutil.cpu_percent(interval=None)

    def collect(self, now: float) -> list[SensorReading]:
        readings = [
            SensorReading(
                Metric.HOST_CPU_UTILISATION_PERCENT, psutil.cpu_percent(interval=None), {}, now
            ),
            SensorReading(
                Metric.HOST_MEMORY_UTILISATION_PERCENT, psutil.virtual_memory().percent, {}, now
            ),
            SensorReading(
                Metric.HOST_LOAD_PER_CPU,
                psutil.getloadavg()[0] / (psutil.cpu_count(logical=True) or 1),
                {},
                now,
            ),
        ]
        for mount in self._writable_mounts():
            try:
                used_percent = psutil.disk_usage(mount).percent
            except OSError:  # unmounted since listing, or not ours to read
                continue
            readings.append(
                SensorReading(
                    Metric.HOST_DISK_UTILISATION_PERCENT, used_percent, {"mount": mount}, now
                )
            )
        return readings

    def _writable_mounts(self) -> list[str]:
        """Mount points of disk-backed, writable filesystems, one per device (bind mounts repeat
        a device), the shortest path first, at most `max_mounts` of them."""
        by_device: dict[str, str] = {}
        # psutil leaves out pseudo and memory filesystems (proc, sysfs, tmpfs, overlay, cgroup).
        for partition in psutil.disk_partitions(all=False):
            options = partition.opts.split(",")
            if partition.fstype in _NEVER_FILLING_FILESYSTEMS or "ro" in options:
                continue
            known = by_device.get(partition.device)
            if known is None or len(partition.mountpoint) < len(known):
                by_device[partition.device] = partition.mountpoint
        return sorted(by_device.values(), key=lambda mount: (len(mount), mount))[: self._max_mounts]
