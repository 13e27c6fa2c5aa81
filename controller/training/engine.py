"""The two loops everything else is built from: :func:`train_one_epoch` and :func:`evaluate`.

Batches arrive as uint8 on the host; :class:`BatchPrep` moves them to the
device, scales, augments and normalizes there in one go (see
``data/augment.py`` for why).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from jetfleet.controller.data.augment import BatchAugment
from jetfleet.controller.training.optim import Schedule

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BatchCallback = Callable[[int, torch.Tensor], None]  # (batch index, loss on the device)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA (a Jetson's GPU included), then Apple MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class BatchPrep:
    """uint8 (B, C, H, W) on the host → normalized float on ``device``, optionally augmented."""

    def __init__(
        self, device: torch.device, mean: tuple[float, ...], std: tuple[float, ...], augment: BatchAugment | None = None
    ) -> None:
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.augment = augment

    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if self.augment is not None and gen is not None:
            x = self.augment(x, gen)
        return (x - self.mean) / self.std


@dataclass
class Precision:
    """Mixed precision settings; on CPU and MPS everything stays float32."""

    enabled: bool
    scaler: torch.amp.GradScaler | None

    @classmethod
    def for_device(cls, device: torch.device, amp: bool) -> Precision:
        on = amp and device.type == "cuda"
        return cls(on, torch.amp.GradScaler("cuda") if on else None)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[None]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.float16)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    images: int
    seconds: float


def _step(optimizer: torch.optim.Optimizer, precision: Precision, schedule: Schedule | None) -> None:
    if precision.scaler is not None:
        precision.scaler.step(optimizer)
        precision.scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if schedule is not None:
        schedule.after_step()


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    criterion: Criterion,
    optimizer: torch.optim.Optimizer,
    prep: BatchPrep,
    gen: torch.Generator | None = None,
    precision: Precision | None = None,
    schedule: Schedule | None = None,
    accumulate: int = 1,
    on_batch: BatchCallback | None = None,
) -> EpochStats:
    """One pass over ``batches``; an optimizer step every ``accumulate`` batches (and at the end)."""
    precision = precision or Precision(False, None)
    device = prep.device
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, pending, start = 0, 0, time.perf_counter()
    for i, (images, targets) in enumerate(batches):
        x = prep(images, gen)
        y = targets.to(device, non_blocking=True)
        with precision.autocast(device):
            logits = model(x)
            loss = criterion(logits, y)
        scaled = loss / accumulate
        (precision.scaler.scale(scaled) if precision.scaler is not None else scaled).backward()
        pending += 1
        if pending == accumulate:
            _step(optimizer, precision, schedule)
            pending = 0
        # Accumulate on the device: a .item() per batch would force a sync.
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if on_batch is not None:
            on_batch(i, loss.detach())  # a tensor: the callback decides when a host sync is worth it
    if pending:
        _step(optimizer, precision, schedule)
    return EpochStats(
        loss=float(total_loss) / max(seen, 1),
        accuracy=float(correct) / max(seen, 1),
        images=seen,
        seconds=time.perf_counter() - start,
    )


@dataclass
class EvalOutput:
    loss: float
    scores: npt.NDArray[np.float32]  # (N, C) softmax probabilities
    targets: npt.NDArray[np.int64]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.scores.argmax(1) == self.targets)) if len(self.targets) else float("nan")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    criterion: Criterion,
    prep: BatchPrep,
    precision: Precision | None = None,
) -> EvalOutput:
    """Loss, class probabilities and targets over ``batches`` with the model in eval mode."""
    precision = precision or Precision(False, None)
    model.eval()
    losses, scores, targets = [], [], []
    n = 0
    for images, y in batches:
        x = prep(images)
        y = y.to(prep.device)
        with precision.autocast(prep.device):
            logits = model(x)
        losses.append(criterion(logits.float(), y).detach() * len(y))
        scores.append(torch.softmax(logits.float(), 1).cpu())
        targets.append(y.cpu())
        n += len(y)
    if n == 0:
        return EvalOutput(float("nan"), np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
    return EvalOutput(
        loss=float(torch.stack(losses).sum()) / n,
        scores=torch.cat(scores).numpy(),
        targets=torch.cat(targets).numpy().astype(np.int64),
    )
