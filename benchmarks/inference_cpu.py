"""CPU inference latency and throughput of one trained model: PyTorch eager against ONNX Runtime FP32, INT8, FP16.

What is measured
    The same weights of ``basic_cnn`` (trained for 3 epochs on the embedded
    ``digits`` dataset into a temporary directory, or read from
    ``--checkpoint``), run four ways in one process:

    - **torch eager**: the checkpoint's model after ``model.eval()``, each call
      inside ``torch.inference_mode()``: what a PyTorch request handler runs.
    - **ORT FP32**: ``export_onnx`` (BatchNorm folded, dynamic batch) in an
      ONNX Runtime CPU session with full graph optimization: the CPU "engine"
      an agent builds.
    - **ORT INT8**: ``quantize_int8`` (static QDQ, symmetric, per-channel
      weights, calibrated on 256 training images).
    - **ORT FP16**: ``convert_fp16``; informational only. FP16 is for GPUs:
      ONNX Runtime's x86 CPU provider has no float16 convolution, so it
      casts the weights back to float32 at load time and runs an FP32 graph
      that is fused less well than the real FP32 one.

    Every variant takes the same normalized float32 numpy array and returns
    numpy logits, so conversions a service would pay are included on both
    sides. For each variant we report (trtexec/MLPerf vocabulary):

    - **batch-1 latency**: wall time of single-image calls (the per-request
      path), as min, mean, median (p50), p90, p95 and p99 in microseconds,
      from ``time.perf_counter_ns`` around each call.
    - **batch-64 throughput**: images ÷ wall time over a run of batch-64 calls
      (the offline / bulk path), in images per second.
    - **ratios vs torch eager**: latency speed-up = eager p50 ÷ variant p50;
      throughput ratio = variant img/s ÷ eager img/s, taken per round and
      then the median over rounds (pairing by round cancels slow drift in
      background load).
    - **top-1 accuracy** of each variant on the digits test set, computed with
      the very callable that was timed: a fast variant that computes something
      else is not faster. Every variant must be within 1 point of eager.

Why
    On a CPU-only machine the agent's engine is an ONNX Runtime session, and
    the point of exporting is that it serves faster than the framework the
    model was trained in. At batch 1 a small CNN does very little arithmetic
    (``basic_cnn`` on 8×8 inputs is ~0.65 M multiply-adds), so per-call
    overhead decides latency: that is what this benchmark exposes.

How it is measured
    - Fairness: torch's intra-op threads and ORT's ``intra_op_num_threads``
      are set to the same number, 1 by default (``--threads N``), for every
      variant and both batch sizes. One thread per request is how a
      per-request service runs, and it keeps OpenMP workers from spinning
      against each other on a small shared machine.
    - Warm-up: every variant runs untimed batch-1 and batch-64 calls first
      (allocator, oneDNN primitive caches, ORT's first-run allocations).
    - Interleaving: the timed work is split into rounds; in each round every
      variant takes its turn (its share of batch-1 calls, then its batch-64
      run) in an order rotated every round, so machine noise falls on all
      variants alike. Python's garbage collector is paused while timing.
    - Inputs are real test images, cycled, prepared before timing.

Target
    ORT FP32 should be at least 3× faster than torch eager at batch 1 (p50).
    The verdict is printed; the exit status is 0 either way unless
    ``--strict`` is given (then a missed target or an accuracy disagreement
    exits 1), because shared machines are noisy.

Run ``.venv/bin/python benchmarks/inference_cpu.py`` (about 20 s on 2 cores,
most of it importing, training and quantizing; the timing itself is ~5 s) or
add ``--quick`` (300 calls per variant, about 15 s).
``benchmarks/README.md`` explains how to read the tables.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.data import load_dataset
from jetfleet.controller.export.onnx_export import export_onnx, ort_session
from jetfleet.controller.export.variants import convert_fp16, quantize_int8
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
from jetfleet.controller.training.config import TrainConfig
from jetfleet.controller.training.trainer import train

TARGET = 3.0  # ORT FP32 batch-1 p50 should be at least this many times faster than torch eager
ACCURACY_TOLERANCE = 0.01  # every variant's top-1 within 1 point of eager (3-4 of digits' 359 test images)
TRAIN_EPOCHS = 3  # enough for ~95% on digits; the weights only need to be real, not the best
DATASET = "digits"
THROUGHPUT_BATCH = 64  # TrainConfig's default batch, a typical bulk-scoring batch
CALIBRATION_IMAGES = 256  # training images used to calibrate INT8
WARMUP_CALLS = 100  # untimed batch-1 calls per variant
WARMUP_BATCHES = 5  # untimed batch-64 calls per variant
NOISY_SPREAD = 1.5  # slowest/fastest round of one variant (p50 or img/s) beyond which the run is flagged
EAGER, FP32, INT8, FP16 = "torch eager", "ORT FP32", "ORT INT8", "ORT FP16"

Images = npt.NDArray[np.float32]
Infer = Callable[[Images], npt.NDArray[np.float32]]  # normalized (N, C, H, W) images → logits


@dataclass(frozen=True)
class Settings:
    """How much to time; ``--quick`` trades precision for time."""

    latency_calls: int  # timed batch-1 calls per variant, spread over the rounds
    throughput_batches: int  # timed batch-64 calls per variant per round
    rounds: int


DEFAULT = Settings(latency_calls=2_000, throughput_batches=20, rounds=10)
QUICK = Settings(latency_calls=300, throughput_batches=5, rounds=5)


@dataclass
class Variant:
    name: str
    infer: Infer
    informational: bool = False  # shown, but not part of any verdict
    latencies_ns: list[int] = field(default_factory=list)  # every timed batch-1 call
    round_p50s_ns: list[float] = field(default_factory=list)  # median batch-1 latency of each round
    rates: list[float] = field(default_factory=list)  # batch-64 images/s of each round
    accuracy: float = float("nan")


@dataclass(frozen=True)
class Latency:
    """Batch-1 latency summary in microseconds."""

    min: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Latency:
        us = np.asarray(samples_ns, dtype=np.float64) / 1_000
        p50, p90, p95, p99 = np.percentile(us, [50, 90, 95, 99])
        return cls(float(us.min()), float(us.mean()), float(p50), float(p90), float(p95), float(p99))


@dataclass(frozen=True)
class Row:
    name: str
    informational: bool
    latency: Latency
    speedup: float  # eager p50 ÷ this p50
    throughput: float  # median batch-64 images/s over rounds
    throughput_low: float
    throughput_high: float
    vs_eager: float  # median over rounds of (this img/s ÷ eager img/s)
    accuracy: float


@dataclass(frozen=True)
class Data:
    test_x: Images
    test_y: npt.NDArray[np.int64]
    calibration: Images


# -- model and data ----------------------------------------------------------------


def normalized(images: torch.Tensor, spec: PreprocessSpec) -> Images:
    """uint8 (N, C, H, W) → float32 ``(x/255 - mean)/std``, as the agent's preprocessing does."""
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return np.ascontiguousarray(((images.float() / 255 - mean) / std).numpy())


