"""A whole training run: build everything from a :class:`TrainConfig`, fit, test, report.

``train`` starts a run, ``resume`` continues one from its ``last.pt`` and
reproduces exactly what the uninterrupted run would have done: each epoch's
shuffle, augmentation and dropout draws are seeded from (seed, epoch), and
every stateful object (model, optimizer, scheduler, AMP scaler, early
stopping, history) is in the checkpoint.
"""

from __future__ import annotations

import dataclasses
import io
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_write_text
from jetfleet.common.version import __version__
from jetfleet.controller.data import AugmentConfig, BatchAugment, DataOptions, DatasetBundle, load_dataset, make_loader
from jetfleet.controller.data.defaults import describe_augment
from jetfleet.controller.data.loading import epoch_generator
from jetfleet.controller.models import create_model, resolve_model_name
from jetfleet.controller.training.batch_size import auto_batch_size
from jetfleet.controller.training.checkpoint import load_checkpoint, save_checkpoint
from jetfleet.controller.training.config import AugmentOptions, TrainConfig
from jetfleet.controller.training.distributed import (
    Placement,
    all_reduce_sums,
    barrier,
    broadcast,
    init,
    placement_from_env,
    shutdown,
)
from jetfleet.controller.training.early_stopping import EarlyStopping
from jetfleet.controller.training.engine import BatchPrep, Precision, evaluate, select_device, train_one_epoch
from jetfleet.controller.training.losses import build_loss
from jetfleet.controller.training.optim import Schedule, build_optimizer
from jetfleet.controller.training.plots import plot_curves
from jetfleet.controller.training.progress import TrainProgress
from jetfleet.controller.training.report import print_report, report_dict, report_of, write_confusion
from jetfleet.controller.training.rundir import prepare_run_dir, summary_markdown, write_history, write_json
from jetfleet.controller.training.tensorboard import TensorBoardLog

AUTO_BATCH_LIMIT = 512  # beyond this, returns in accuracy per image shrink on every model we ship
MIN_STEPS_PER_EPOCH = 16  # auto never picks a batch so big that an epoch has fewer optimizer steps


@dataclass
class RunResult:
    out_dir: Path
    summary: dict[str, Any]

    @property
    def test_accuracy(self) -> float:
        return float(self.summary["test_accuracy"])


def resolve_augment(options: AugmentOptions, default: AugmentConfig, default_reason: str) -> tuple[AugmentConfig, str]:
    """Dataset defaults, overridden field by field by what the user set; and why that is what runs."""
    if not options.enabled:
        return AugmentConfig(), "off (--no-augment)"
    names = [f.name for f in dataclasses.fields(AugmentConfig)]
    given = [n for n in names if getattr(options, n) is not None]

    def pick(name: str) -> Any:
        value = getattr(options, name)
        return getattr(default, name) if value is None else value

    config = AugmentConfig(*(pick(n) for n in names))
    if not given:
        return config, default_reason
    flags = ", ".join("--" + n.replace("_", "-") for n in given)
    return config, f"{flags} as given, the rest the dataset's default ({default_reason})"


