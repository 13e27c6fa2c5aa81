"""Classification jobs on the device: accuracy and latency the way trtexec and MLPerf report them.

A job has two phases over one loaded engine:

1. **Accuracy pass**: every input item once, in batches of ``batch_size``
   (items that fail to decode are reported per item and skipped). Top-1,
   top-5, per-class metrics and, on request, per-item predictions.
2. **Timing**: ``warmup`` untimed batches first; then either the accuracy
   pass itself is the timed run (``iterations == 0``: its wall time includes
   decoding, the honest end-to-end figure) or ``iterations`` batches cycle over
   the first few decoded batches (inference only: what ``jetfleet bench``
   asks for at each batch size).

Latency is per batch (``Runner.infer``), throughput is items ÷ wall seconds
of the timed run. Memory is bounded by a few batches plus an N×C confusion
matrix: nothing keeps all logits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Callable  # typing's: subscripted at run time (Progress), on 3.8

import numpy as np
import numpy.typing as npt

from jetfleet.agent.engines.base import Runner, Timing
from jetfleet.common.fleet import ItemError, Prediction
from jetfleet.common.latency import LatencyStats
from jetfleet.common.metrics import ClassMetrics, confusion_matrix, per_class_metrics


@dataclass
class Batch:
    """Normalized inputs with their names and labels (``None`` = unlabelled), plus items that failed."""

    x: npt.NDArray[np.float32]
    names: list[str]
    labels: list[int | None]
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class JobParams:
    batch_size: int = 32  # a common serving batch; bench sweeps its own
    warmup: int = 2  # first calls pay for lazy allocation (CUDA context, ORT arenas)
    iterations: int = 0  # 0 = time the accuracy pass itself
    return_predictions: bool = False  # per-item output can be large; opt in
    cycle_batches: int = 8  # distinct batches the timing loop cycles over


@dataclass
class Measurement:
    """What a job measured, before it is wrapped into a :class:`JobResult`."""

    items: int
    errors: tuple[ItemError, ...]
    has_labels: bool
    top1: float | None
    top5: float | None
    per_class: tuple[ClassMetrics, ...]
    predictions: tuple[Prediction, ...]
    latency: LatencyStats
    host_to_device: LatencyStats | None
    compute: LatencyStats | None
    device_to_host: LatencyStats | None
    throughput: float
    wall_s: float


Progress = Callable[[str, int, int], None]  # (phase, done, total)


class _Scores:
    """Streaming top-1/top-5/confusion over labelled items."""

    def __init__(self, num_classes: int, keep_predictions: bool) -> None:
        self.num_classes = num_classes
        self.k = min(5, num_classes)
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.labelled = self.top1 = self.topk = self.items = 0
        self.keep = keep_predictions
        self.predictions: list[Prediction] = []

    def add(self, logits: npt.NDArray[np.float32], names: list[str], labels: list[int | None]) -> None:
        self.items += len(names)
        pred = logits.argmax(axis=1)
        known = np.array([lbl is not None for lbl in labels], dtype=bool)
        if known.any():
            truth = np.array([lbl for lbl in labels if lbl is not None], dtype=np.int64)
            lk = logits[known]
            self.labelled += int(known.sum())
            self.top1 += int((pred[known] == truth).sum())
            topk = np.argpartition(-lk, self.k - 1, axis=1)[:, : self.k]
            self.topk += int((topk == truth[:, None]).any(axis=1).sum())
            self.cm += confusion_matrix(truth, pred[known], self.num_classes)
        if self.keep:
            probs = _softmax(logits)
            for i, name in enumerate(names):
                self.predictions.append(Prediction(name, int(pred[i]), float(probs[i, pred[i]]), labels[i]))


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _Timer:
    """Collects per-batch timings; the split fields only when every sample has them."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.split: list[tuple[float | None, float | None, float | None]] = []

    def add(self, t: Timing) -> None:
        self.total.append(t.total_ms)
        self.split.append((t.h2d_ms, t.compute_ms, t.d2h_ms))

    def stats(self, index: int) -> LatencyStats | None:
        values = [s[index] for s in self.split]
        if not values or any(v is None for v in values):
            return None
        return LatencyStats.from_ms([v for v in values if v is not None])