def load_data(spec: PreprocessSpec) -> Data:
    bundle = load_dataset(DATASET)
    return Data(
        test_x=normalized(bundle.test.images, spec),
        test_y=bundle.test.targets.numpy(),
        calibration=normalized(bundle.train.images[:CALIBRATION_IMAGES], spec),
    )


def trained_checkpoint(work: Path, console: Console) -> Path:
    """Train ``basic_cnn`` briefly on digits into ``work``; the weights only need to be real."""
    started = time.perf_counter()
    result = train(TrainConfig(epochs=TRAIN_EPOCHS), work / "run", Console(file=io.StringIO()))
    console.print(
        f"trained basic_cnn on {DATASET} for {TRAIN_EPOCHS} epochs in {time.perf_counter() - started:.0f} s "
        f"(test top-1 {result.test_accuracy:.2%})"
    )
    return result.out_dir / "best.pt"


def load_model(path: Path) -> tuple[nn.Module, PreprocessSpec, str]:
    ckpt = load_checkpoint(path)
    if ckpt.get("dataset", DATASET) != DATASET:
        raise JetfleetError(f"{path} was trained on {ckpt['dataset']}; this benchmark scores on {DATASET}")
    return model_from_checkpoint(ckpt), preprocess_of(ckpt), str(ckpt["model"])


def onnx_models(model: nn.Module, spec: PreprocessSpec, calibration: Images, work: Path) -> dict[str, Path]:
    fp32 = export_onnx(model, spec, work / "fp32.onnx")
    return {
        FP32: fp32,
        INT8: quantize_int8(fp32, work / "int8.onnx", calibration),
        FP16: convert_fp16(fp32, work / "fp16.onnx"),
    }


# -- the variants ------------------------------------------------------------------


def eager_infer(model: nn.Module) -> Infer:
    model.eval()

    def infer(x: Images) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return infer


def ort_infer(session: Any) -> Infer:
    name = session.get_inputs()[0].name

    def infer(x: Images) -> npt.NDArray[np.float32]:
        return session.run(None, {name: x})[0]

    return infer


def build_variants(model: nn.Module, paths: dict[str, Path], threads: int) -> list[Variant]:
    torch.set_num_threads(threads)
    variants = [Variant(EAGER, eager_infer(model))]
    for name, path in paths.items():
        variants.append(Variant(name, ort_infer(ort_session(path, threads=threads)), informational=name == FP16))
    return variants


