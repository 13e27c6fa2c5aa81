"""Training throughput of jetfleet's real loop against a bare-tensor loop and a naive per-sample loader.

What is measured
    Images per second of one training epoch of ``basic_cnn`` (Adam, cross-entropy,
    batch 64: ``TrainConfig``'s defaults), three ways, in one process:

    - **bare**: the floor every loop pays. The whole split is normalized to
      float once, up front, and sits on the device; an epoch slices a
      permutation and does forward, loss, backward, optimizer step, nothing else.
    - **jetfleet**: exactly what ``Run.run_epoch`` does per epoch:
      ``make_loader`` (uint8 batches by slicing a permutation), ``BatchPrep``
      (to device, scale, normalize; augment where asked), ``train_one_epoch``
      with the run's schedule, precision and progress callback. Its validation
      pass is not training throughput and is left out, as in the trainer's
      own ``images_per_second``.
    - **naive**: the textbook PyTorch recipe: a ``Dataset`` whose
      ``__getitem__`` converts and normalizes one sample, a ``DataLoader``
      with ``num_workers=0`` and the default collate, then the bare loop's
      step. This is what ``TensorSplit`` + ``BatchPrep`` were built to avoid.

Why three workloads
    ``digits-folder`` is what most users bring: the embedded digits written
    as 28×28 grayscale PNGs in ``train/<class>/`` and ``val/<class>/``
    (``controller/data/samples.py``), loaded as ``folder:PATH`` with no
    flags, so its size, channels and augmentation are the data-derived
    defaults. The time to decode it (once, cold cache) and to load it again
    (warm cache) is printed apart from the epochs. On it the benchmark also
    trains for real, ``jetfleet train``'s run with no flags against a plain
    40-line PyTorch loop (torchvision ``ImageFolder``, ``DataLoader`` with 2
    workers, Adam, 10 epochs, the same ``basic_cnn``) and prints both
    accuracies on ``val/`` and both images/s: the target is to be within 0.5
    point of the plain loop and at least 0.9× its throughput.

    ``digits`` (8×8 grayscale, 1,257 training images) is so small that the
    per-batch Python and dispatcher overhead is a large share of each step,
    which is the worst case for any loop with extra bookkeeping. A synthetic
    CIFAR-shaped split (random uint8 3×32×32, 10 classes) makes the model do
    real work per batch, as it does on the datasets people train for a
    fleet. On it we also time the jetfleet loop with CIFAR-10's default
    augmentation (random crop with 4-pixel padding, horizontal flip); that row
    is informational: augmentation is work the bare loop does not do.

How it is measured
    Every variant of a workload starts from the same initial weights (one
    model built under ``torch.manual_seed``, deep-copied) and keeps its own
    model and optimizer across epochs, as training does. Each variant runs
    one untimed warm-up epoch (allocator, oneDNN primitives, Adam state),
    then the variants take turns, one epoch each per round, with the order
    rotated every round, so machine noise falls on all of them alike. We
    report the median images/s over the timed rounds; "vs bare" is the
    median over rounds of (variant ÷ bare in the same round), which cancels
    slow drift in background load better than a ratio of medians.

Target
    The jetfleet loop should keep at least 0.9 of the bare loop's throughput
    on the folder workload and 0.85 on the other two (8×8 digits are so
    small that fixed per-batch costs weigh more). The verdict is printed; the exit status is
    0 either way unless ``--strict`` is given, because shared 2-core machines
    are noisy.

Run ``.venv/bin/python benchmarks/train_throughput.py`` (about a minute on 2
idle cores) or add ``--quick`` (about 20 s: fewer rounds, a smaller split).
``benchmarks/README.md`` explains how to read the table.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jetfleet.controller.data import (
    AugmentConfig,
    BatchAugment,
    DataOptions,
    epoch_generator,
    load_dataset,
    make_loader,
)
from jetfleet.controller.data.datasets import CIFAR10_MEAN, CIFAR10_STD
from jetfleet.controller.data.samples import write_digits_folder
from jetfleet.controller.data.splits import TensorSplit
from jetfleet.controller.models import create_model
from jetfleet.controller.training.config import LossConfig, OptimConfig, ScheduleConfig
from jetfleet.controller.training.engine import BatchPrep, Precision, select_device, train_one_epoch
from jetfleet.controller.training.losses import build_loss
from jetfleet.controller.training.optim import Schedule, build_optimizer
from jetfleet.controller.training.progress import TrainProgress

TARGET = 0.85  # the jetfleet loop keeps at least this share of the bare loop's images/s
FOLDER_TARGET = 0.9  # on the folder workload, the floor
ACCURACY_MARGIN = 0.005  # jetfleet's default run is within half a point of the plain loop
FOLDER_SIZE = 28  # the digits folder: 28×28 grayscale PNGs, like scanned digits
ACCURACY_EPOCHS = 10
BATCH_SIZE = 64  # TrainConfig's default
SEED = 42  # TrainConfig's default
NUM_CLASSES = 10
MODEL = "basic_cnn"
BARE, JETFLEET, JETFLEET_AUG, NAIVE = "bare tensors", "jetfleet loop", "jetfleet + augment", "naive DataLoader"
NOISY_SPREAD = 1.5  # max/min images/s of one variant beyond which the run is flagged as disturbed
CIFAR_AUGMENT = AugmentConfig(crop_padding=4, hflip=True)  # CIFAR-10's default_augment


@dataclass(frozen=True)
class Settings:
    """How much to run; ``--quick`` trades precision for time."""

    digits_rounds: int  # timed epochs per variant on digits (an epoch is ~20 batches)
    folder_rounds: int  # timed epochs per variant on the digits folder
    accuracy_epochs: int  # epochs of the jetfleet-vs-plain accuracy comparison
    cifar_rounds: int  # timed epochs per variant on the CIFAR-shaped split
    cifar_images: int  # size of the synthetic CIFAR-shaped training split


DEFAULT = Settings(
    digits_rounds=9, folder_rounds=5, accuracy_epochs=ACCURACY_EPOCHS, cifar_rounds=5, cifar_images=1_280
)
QUICK = Settings(digits_rounds=3, folder_rounds=2, accuracy_epochs=3, cifar_rounds=2, cifar_images=320)


@dataclass(frozen=True)
class Workload:
    name: str
    split: TensorSplit  # uint8 (N, C, H, W) images, int64 targets
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: AugmentConfig | None  # also time the jetfleet loop with this augmentation

    @property
    def channels(self) -> int:
        return int(self.split.images.shape[1])

    def describe(self) -> str:
        _, c, h, w = self.split.images.shape
        return f"{self.name}: {len(self.split):,} images {c}×{h}×{w}"


EpochFn = Callable[[int], int]  # run epoch ``e`` of training, return the number of images seen


@dataclass
class Variant:
    name: str
    run_epoch: EpochFn
    rates: list[float] = field(default_factory=list)  # images/s of each timed epoch


@dataclass(frozen=True)
class Row:
    workload: str
    variant: str
    median: float
    low: float
    high: float
    vs_bare: float


# -- workloads -------------------------------------------------------------------


def digits_workload() -> Workload:
    bundle = load_dataset("digits")
    assert isinstance(bundle.train, TensorSplit)
    return Workload("digits", bundle.train, bundle.mean, bundle.std, None)


@dataclass(frozen=True)
class FolderLoad:
    """Seconds to load the digits folder: decoding every PNG (cold cache), then from the cache (warm)."""

    images: int
    cold_s: float
    warm_s: float


def folder_workload(root: Path) -> tuple[Workload, FolderLoad, AugmentConfig]:
    """The embedded digits as 28×28 grayscale PNG folders, loaded as ``folder:`` with no flags."""
    write_digits_folder(root, FOLDER_SIZE)
    name, opts = f"folder:{root}", DataOptions(log=lambda _line: None)
    started = time.perf_counter()
    bundle = load_dataset(name, opts)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    load_dataset(name, opts)
    warm = time.perf_counter() - started
    images = len(bundle.train) + len(bundle.val) + len(bundle.test)
    work = Workload("digits-folder", bundle.train, bundle.mean, bundle.std, bundle.default_augment)
    return work, FolderLoad(images, cold, warm), bundle.default_augment


def cifar_shaped_workload(images: int) -> Workload:
    """Random uint8 3×32×32 images: CIFAR-10's shape and normalization, none of its download."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (images,), generator=gen)
    return Workload("cifar-shaped", TensorSplit(x, y), CIFAR10_MEAN, CIFAR10_STD, CIFAR_AUGMENT)


