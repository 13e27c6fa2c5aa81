"""The full description of a training run, stored verbatim in every checkpoint.

One frozen dataclass per concern; every default carries a one-line reason.
A checkpoint's ``config`` key is ``asdict(TrainConfig)``, and
:func:`TrainConfig.from_dict` is its inverse, so a run can be resumed or
reproduced from its checkpoint alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from jetfleet.common.errors import JetfleetError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine", "plateau", "onecycle")
BUILTIN_LOSSES = ("cross_entropy", "focal")
MONITORS = ("val_accuracy", "val_loss")


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # Adam needs the least tuning for small CNNs
    lr: float = 1e-3  # Adam's standard step size
    weight_decay: float = 0.0  # off by default; AdamW users set e.g. 0.05
    momentum: float = 0.9  # SGD only: the value every ResNet recipe uses
    nesterov: bool = False  # SGD only


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "cosine"  # smooth decay to ~0 by the last epoch, no extra knobs
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step and plateau: multiplicative decay
    patience: int = 3  # plateau: epochs without improvement before decaying
    warmup_pct: float = 0.3  # onecycle: fraction of steps spent warming up


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross_entropy"  # or focal, or "package.module:Name" for your own
    label_smoothing: float = 0.0  # cross-entropy: 0.1 is a common regulariser
    focal_gamma: float = 2.0  # focal: Lin et al.'s recommended focusing parameter
    focal_alpha: float | None = None  # focal: no class re-weighting unless asked


@dataclass(frozen=True)
class AugmentOptions:
    """``None`` means "the dataset's default" (e.g. no flips for digits)."""

    enabled: bool = True
    crop_padding: int | None = None
    resized_crop: float | None = None
    hflip: bool | None = None
    rotation: float | None = None
    color_jitter: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    model: str = "basic_cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"  # the embedded dataset: works offline
    data_root: str = "data"
    image_size: int | None = None  # None: the dataset's natural size (folders: fitted to the data)
    channels: int | None = None  # image folders only: None = 1 when every image is grayscale, else 3
    epochs: int = 10
    batch_size: int | str = 64  # an int, or "auto": the largest that fits the device
    accumulate: int = 1  # gradient accumulation steps: effective batch = batch_size × accumulate
    workers: int = 2  # processes decoding an image folder, once per run (or never, once cached)
    skip_bad: bool = False  # stop on unreadable images (listing them) unless asked to train without them
    device: str = "auto"  # auto: CUDA, then MPS, then CPU
    amp: bool = True  # mixed precision, used only on CUDA
    seed: int = 42  # runs are reproducible unless you change it
    sync_bn: bool = True  # DDP on CUDA: batch norm over the global batch, as one process would compute it
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    early_stopping_patience: int = 0  # 0 disables; otherwise epochs without improvement
    monitor: str = "val_accuracy"  # metric for early stopping and the best checkpoint
    min_delta: float = 0.0  # improvement smaller than this does not count

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject settings that would fail later, naming the option."""
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.accumulate >= 1, f"--accumulate must be at least 1, got {self.accumulate}"),
            (self.optim.name in OPTIMIZERS, f"unknown optimizer {self.optim.name!r}; choose {', '.join(OPTIMIZERS)}"),
            (self.optim.lr > 0, f"--lr must be positive, got {self.optim.lr}"),
            (
                self.schedule.name in SCHEDULERS,
                f"unknown scheduler {self.schedule.name!r}; choose {', '.join(SCHEDULERS)}",
            ),
            (self.monitor in MONITORS, f"unknown monitor {self.monitor!r}; choose {', '.join(MONITORS)}"),
            (self.early_stopping_patience >= 0, "--patience must be 0 (off) or positive"),
            (0 <= self.loss.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.workers >= 0, "--workers must be 0 or more"),
            (self.channels in (None, 1, 3), f"--channels must be 1 or 3, got {self.channels}"),
        ]
        bs = self.batch_size
        checks.append(
            (
                bs == "auto" or (isinstance(bs, int) and bs >= 1),
                f"--batch-size must be a positive integer or 'auto', got {bs!r}",
            )
        )
        loss_ok = self.loss.name in BUILTIN_LOSSES or ":" in self.loss.name
        checks.append(
            (loss_ok, f"unknown loss {self.loss.name!r}; choose {', '.join(BUILTIN_LOSSES)} or package.module:Name")
        )
        for ok, message in checks:
            if not ok:
                raise JetfleetError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        nested = {"optim": OptimConfig, "schedule": ScheduleConfig, "loss": LossConfig, "augment": AugmentOptions}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise JetfleetError(f"training config has unknown keys: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        for key, sub in nested.items():
            if key in kwargs and isinstance(kwargs[key], dict):
                kwargs[key] = sub(**kwargs[key])
        return cls(**kwargs)

    def with_epochs(self, epochs: int) -> TrainConfig:
        return replace(self, epochs=epochs)