def data_options(config: TrainConfig, console: Console, download: bool = False) -> DataOptions:
    return DataOptions(
        root=Path(config.data_root),
        download=download,
        image_size=config.image_size,
        channels=config.channels,
        workers=config.workers,
        skip_bad=config.skip_bad,
        log=lambda line: console.print(line, highlight=False),
    )


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Run:
    """Everything a run needs, built once from the config (and optionally a checkpoint)."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: Path,
        console: Console,
        download: bool = False,
        batch_size: int | None = None,
        place: Placement | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self.console = console
        self.place = place or Placement()
        self.device = device or select_device(config.device)
        self.bundle: DatasetBundle = load_dataset(config.dataset, data_options(config, console, download))
        seed_everything(config.seed)
        self.model_name = resolve_model_name(config.model)
        self.model = create_model(
            self.model_name,
            num_classes=self.bundle.num_classes,
            in_channels=self.bundle.channels,
            **config.model_kwargs,
        )
        # rank 0's choice everywhere: ranks that disagreed on --batch-size auto would run different step counts
        self.batch_size = broadcast(batch_size or self._batch_size(), self.place)
        self.model.to(self.device)
        self.train_model = self._data_parallel()
        self.augment, self.augment_reason = resolve_augment(
            config.augment, self.bundle.default_augment, self.bundle.augment_reason
        )
        mean, std = self.bundle.mean, self.bundle.std
        self.train_prep = BatchPrep(
            self.device, mean, std, BatchAugment(self.augment) if self.augment.enabled else None
        )
        self.eval_prep = BatchPrep(self.device, mean, std)
        pin = self.device.type == "cuda"
        rank, world = self.place.rank, self.place.world
        self.train_loader = make_loader(self.bundle.train, self.batch_size, True, config.seed, pin, rank, world)
        self.val_loader = make_loader(self.bundle.val, self.batch_size, False, config.seed, pin, rank, world)
        self.criterion = build_loss(config.loss)
        self.optimizer = build_optimizer(self.model, config.optim)
        maximize = config.monitor == "val_accuracy"
        steps = -(-len(self.train_loader) // config.accumulate)
        self.schedule = Schedule(self.optimizer, config.schedule, config.epochs, steps, maximize)
        self.precision = Precision.for_device(self.device, config.amp)
        self.stopper = EarlyStopping(config.early_stopping_patience, maximize, config.min_delta)
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.next_epoch = 0

    def _data_parallel(self) -> torch.nn.Module:
        """The module the training step calls: DDP around the model when there are several ranks.

        SyncBatchNorm needs CUDA (torch refuses it on CPU); with gloo on CPU
        each rank normalizes its own batch and DDP broadcasts rank 0's
        running statistics every step, so every rank evaluates the same model.
        """
        if not self.place.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        if self.config.sync_bn and self.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def _batch_size(self) -> int:
        if self.config.batch_size != "auto":
            return int(self.config.batch_size)
        shape = (self.bundle.channels, self.bundle.input_size, self.bundle.input_size)
        limit = max(1, min(AUTO_BATCH_LIMIT, len(self.bundle.train) // MIN_STEPS_PER_EPOCH))
        chosen = auto_batch_size(self.model, shape, self.device, limit)
        self.console.print(f"--batch-size auto: using {chosen} on {self.device}")
        return chosen

    # -- checkpoint state -------------------------------------------------

    def payload(self, epoch: int) -> dict[str, Any]:
        """A plain dict holding the model, its provenance and every piece of training state."""
        return {
            "model": self.model_name,
            "model_kwargs": dict(self.config.model_kwargs),
            "num_classes": self.bundle.num_classes,
            "in_channels": self.bundle.channels,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "preprocess": self.bundle.preprocess_spec().to_dict(),
            "config": self.config.to_dict(),
            "dataset": self.bundle.name,
            "augment": dataclasses.asdict(self.augment),  # as resolved: resume must not re-derive it
            "epoch": epoch,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.precision.scaler.state_dict() if self.precision.scaler else {},
            "early_stopping": self.stopper.state_dict(),
            "history": list(self.history),
            "train_seconds": self.train_seconds,
            "versions": {"jetfleet": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        }

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        if self.precision.scaler is not None and ckpt.get("scaler"):
            self.precision.scaler.load_state_dict(ckpt["scaler"])
        self.stopper.load_state_dict(ckpt["early_stopping"])
        self.history = list(ckpt["history"])
        self.train_seconds = float(ckpt.get("train_seconds", 0.0))
        self.next_epoch = int(ckpt["epoch"]) + 1

    # -- the loop ------------------------------------------------------------

    def run_epoch(self, epoch: int, progress: TrainProgress) -> dict[str, float]:
        torch.manual_seed(self.config.seed * 1_000_003 + epoch)  # dropout draws for this epoch
        self.train_loader.set_epoch(epoch)
        gen = epoch_generator(self.config.seed, epoch, self.device)
        progress.start_epoch(epoch, len(self.train_loader), len(self.bundle.train), self.batch_size)
        lr = self.optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            self.train_model,
            self.train_loader,
            self.criterion,
            self.optimizer,
            self.train_prep,
            gen,
            self.precision,
            self.schedule,
            self.config.accumulate,
            progress.batch,
        )
        val = evaluate(self.model, self.val_loader, self.criterion, self.eval_prep, self.precision)
        n = len(val.targets)
        val_correct = float((val.scores.argmax(1) == val.targets).sum()) if n else 0.0
        # every rank saw its own shard: sum over ranks so each one decides on the same numbers
        t_loss, t_correct, t_seen, v_loss, v_correct, v_seen = all_reduce_sums(
            [
                stats.loss * stats.images,
                stats.accuracy * stats.images,
                stats.images,
                val.loss * n if n else 0.0,
                val_correct,
                n,
            ],
            self.device,
            self.place,
        )
        val_loss, val_accuracy = v_loss / max(v_seen, 1), v_correct / max(v_seen, 1)
        self.schedule.after_epoch(val_accuracy if self.config.monitor == "val_accuracy" else val_loss)
        self.train_seconds += stats.seconds
        return {
            "epoch": epoch + 1,
            "train_loss": t_loss / max(t_seen, 1),
            "train_accuracy": t_correct / max(t_seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": lr,
            "seconds": stats.seconds,
            "images_per_second": t_seen / max(stats.seconds, 1e-9),
        }

    def fit(self) -> None:
        cfg = self.config
        with (
            TrainProgress(self.console, cfg.epochs, self.next_epoch) as progress,
            TensorBoardLog(self.out_dir / "tensorboard", write=self.place.is_main) as tb,
        ):
            for epoch in range(self.next_epoch, cfg.epochs):
                if self.stopper.should_stop:
                    break
                row = self.run_epoch(epoch, progress)
                self.history.append(row)
                best = self.stopper.update(row[cfg.monitor], epoch)
                if self.place.is_main:  # one writer: every rank holds the same weights after the step
                    self.write_epoch(epoch, row, best, tb)
                barrier(self.place)  # no rank runs ahead of the checkpoint a restart would resume from
                progress.end_epoch(row, best)
        if self.stopper.should_stop:
            self.console.print(
                f"early stopping: {cfg.monitor} has not improved for {self.stopper.patience} epochs "
                f"(best at epoch {self.stopper.best_epoch + 1})"
            )

    def write_epoch(self, epoch: int, row: dict[str, float], best: bool, tb: TensorBoardLog) -> None:
        payload = self.payload(epoch)
        save_checkpoint(self.out_dir / "last.pt", payload)
        if best:
            save_checkpoint(self.out_dir / "best.pt", payload)
        write_history(self.out_dir, self.history)
        plot_curves(self.history, self.out_dir)
        tb.epoch(row)

    def test(self) -> dict[str, Any]:
        """Score the best checkpoint on the test split and write the summary files."""
        best = load_checkpoint(self.out_dir / "best.pt")
        self.model.load_state_dict(best["state_dict"])
        loader = make_loader(self.bundle.test, self.batch_size, False)
        output = evaluate(self.model, loader, self.criterion, self.eval_prep, self.precision)
        report = report_of(output, self.bundle.labels)
        print_report(self.console, report, f"test ({self.bundle.name}, best epoch {self.stopper.best_epoch + 1})")
        write_confusion(report, self.out_dir, f"{self.model_name} on {self.bundle.name}: test top-1 {report.top1:.2%}")
        test = report_dict(report, output.loss)
        save_checkpoint(self.out_dir / "best.pt", {**best, "test_metrics": test})
        summary = self.summary(test)
        write_json(self.out_dir / "summary.json", summary)
        atomic_write_text(self.out_dir / "summary.md", summary_markdown(summary))
        return summary

    def summary(self, test: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "dataset": self.bundle.name,
            "dataset_fingerprint": self.bundle.fingerprint(),
            "test_accuracy": test["top1_accuracy"],
            f"test_top{test['k']}_accuracy": test[f"top{test['k']}_accuracy"],
            "test_macro_f1": test["macro_f1"],
            "best_epoch": self.stopper.best_epoch + 1,
            "best_value": self.stopper.best,
            "monitor": self.config.monitor,
            "epochs": self.config.epochs,
            "epochs_run": len(self.history),
            "stopped_early": self.stopper.should_stop,
            "batch_size": self.batch_size,
            "device": str(self.device),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "augment": dataclasses.asdict(self.augment),
            "augment_reason": self.augment_reason,
            "data": self.bundle.summary_line,
            "input_size": self.bundle.input_size,
            "channels": self.bundle.channels,
            "decode_seconds": self.bundle.decode_seconds,
            "train_seconds": self.train_seconds,
            "checkpoint": "best.pt",
            "test": test,
            "config": self.config.to_dict(),
        }


def _execute(run: Run) -> RunResult | None:
    """Fit, then (rank 0 only) test and summarize; other ranks return None once rank 0 is done."""
    started = time.perf_counter()
    try:
        run.fit()
        if not run.place.is_main:
            return None
        summary = run.test()
        run.console.print(
            f"run finished in {time.perf_counter() - started:.1f} s; report: {run.out_dir / 'summary.md'}"
        )
        return RunResult(run.out_dir, summary)
    finally:
        shutdown(run.place)


def _join(config: TrainConfig, console: Console) -> tuple[Placement, torch.device, Console]:
    """This process's rank and device; ranks other than 0 print nothing (rank 0 speaks for the job)."""
    place = placement_from_env()
    device = init(place, select_device(config.device))
    if not place.is_main:
        console = Console(file=io.StringIO())
    return place, device, console


