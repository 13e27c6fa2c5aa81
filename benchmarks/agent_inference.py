"""The agent's job runner against a bare ONNX Runtime loop on the same model: the runner's overhead.

What is measured
    ``basic_cnn`` (random weights; latency does not depend on them) exported
    to ONNX at CIFAR's 3×32×32, built into the agent's ONNX Runtime "engine"
    (the optimized model it caches) and loaded once. Two loops run on that
    same session, interleaved round by round:

    - **bare ORT**: ``session.run`` on a preloaded float32 batch, timed with
      ``perf_counter`` around each call: the floor.
    - **agent runner**: ``jetfleet.agent.jobs.run_job`` in timing mode
      (``iterations`` batches cycling over preloaded batches, ``warmup``
      untimed), exactly what a ``RunJob`` with ``iterations > 0`` executes on a
      device, including the shape checks, the ``Timing`` records and the
      accuracy accounting of the first pass.

    Reported per batch size (1, 8, 32): mean per-batch latency of each in
    milliseconds and the overhead = runner mean ÷ bare mean − 1, the median
    over rounds. One intra-op thread for both (a fair, quiet comparison on a
    shared 2-core machine).

Target (issue 4): overhead at most 10%. Usage:

    .venv/bin/python benchmarks/agent_inference.py [--quick] [--rounds N] [--strict]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jetfleet.agent.engines.onnxruntime import OnnxRuntimeBackend
from jetfleet.agent.jobs import Batch, JobParams, run_job
from jetfleet.common.preprocess import PreprocessSpec

TARGET = 0.10
SPEC = PreprocessSpec((32, 32), 3, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), tuple(str(i) for i in range(10)))


def build_engine(work: Path) -> OnnxRuntimeBackend:
    import torch

    from jetfleet.controller.export.onnx_export import export_onnx
    from jetfleet.controller.models import create_model

    torch.manual_seed(0)
    model = create_model("basic_cnn", num_classes=10, in_channels=3).eval()
    export_onnx(model, SPEC, work / "model.onnx")
    backend = OnnxRuntimeBackend(threads=1)
    backend.build(work / "model.onnx", "fp32", work / "engine", lambda f, m: None)
    return backend


def bare(session: object, x: np.ndarray, iterations: int) -> float:
    """Mean milliseconds per ``session.run`` call."""
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    out = session.get_outputs()[0].name  # type: ignore[attr-defined]
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        session.run([out], {name: x})  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return 1000 * statistics.fmean(times)


def runner_loop(runner: object, x: np.ndarray, iterations: int) -> float:
    """Mean milliseconds per batch as the agent's job runner measures it."""
    labels = list(np.arange(len(x)) % 10)
    batches = [Batch(x, [f"i{i}" for i in range(len(x))], labels)]
    params = JobParams(batch_size=len(x), warmup=0, iterations=iterations)
    measured = run_job(runner, iter(batches), len(x), 10, SPEC.labels, params)  # type: ignore[arg-type]
    return 1000 * measured.wall_s / iterations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    opts = parser.parse_args()
    rounds = 3 if opts.quick else opts.rounds
    with tempfile.TemporaryDirectory() as tmp:
        backend = build_engine(Path(tmp))
        runner = backend.load(Path(tmp) / "engine")
        rng = np.random.default_rng(0)
        rows = []
        for batch in (1, 8, 32):
            x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
            iterations = max(20, (400 if not opts.quick else 150) // batch)
            bare(runner.session, x, 10)  # warm-up both paths
            runner_loop(runner, x, 10)
            pairs = [(bare(runner.session, x, iterations), runner_loop(runner, x, iterations)) for _ in range(rounds)]
            overhead = statistics.median(r / b - 1 for b, r in pairs)
            rows.append(
                (batch, statistics.median(b for b, _ in pairs), statistics.median(r for _, r in pairs), overhead)
            )
    print(f"agent job runner vs bare ONNX Runtime, basic_cnn 3×32×32, 1 thread, median of {rounds} rounds")
    print(f"{'batch':>5}{'bare ms':>10}{'runner ms':>11}{'overhead':>10}")
    for batch, b, r, o in rows:
        print(f"{batch:>5}{b:>10.3f}{r:>11.3f}{o:>+9.1%}")
    worst = max(o for *_, o in rows)
    ok = worst <= TARGET
    print(f"worst overhead {worst:+.1%} (target <= {TARGET:.0%}): {'MET' if ok else 'MISSED'}")
    return 0 if ok or not opts.strict else 1


if __name__ == "__main__":
    sys.exit(main())
