"""Staged rollouts: canary first, then waves, each behind accuracy and latency gates.

Pure functions (wave planning and gate checks), tested on their own; the
admin service drives them with real deployments and jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jetfleet.common.errors import JetfleetError


def plan_waves(devices: Sequence[str], canary: int, wave_size: int) -> list[list[str]]:
    """``canary`` devices first, then waves of ``wave_size`` (0 = everything left at once)."""
    if canary < 0 or wave_size < 0:
        raise JetfleetError("--canary and --wave-size must not be negative")
    names = list(devices)
    waves = []
    if canary:
        waves.append(names[:canary])
        names = names[canary:]
    step = wave_size or len(names)
    waves += [names[i : i + step] for i in range(0, len(names), step)] if names else []
    return waves


@dataclass(frozen=True)
class WaveResult:
    """What one device of a wave ended with."""

    device: str
    phase: str  # active | failed | blocked | offline | timeout
    message: str = ""
    smoke_accuracy: float | None = None
    p99_ms: float | None = None


def check_gate(results: Sequence[WaveResult], min_accuracy: float | None, max_p99_ms: float | None) -> list[str]:
    """Why the wave fails its gate (empty = it passes). Every device must be active and within the limits."""
    problems = []
    for r in results:
        if r.phase != "active":
            problems.append(f"{r.device} is {r.phase}: {r.message}".rstrip(": "))
            continue
        if min_accuracy is not None and (r.smoke_accuracy is None or r.smoke_accuracy < min_accuracy):
            got = "no measurement" if r.smoke_accuracy is None else f"{r.smoke_accuracy:.2%}"
            problems.append(f"{r.device}: smoke-test accuracy {got} < {min_accuracy:.2%}")
        if max_p99_ms is not None and (r.p99_ms is None or r.p99_ms > max_p99_ms):
            got = "no measurement" if r.p99_ms is None else f"{r.p99_ms:.2f} ms"
            problems.append(f"{r.device}: p99 latency {got} > {max_p99_ms:.2f} ms")
    return problems