def accuracy(infer: Infer, data: Data) -> float:
    logits = np.concatenate(
        [infer(data.test_x[i : i + THROUGHPUT_BATCH]) for i in range(0, len(data.test_x), THROUGHPUT_BATCH)]
    )
    return float(np.mean(logits.argmax(1) == data.test_y))


# -- timing ------------------------------------------------------------------------


def single_images(images: Images, count: int) -> list[Images]:
    """``count`` contiguous (1, C, H, W) arrays, cycling through ``images``."""
    return [np.ascontiguousarray(images[i % len(images)][None]) for i in range(count)]


def batches(images: Images, count: int, size: int) -> list[Images]:
    """``count`` contiguous (size, C, H, W) arrays, cycling through ``images``."""
    return [np.ascontiguousarray(images[np.arange(i * size, (i + 1) * size) % len(images)]) for i in range(count)]


def time_calls(infer: Infer, inputs: list[Images]) -> list[int]:
    """Nanoseconds of each call."""
    samples = []
    for x in inputs:
        start = time.perf_counter_ns()
        infer(x)
        samples.append(time.perf_counter_ns() - start)
    return samples


def time_throughput(infer: Infer, inputs: list[Images]) -> float:
    """Images per second over the whole run of calls."""
    start = time.perf_counter_ns()
    for x in inputs:
        infer(x)
    elapsed = time.perf_counter_ns() - start
    return sum(len(x) for x in inputs) / (elapsed / 1e9)


def warm_up(variants: list[Variant], singles: list[Images], bulk: list[Images]) -> None:
    for variant in variants:
        time_calls(variant.infer, singles[:WARMUP_CALLS])
        time_throughput(variant.infer, bulk[:WARMUP_BATCHES])