def train(
    config: TrainConfig, out_dir: Path, console: Console | None = None, overwrite: bool = False, download: bool = False
) -> RunResult | None:
    """Start a new run in ``out_dir`` (refusing to replace an existing run unless ``overwrite``).

    Under torchrun every rank calls this; rank 0 returns the result, the others None.
    """
    place, device, console = _join(config, console or Console())
    out_dir = Path(broadcast(str(out_dir), place))  # rank 0's choice: a default name carries a timestamp
    if place.is_main:
        prepare_run_dir(out_dir, overwrite)
        write_json(out_dir / "config.json", config.to_dict())
    barrier(place)
    run = Run(config, out_dir, console, download, place=place, device=device)
    console.print(f"data: {run.bundle.summary_line}", highlight=False)
    console.print(f"augment: {describe_augment(run.augment)}: {run.augment_reason}", highlight=False)
    console.print(
        f"training [bold]{run.model_name}[/] on [bold]{run.bundle.name}[/] "
        f"({len(run.bundle.train)} train / {len(run.bundle.val)} val / {len(run.bundle.test)} test images, "
        f"{run.bundle.num_classes} classes) on {run.device}, batch {run.batch_size}"
        + (f" × {place.world} ranks" if place.enabled else "")
        + f" → {out_dir}"
    )
    return _execute(run)