# -- the three loops -------------------------------------------------------------


def fresh_copy(initial: nn.Module, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = copy.deepcopy(initial).to(device)
    return model, build_optimizer(model, OptimConfig())


def sgd_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> None:
    """Forward, loss, backward, step: the work every variant has to do."""
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bare_variant(work: Workload, initial: nn.Module, device: torch.device) -> Variant:
    """Pre-normalized float data on the device; an epoch slices a permutation."""
    model, optimizer = fresh_copy(initial, device)
    criterion = nn.CrossEntropyLoss()
    mean = torch.tensor(work.mean).view(1, -1, 1, 1)
    std = torch.tensor(work.std).view(1, -1, 1, 1)
    images = ((work.split.images.float() / 255.0 - mean) / std).to(device)
    targets = work.split.targets.to(device)
    n = len(targets)

    def run_epoch(epoch: int) -> int:
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 100_003 + epoch)).to(device)
        for start in range(0, n, BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            sgd_step(model, optimizer, criterion, images[idx], targets[idx])
        return n

    return Variant(BARE, run_epoch)


def jetfleet_variant(
    name: str, work: Workload, initial: nn.Module, device: torch.device, augment: AugmentConfig | None
) -> Variant:
    """What ``Run.__init__`` builds and ``Run.run_epoch`` does, minus the validation pass."""
    model, optimizer = fresh_copy(initial, device)
    loader = make_loader(work.split, BATCH_SIZE, shuffle=True, seed=SEED, pin_memory=device.type == "cuda")
    prep = BatchPrep(device, work.mean, work.std, BatchAugment(augment) if augment is not None else None)
    criterion = build_loss(LossConfig())
    schedule = Schedule(optimizer, ScheduleConfig(), epochs=100, steps_per_epoch=len(loader), maximize=True)
    precision = Precision.for_device(device, amp=True)
    # The trainer always passes its progress bar's callback; off a terminal it
    # renders nothing but still runs per batch, as in CI and logged runs.
    progress = TrainProgress(Console(file=io.StringIO()), epochs=100)

    def run_epoch(epoch: int) -> int:
        torch.manual_seed(SEED * 1_000_003 + epoch)
        loader.set_epoch(epoch)
        gen = epoch_generator(SEED, epoch, device)
        progress.start_epoch(epoch, len(loader))
        stats = train_one_epoch(model, loader, criterion, optimizer, prep, gen, precision, schedule, 1, progress.batch)
        return stats.images

    return Variant(name, run_epoch)


class PerSampleDataset(Dataset[tuple[torch.Tensor, int]]):
    """The textbook ``Dataset``: one uint8 sample converted and normalized per ``__getitem__``."""

    def __init__(self, work: Workload) -> None:
        self.images = work.split.images.numpy()
        self.targets = work.split.targets.numpy()
        self.mean = torch.tensor(work.mean).view(-1, 1, 1)
        self.std = torch.tensor(work.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.ascontiguousarray(self.images[index])).float().div(255.0)
        return (x - self.mean) / self.std, int(self.targets[index])


def naive_variant(work: Workload, initial: nn.Module, device: torch.device) -> Variant:
    """``DataLoader`` over :class:`PerSampleDataset`, ``num_workers=0``, default collate."""
    model, optimizer = fresh_copy(initial, device)
    criterion = nn.CrossEntropyLoss()
    dataset = PerSampleDataset(work)

    def run_epoch(epoch: int) -> int:
        model.train()
        gen = torch.Generator().manual_seed(SEED * 100_003 + epoch)
        loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0, generator=gen)
        seen = 0
        for x, y in loader:
            sgd_step(model, optimizer, criterion, x.to(device), y.to(device))
            seen += len(y)
        return seen

    return Variant(NAIVE, run_epoch)


