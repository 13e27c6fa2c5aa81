"""Loss functions: cross-entropy, focal loss, or the user's own by import path."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.training.config import LossConfig


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)^gamma.

    Down-weights examples the model already gets right, which helps when a
    few classes dominate the data. ``alpha`` optionally weights every class
    equally by that factor (scalar) as in the paper's binary form.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)
        pt = log_pt.exp()
        loss = -((1 - pt) ** self.gamma) * log_pt
        if self.alpha is not None:
            loss = self.alpha * loss
        return loss.mean()


def _import_object(path: str) -> object:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JetfleetError(f"cannot import loss module {module_name!r}: {exc}", hint="is it on PYTHONPATH?") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise JetfleetError(f"module {module_name!r} has no attribute {attr!r}") from exc


def build_loss(config: LossConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training criterion named by ``config``.

    A user loss given as ``pkg.mod:Name`` may be an ``nn.Module`` subclass
    (instantiated without arguments) or a plain ``f(logits, target)``.
    """
    if config.name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if config.name == "focal":
        return FocalLoss(config.focal_gamma, config.focal_alpha)
    obj = _import_object(config.name)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return obj()
    if callable(obj):
        return obj  # type: ignore[return-value]
    raise JetfleetError(f"loss {config.name!r} is neither an nn.Module class nor a function")