def pinned_to_checkpoint(config: TrainConfig, ckpt: dict[str, Any]) -> TrainConfig:
    """The config with what the data decided at the start (size, channels, augmentation) fixed.

    Defaults derived from the data could come out differently if the folder
    changed since, or an older jetfleet derived them otherwise; a resumed run
    must go on with the model's own input shape and the augmentation it started with.
    """
    spec = ckpt.get("preprocess") or {}
    changes: dict[str, Any] = {}
    if config.image_size is None and spec.get("input_size"):
        changes["image_size"] = int(spec["input_size"][0])
    if config.channels is None and spec.get("channels"):
        changes["channels"] = int(spec["channels"])
    if isinstance(ckpt.get("augment"), dict):
        known = {f.name for f in dataclasses.fields(AugmentOptions)}
        changes["augment"] = AugmentOptions(**{k: v for k, v in ckpt["augment"].items() if k in known})
    return dataclasses.replace(config, **changes)


def resume(path: Path, console: Console | None = None, epochs: int | None = None) -> RunResult | None:
    """Continue the run at ``path`` (a run directory or its ``last.pt``), optionally to more epochs.

    Under torchrun every rank reads the checkpoint (the run folder must be
    visible to all of them: one machine, or shared storage).
    """
    ckpt_path = path / "last.pt" if path.is_dir() else path
    ckpt = load_checkpoint(ckpt_path)
    if "optimizer" not in ckpt or "config" not in ckpt:
        raise JetfleetError(f"{ckpt_path} holds weights only, not a resumable training state")
    config = pinned_to_checkpoint(TrainConfig.from_dict(ckpt["config"]), ckpt)
    if epochs is not None:
        config = config.with_epochs(epochs)
    place, device, console = _join(config, console or Console())
    out_dir = ckpt_path.parent
    run = Run(config, out_dir, console, batch_size=int(ckpt["batch_size"]), place=place, device=device)
    run.load_state(ckpt)
    console.print(f"resuming {out_dir} at epoch {run.next_epoch + 1} of {config.epochs}")
    if place.is_main:
        write_json(out_dir / "config.json", config.to_dict())
    return _execute(run)
