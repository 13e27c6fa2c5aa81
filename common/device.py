"""What an agent knows about its device: fixed facts and load samples.

Both sides use these dataclasses: the agent fills them (``jetfleet.agent.
telemetry``), the controller stores and plots them. ``None`` means "not
measurable on this device", never zero: a laptop has no GPU rail power, and a
report must say so rather than draw a flat line at 0 W.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeviceInfo:
    """Facts detected once at agent start; they key engine and timing caches."""

    hostname: str
    board: str
    device_class: str  # stable, filename-safe: "jetson-orin-nano", "cpu-x86_64"
    is_jetson: bool
    cpu_model: str
    cpu_count: int
    memory_total_mb: int
    os_release: str
    kernel: str
    python: str
    agent_version: str
    l4t_release: str | None = None
    jetpack: str | None = None
    power_mode: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    cuda_version: str | None = None
    tensorrt_version: str | None = None
    onnxruntime_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of memory, load, temperatures and power."""

    timestamp: float
    source: str  # "tegrastats" or "procfs"
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    cpu_percent: float | None = None
    cpu_core_percent: tuple[float, ...] = ()
    gpu_percent: float | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    power_mw: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_core_percent"] = list(self.cpu_core_percent)
        return d
