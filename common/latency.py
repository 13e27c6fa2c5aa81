"""Latency statistics as practitioners read them (trtexec, MLPerf).

Percentiles use numpy's default linear interpolation, so a p99 over 100
samples lies between the two slowest, not at the slowest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds; ``count`` samples."""

    count: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_ms(cls, samples: Sequence[float]) -> LatencyStats:
        """Statistics of ``samples`` (milliseconds); all zero for an empty sequence."""
        if len(samples) == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        a = np.asarray(samples, dtype=np.float64)
        p = np.percentile(a, [50, 90, 95, 99])
        return cls(
            count=int(a.size),
            min_ms=float(a.min()),
            mean_ms=float(a.mean()),
            median_ms=float(p[0]),
            p90_ms=float(p[1]),
            p95_ms=float(p[2]),
            p99_ms=float(p[3]),
            max_ms=float(a.max()),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