def variants_for(work: Workload, device: torch.device) -> list[Variant]:
    torch.manual_seed(SEED)
    initial = create_model(MODEL, num_classes=NUM_CLASSES, in_channels=work.channels)
    variants = [
        bare_variant(work, initial, device),
        jetfleet_variant(JETFLEET, work, initial, device, None),
        naive_variant(work, initial, device),
    ]
    if work.augment is not None:
        variants.append(jetfleet_variant(JETFLEET_AUG, work, initial, device, work.augment))
    return variants


# -- timing ----------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed_epoch(variant: Variant, epoch: int, device: torch.device) -> float:
    """Images per second of one epoch, wall clock, device work included."""
    synchronize(device)
    start = time.perf_counter()
    images = variant.run_epoch(epoch)
    synchronize(device)
    return images / (time.perf_counter() - start)


def measure(variants: list[Variant], rounds: int, device: torch.device) -> None:
    """One untimed warm-up epoch each, then ``rounds`` rounds of one epoch each, order rotated."""
    for variant in variants:
        variant.run_epoch(0)
    for r in range(rounds):
        shift = r % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.rates.append(timed_epoch(variant, r + 1, device))


def rows_of(workload: str, variants: list[Variant]) -> list[Row]:
    bare = next(v for v in variants if v.name == BARE)
    rows = []
    for v in variants:
        paired = [rate / base for rate, base in zip(v.rates, bare.rates, strict=True)]
        rows.append(
            Row(workload, v.name, statistics.median(v.rates), min(v.rates), max(v.rates), statistics.median(paired))
        )
    return rows


