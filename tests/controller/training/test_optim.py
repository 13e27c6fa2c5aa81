from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from jetfleet.controller.training.config import OptimConfig, ScheduleConfig
from jetfleet.controller.training.optim import Schedule, build_optimizer


def _model() -> nn.Module:
    return nn.Linear(3, 2)


@pytest.mark.parametrize(
    ("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_optimizers(name: str, cls: type) -> None:
    opt = build_optimizer(_model(), OptimConfig(name, lr=0.05, weight_decay=0.01, nesterov=True))
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.05
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


def _lrs(schedule_name: str, epochs: int = 6, steps: int = 4, metric: float = 1.0) -> list[float]:
    opt = build_optimizer(_model(), OptimConfig("sgd", lr=0.1))
    sched = Schedule(opt, ScheduleConfig(schedule_name, step_size=2, gamma=0.5, patience=1), epochs, steps, True)
    lrs = []
    for _ in range(epochs):
        for _ in range(steps):
            opt.step()
            sched.after_step()
        lrs.append(opt.param_groups[0]["lr"])
        sched.after_epoch(metric)
    return lrs


def test_step_schedule_halves_every_two_epochs() -> None:
    assert _lrs("step") == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_decays_monotonically() -> None:
    lrs = _lrs("cosine")
    assert lrs[0] == pytest.approx(0.1) and all(a > b for a, b in itertools.pairwise(lrs))


def test_plateau_decays_when_metric_stalls() -> None:
    lrs = _lrs("plateau", metric=0.5)
    assert lrs[0] == 0.1 and lrs[-1] < 0.1


def test_onecycle_warms_up_then_anneals() -> None:
    lrs = _lrs("onecycle", epochs=10)
    peak = max(range(10), key=lambda i: lrs[i])
    assert 0 < peak < 9 and lrs[-1] < lrs[0]


def test_schedule_state_round_trip() -> None:
    opt = build_optimizer(_model(), OptimConfig("sgd", lr=0.1))
    s = Schedule(opt, ScheduleConfig("onecycle"), 3, 5, True)
    for _ in range(4):
        opt.step()
        s.after_step()
    opt2 = build_optimizer(_model(), OptimConfig("sgd", lr=0.1))
    s2 = Schedule(opt2, ScheduleConfig("onecycle"), 3, 5, True)
    s2.load_state_dict(s.state_dict())
    opt.step()
    s.after_step()
    opt2.step()
    s2.after_step()
    assert s.scheduler.get_last_lr() == s2.scheduler.get_last_lr()