def infer_batch(runner: Runner, x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], Timing]:
    """``runner.infer`` over a batch of any size, split at the engine's maximum batch."""
    if x.shape[0] <= runner.max_batch:
        return runner.infer(x)
    outs, timings = [], []
    for start in range(0, x.shape[0], runner.max_batch):
        logits, t = runner.infer(x[start : start + runner.max_batch])
        outs.append(logits)
        timings.append(t)

    def total(attr: str) -> float | None:
        values = [getattr(t, attr) for t in timings]
        return None if any(v is None for v in values) else float(sum(values))

    merged = Timing(sum(t.total_ms for t in timings), total("h2d_ms"), total("compute_ms"), total("d2h_ms"))
    return np.concatenate(outs), merged


def run_job(
    runner: Runner,
    batches: Iterable[Batch],
    total_items: int,
    num_classes: int,
    labels: tuple[str, ...],
    params: JobParams,
    progress: Progress | None = None,
) -> Measurement:
    """Run the accuracy pass and the timing loop described in the module docstring."""
    report = progress or (lambda phase, done, total: None)
    scores = _Scores(num_classes, params.return_predictions)
    timer, errors, kept = _Timer(), [], []
    stream = iter(batches)
    first = _next_nonempty(stream, errors, scores, runner)
    if first is not None:
        report("warmup", 0, params.warmup)
        for _ in range(params.warmup):
            infer_batch(runner, first.x)
    timed_pass = params.iterations == 0
    start = time.perf_counter()
    for batch in _chain(first, stream):
        errors.extend(ItemError(n, r) for n, r in batch.errors)
        if not batch.names:
            continue
        logits, timing = infer_batch(runner, batch.x)
        if timed_pass:
            timer.add(timing)
        scores.add(logits, batch.names, batch.labels)
        if len(kept) < params.cycle_batches:
            kept.append(batch.x)
        report("run", scores.items, total_items)
    wall = time.perf_counter() - start
    items_timed = scores.items
    if not timed_pass and kept:
        wall, items_timed = _timing_loop(runner, kept, params.iterations, timer, report)
    return _measurement(scores, errors, timer, items_timed, wall, labels)


def _next_nonempty(stream: Iterator[Batch], errors: list[ItemError], scores: _Scores, runner: Runner) -> Batch | None:
    """The first batch with items (earlier all-error batches only contribute their errors)."""
    for batch in stream:
        if batch.names:
            return batch
        errors.extend(ItemError(n, r) for n, r in batch.errors)
    return None


def _chain(first: Batch | None, rest: Iterator[Batch]) -> Iterator[Batch]:
    if first is not None:
        yield first
    yield from rest


def _timing_loop(
    runner: Runner, kept: list[npt.NDArray[np.float32]], iterations: int, timer: _Timer, report: Progress
) -> tuple[float, int]:
    items = 0
    start = time.perf_counter()
    for i in range(iterations):
        x = kept[i % len(kept)]
        _, timing = infer_batch(runner, x)
        timer.add(timing)
        items += x.shape[0]
        if i % 16 == 0 or i == iterations - 1:
            report("timing", i + 1, iterations)
    return time.perf_counter() - start, items


def _measurement(
    scores: _Scores, errors: list[ItemError], timer: _Timer, items_timed: int, wall: float, labels: tuple[str, ...]
) -> Measurement:
    has_labels = scores.labelled > 0
    names = list(labels) if len(labels) == scores.num_classes else [str(i) for i in range(scores.num_classes)]
    return Measurement(
        items=scores.items,
        errors=tuple(errors),
        has_labels=has_labels,
        top1=scores.top1 / scores.labelled if has_labels else None,
        top5=scores.topk / scores.labelled if has_labels else None,
        per_class=per_class_metrics(scores.cm, names) if has_labels else (),
        predictions=tuple(scores.predictions),
        latency=LatencyStats.from_ms(timer.total),
        host_to_device=timer.stats(0),
        compute=timer.stats(1),
        device_to_host=timer.stats(2),
        throughput=items_timed / wall if wall > 0 else 0.0,
        wall_s=wall,
    )