# -- report ----------------------------------------------------------------------


def results_table(rows: list[Row]) -> Table:
    table = Table(title=f"{MODEL} training, batch {BATCH_SIZE}: images/s over timed epochs")
    table.add_column("workload")
    table.add_column("variant")
    table.add_column("median img/s", justify="right")
    table.add_column("min–max", justify="right")
    table.add_column("vs bare", justify="right")
    for i, row in enumerate(rows):
        new_workload = i == 0 or rows[i - 1].workload != row.workload
        style = "bold" if row.variant == JETFLEET else None
        table.add_row(
            row.workload if new_workload else "",
            row.variant,
            f"{row.median:,.0f}",
            f"{row.low:,.0f}–{row.high:,.0f}",
            f"{row.vs_bare:.2f}",
            style=style,
            end_section=i + 1 < len(rows) and rows[i + 1].workload != row.workload,
        )
    return table


def mark(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[red]FAIL[/]"


def verdicts(console: Console, rows: list[Row]) -> bool:
    """Print the target check and the gain over the naive loader; True when every workload passes."""
    ok = True
    for workload in dict.fromkeys(r.workload for r in rows):
        by_name = {r.variant: r for r in rows if r.workload == workload}
        real, naive = by_name[JETFLEET], by_name[NAIVE]
        target = FOLDER_TARGET if workload == "digits-folder" else TARGET
        passed = real.vs_bare >= target
        ok &= passed
        console.print(
            f"{workload}: jetfleet loop {real.vs_bare:.2f}× bare (target ≥ {target:.2f}) {mark(passed)}, "
            f"{real.median / naive.median:.2f}× naive"
        )
    return ok


# -- the folder workload end to end: jetfleet train with no flags vs a plain PyTorch loop ----


@dataclass(frozen=True)
class Trained:
    accuracy: float  # on val/, the folder's held-out split
    images_per_second: float  # median over the epochs after the first


def plain_pytorch_loop(root: Path, epochs: int, device: torch.device) -> Trained:
    """The 40-line loop a user writes first: ImageFolder, ToTensor, Normalize, DataLoader, Adam."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set, val_set = datasets.ImageFolder(root / "train", tf), datasets.ImageFolder(root / "val", tf)
    torch.manual_seed(SEED)
    model = create_model(MODEL, num_classes=len(train_set.classes), in_channels=1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, num_workers=2)
    rates = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            sgd_step(model, optimizer, criterion, x.to(device), y.to(device))
        synchronize(device)
        rates.append(len(train_set) / (time.perf_counter() - start))
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(val_set, batch_size=256, num_workers=2):
            correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    return Trained(correct / len(val_set), statistics.median(rates[1:] or rates))


def jetfleet_default_run(root: Path, epochs: int, device: torch.device, out: Path) -> Trained:
    """``jetfleet train --dataset folder:ROOT --epochs N`` and nothing else (registration aside)."""
    from jetfleet.controller.training.config import TrainConfig
    from jetfleet.controller.training.trainer import train

    config = TrainConfig(dataset=f"folder:{root}", epochs=epochs, device=str(device))
    result = train(config, out, Console(file=io.StringIO()))
    rates = [row["images_per_second"] for row in json.loads((out / "history.json").read_text())]
    return Trained(result.test_accuracy, statistics.median(rates[1:] or rates))


def accuracy_verdict(console: Console, ours: Trained, plain: Trained, epochs: int) -> bool:
    close = ours.accuracy >= plain.accuracy - ACCURACY_MARGIN
    fast = ours.images_per_second >= FOLDER_TARGET * plain.images_per_second
    if epochs != ACCURACY_EPOCHS:  # --quick: too few epochs for either loop to converge
        console.print(
            f"digits-folder, {epochs} epochs (informational; the target is set at {ACCURACY_EPOCHS}): jetfleet "
            f"{ours.accuracy:.2%} vs plain loop {plain.accuracy:.2%}; "
            f"{ours.images_per_second:,.0f} vs {plain.images_per_second:,.0f} img/s after the first epoch"
        )
        return True
    console.print(
        f"digits-folder, {epochs} epochs, no flags: jetfleet {ours.accuracy:.2%} vs plain loop {plain.accuracy:.2%} "
        f"(target ≥ plain - {ACCURACY_MARGIN * 100:.1f} pt) {mark(close)}; "
        f"{ours.images_per_second:,.0f} vs {plain.images_per_second:,.0f} img/s after the first epoch = "
        f"{ours.images_per_second / plain.images_per_second:.2f}× (target ≥ {FOLDER_TARGET}) {mark(fast)}"
    )
    return close and fast


def noise_note(console: Console, rows: list[Row]) -> None:
    """Say so when epochs of one variant differ a lot: the machine was busy and the ratios are suspect."""
    worst = max(rows, key=lambda r: r.high / r.low)
    spread = worst.high / worst.low
    if spread > NOISY_SPREAD:
        console.print(
            f"[yellow]noisy: {worst.workload} / {worst.variant} ranged {spread:.1f}× between its fastest and "
            "slowest epoch; something else was using the CPU. Rerun on an idle machine before trusting the ratios.[/]"
        )


def header(console: Console, device: torch.device, settings: Settings, workloads: list[Workload]) -> None:
    console.print(
        f"torch {torch.__version__} on {device}, threads: {torch.get_num_threads()}; "
        f"rounds: digits {settings.digits_rounds}, digits-folder {settings.folder_rounds}, "
        f"cifar-shaped {settings.cifar_rounds}"
    )
    for work in workloads:
        console.print(f"  {work.describe()}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a smaller split (~20 s)")
    parser.add_argument("--strict", action="store_true", help=f"exit 1 if the jetfleet loop is below {TARGET} of bare")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU) or a torch device name")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else DEFAULT
    device = select_device(args.device)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-") as tmp:
        os.environ["JETFLEET_HOME"] = tmp  # the decoded cache and the run stay out of the user's home
        root = Path(tmp) / "digits-folder"
        folder, load, _ = folder_workload(root)
        workloads = [digits_workload(), folder, cifar_shaped_workload(settings.cifar_images)]
        header(console, device, settings, workloads)
        console.print(
            f"digits-folder: decoding {load.images:,} PNGs took {load.cold_s:.2f} s (cold cache, 2 processes); "
            f"loading again from the cache {load.warm_s:.2f} s"
        )
        started = time.perf_counter()
        rows: list[Row] = []
        rounds = (settings.digits_rounds, settings.folder_rounds, settings.cifar_rounds)
        for work, n in zip(workloads, rounds, strict=True):
            variants = variants_for(work, device)
            measure(variants, n, device)
            rows.extend(rows_of(work.name, variants))
        console.print(results_table(rows))
        ok = verdicts(console, rows)
        ours = jetfleet_default_run(root, settings.accuracy_epochs, device, Path(tmp) / "run")
        plain = plain_pytorch_loop(root, settings.accuracy_epochs, device)
        ok &= accuracy_verdict(console, ours, plain, settings.accuracy_epochs)
    noise_note(console, rows)
    console.print(f"[dim]took {time.perf_counter() - started:.0f} s[/]")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
