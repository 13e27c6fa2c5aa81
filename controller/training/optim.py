"""Optimizers and learning-rate schedules from a :class:`TrainConfig`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jetfleet.controller.training.config import OptimConfig, ScheduleConfig


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum, optionally Nesterov) over all parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
    )


class Schedule:
    """One interface over torch's schedulers: ``after_step`` per optimizer step, ``after_epoch`` per epoch.

    One-cycle advances every optimizer step; reduce-on-plateau needs the
    validation metric; the rest advance once an epoch. Callers need not know.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: ScheduleConfig,
        epochs: int,
        steps_per_epoch: int,
        maximize: bool,
    ) -> None:
        self.name = config.name
        self.scheduler: Any = None
        if config.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
        elif config.name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        elif config.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if maximize else "min", factor=config.gamma, patience=config.patience
            )
        elif config.name == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[g["lr"] for g in optimizer.param_groups],
                total_steps=max(1, epochs * steps_per_epoch),
                pct_start=config.warmup_pct,
            )

    def after_step(self) -> None:
        if self.name == "onecycle":
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        if self.name == "plateau":
            self.scheduler.step(metric)
        elif self.name in ("step", "cosine"):
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)
