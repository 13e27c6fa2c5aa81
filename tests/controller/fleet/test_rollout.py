"""Wave planning and gates of staged rollouts."""

from __future__ import annotations

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.rollout import WaveResult, check_gate, plan_waves

NAMES = [f"d{i}" for i in range(7)]


def test_waves() -> None:
    assert plan_waves(NAMES, 0, 0) == [NAMES]
    assert plan_waves(NAMES, 1, 0) == [["d0"], NAMES[1:]]
    assert plan_waves(NAMES, 2, 2) == [["d0", "d1"], ["d2", "d3"], ["d4", "d5"], ["d6"]]
    assert plan_waves(NAMES, 0, 3) == [NAMES[:3], NAMES[3:6], ["d6"]]
    assert plan_waves(["a"], 5, 0) == [["a"]]
    with pytest.raises(JetfleetError):
        plan_waves(NAMES, -1, 0)


def test_gates() -> None:
    good = WaveResult("a", "active", smoke_accuracy=0.98, p99_ms=1.5)
    assert check_gate([good], 0.97, 2.0) == []
    assert check_gate([good], None, None) == []
    assert check_gate([good], 0.99, None) == ["a: smoke-test accuracy 98.00% < 99.00%"]
    assert check_gate([good], None, 1.0) == ["a: p99 latency 1.50 ms > 1.00 ms"]
    assert check_gate([WaveResult("b", "failed", "smoke test")], None, None) == ["b is failed: smoke test"]
    assert check_gate([WaveResult("c", "active")], 0.5, None) == ["c: smoke-test accuracy no measurement < 50.00%"]