def measure(variants: list[Variant], settings: Settings, images: Images) -> None:
    """Warm up, then ``settings.rounds`` rounds in which each variant takes a turn, order rotated."""
    per_round = max(1, settings.latency_calls // settings.rounds)
    singles = single_images(images, per_round)
    bulk = batches(images, max(settings.throughput_batches, WARMUP_BATCHES), THROUGHPUT_BATCH)
    warm_up(variants, singles, bulk)
    gc.collect()
    gc.disable()
    try:
        for r in range(settings.rounds):
            shift = r % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                samples = time_calls(variant.infer, singles)
                variant.latencies_ns.extend(samples)
                variant.round_p50s_ns.append(statistics.median(samples))
                variant.rates.append(time_throughput(variant.infer, bulk[: settings.throughput_batches]))
    finally:
        gc.enable()


def rows_of(variants: list[Variant]) -> list[Row]:
    eager = next(v for v in variants if v.name == EAGER)
    eager_p50 = Latency.of(eager.latencies_ns).p50
    rows = []
    for v in variants:
        latency = Latency.of(v.latencies_ns)
        paired = [rate / base for rate, base in zip(v.rates, eager.rates, strict=True)]
        rows.append(
            Row(
                name=v.name,
                informational=v.informational,
                latency=latency,
                speedup=eager_p50 / latency.p50,
                throughput=statistics.median(v.rates),
                throughput_low=min(v.rates),
                throughput_high=max(v.rates),
                vs_eager=statistics.median(paired),
                accuracy=v.accuracy,
            )
        )
    return rows


# -- report ------------------------------------------------------------------------


INFO_NOTE = "* informational, not part of any verdict"


def label(row: Row) -> str:
    return f"{row.name}*" if row.informational else row.name


def micros(value: float) -> str:
    """Three significant digits or so, narrow enough for an 80-column table."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def style_of(row: Row) -> str | None:
    return "bold" if row.name == FP32 else ("dim" if row.informational else None)


def latency_table(rows: list[Row], model_name: str, calls: int) -> Table:
    table = Table(title=f"{model_name} batch-1 latency, µs over {calls:,} calls each", caption=INFO_NOTE)
    table.add_column("variant")
    for name in ("min", "mean", "p50", "p90", "p95", "p99"):
        table.add_column(name, justify="right")
    table.add_column("vs eager", justify="right")  # speed-up: eager p50 ÷ this p50
    for row in rows:
        lat = row.latency
        table.add_row(
            label(row),
            *(micros(v) for v in (lat.min, lat.mean, lat.p50, lat.p90, lat.p95, lat.p99)),
            f"{row.speedup:.2f}×",
            style=style_of(row),
        )
    return table


def throughput_table(rows: list[Row], model_name: str, rounds: int) -> Table:
    table = Table(
        title=f"{model_name} batch-{THROUGHPUT_BATCH} throughput ({rounds} rounds), {DATASET} test top-1",
        caption=INFO_NOTE,
    )
    table.add_column("variant")
    table.add_column("median img/s", justify="right")
    table.add_column("min–max", justify="right")
    table.add_column("vs eager", justify="right")  # median over rounds of (this ÷ eager in that round)
    table.add_column("top-1", justify="right")
    table.add_column("Δ vs eager", justify="right")
    eager_acc = next(r.accuracy for r in rows if r.name == EAGER)
    for row in rows:
        table.add_row(
            label(row),
            f"{row.throughput:,.0f}",
            f"{row.throughput_low:,.0f}–{row.throughput_high:,.0f}",
            f"{row.vs_eager:.2f}×",
            f"{row.accuracy:.2%}",
            "" if row.name == EAGER else f"{(row.accuracy - eager_acc) * 100:+.1f} pt",
            style=style_of(row),
        )
    return table


def verdicts(console: Console, rows: list[Row]) -> bool:
    """Print the latency target and the accuracy agreement; True when both hold."""
    fp32 = next(r for r in rows if r.name == FP32)
    eager_acc = next(r.accuracy for r in rows if r.name == EAGER)
    fast = fp32.speedup >= TARGET
    mark = "[green]PASS[/]" if fast else "[red]FAIL[/]"
    console.print(
        f"latency: ORT FP32 p50 is {fp32.speedup:.2f}× faster than torch eager (target ≥ {TARGET:.1f}×) {mark}"
    )
    off = [r for r in rows if abs(r.accuracy - eager_acc) > ACCURACY_TOLERANCE + 1e-9]
    if off:
        detail = ", ".join(f"{r.name} {(r.accuracy - eager_acc) * 100:+.1f} pt" for r in off)
        console.print(f"accuracy: [red]FAIL[/] {detail} vs eager (tolerance ±{ACCURACY_TOLERANCE * 100:.0f} pt)")
    else:
        console.print(f"accuracy: every variant within ±{ACCURACY_TOLERANCE * 100:.0f} pt of eager [green]PASS[/]")
    return fast and not off


def noise_note(console: Console, variants: list[Variant]) -> None:
    """Say so when one variant's rounds differ a lot: the machine was busy and the ratios are suspect."""
    spreads = [(max(v.round_p50s_ns) / min(v.round_p50s_ns), v.name, "batch-1 p50") for v in variants]
    spreads += [(max(v.rates) / min(v.rates), v.name, f"batch-{THROUGHPUT_BATCH} img/s") for v in variants]
    spread, name, what = max(spreads)
    if spread > NOISY_SPREAD:
        console.print(
            f"[yellow]noisy: {name}'s per-round {what} ranged {spread:.1f}× between rounds; something else was "
            "using the CPU. Rerun on an idle machine before trusting the ratios.[/]"
        )


def header(console: Console, model_name: str, source: str, threads: int, settings: Settings) -> None:
    console.print(f"{model_name} from {source}; {os.cpu_count()} CPUs")
    console.print(f"torch {torch.__version__}, onnxruntime {ort.__version__}")
    console.print(
        f"threads: torch {torch.get_num_threads()}, ORT intra-op {threads} (every variant, both batch sizes; --threads N)"
    )
    console.print(f"{settings.rounds} interleaved rounds, order rotated each round; GC paused while timing")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 batch-1 calls per variant instead of 2,000")
    parser.add_argument(
        "--strict", action="store_true", help=f"exit 1 if ORT FP32 is under {TARGET}× eager or accuracies disagree"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and ORT intra-op threads, for every variant (default 1)"
    )
    parser.add_argument("--checkpoint", type=Path, help="a basic_cnn best.pt trained on digits (default: train one)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def run(args: argparse.Namespace, work: Path, console: Console) -> bool:
    settings = QUICK if args.quick else DEFAULT
    checkpoint = args.checkpoint or trained_checkpoint(work, console)
    model, spec, model_name = load_model(checkpoint)
    data = load_data(spec)
    started = time.perf_counter()
    paths = onnx_models(model, spec, data.calibration, work)
    console.print(f"exported FP32, quantized INT8, converted FP16 in {time.perf_counter() - started:.0f} s")
    variants = build_variants(model, paths, args.threads)
    header(console, model_name, str(args.checkpoint or "a fresh 3-epoch run"), args.threads, settings)
    for variant in variants:
        variant.accuracy = accuracy(variant.infer, data)
    started = time.perf_counter()
    measure(variants, settings, data.test_x)
    rows = rows_of(variants)
    calls = len(variants[0].latencies_ns)
    console.print(latency_table(rows, model_name, calls))
    console.print(throughput_table(rows, model_name, settings.rounds))
    ok = verdicts(console, rows)
    noise_note(console, variants)
    console.print(f"[dim]timing took {time.perf_counter() - started:.0f} s[/]")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-") as work:
        try:
            ok = run(args, Path(work), console)
        except JetfleetError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 2
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
