"""Data-parallel training throughput: 1 process against 2 torchrun processes (gloo on CPU, NCCL on CUDA).

What is measured
    ``jetfleet train`` on the embedded digits written as a 28×28 grayscale
    folder (the same workload as ``train_throughput.py``), ``--epochs N``,
    run three ways as real processes through the real CLI:

    - **1 process**, torch's default intra-op threads (all cores);
    - **1 process, 1 thread** (``OMP_NUM_THREADS=1``), the share each DDP rank gets;
    - **2 processes** (``--nproc-per-node 2``: torch's elastic launcher, DDP), 1 thread each
      (torchrun's own default).

    Images/s is the run's own figure (all ranks' images ÷ the epoch's wall
    time), median over the epochs after the first. Scaling efficiency is
    2-process images/s ÷ (2 × 1-process images/s).

How to read it
    On a 2-core machine two processes share the same two cores that one
    process already used through its intra-op threads, so there is no spare
    hardware to scale onto: an efficiency near 0.5 means "no faster", and
    anything above it is the gain from splitting work by batch instead of
    by kernel, minus the gradient all-reduce each step. The 1-thread row
    shows what each rank starts from. On a machine with a GPU per rank (or
    many idle cores) the same command scales for real; run it there with
    ``--device cuda`` for NCCL.

Run ``.venv/bin/python benchmarks/train_ddp.py`` (about 1.5 min on 2 cores) or ``--epochs 3`` (about 40 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

JETFLEET = Path(sys.executable).parent / "jetfleet"


@dataclass(frozen=True)
class Result:
    name: str
    images_per_second: float
    accuracy: float


def run(name: str, folder: Path, out: Path, epochs: int, device: str, extra: list[str], env: dict[str, str]) -> Result:
    args = [str(JETFLEET), "train", "--dataset", f"folder:{folder}", "--epochs", str(epochs), "--device", device]
    args += ["--no-register", "--out", str(out), *extra]
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env}, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    history = json.loads((out / "history.json").read_text())
    rates = [row["images_per_second"] for row in history]
    summary = json.loads((out / "summary.json").read_text())
    return Result(name, statistics.median(rates[1:] or rates), summary["test_accuracy"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    args = parser.parse_args(argv)
    from jetfleet.controller.data.samples import write_digits_folder

    with tempfile.TemporaryDirectory(prefix="jetfleet-ddp-") as tmp:
        env = {"JETFLEET_HOME": tmp}
        folder = write_digits_folder(Path(tmp) / "digits", 28)
        results = [
            run("1 process", folder, Path(tmp) / "one", args.epochs, args.device, [], env),
            run(
                "1 process, 1 thread",
                folder,
                Path(tmp) / "one-t1",
                args.epochs,
                args.device,
                [],
                {**env, "OMP_NUM_THREADS": "1"},
            ),
            run(
                "2 processes (DDP)", folder, Path(tmp) / "two", args.epochs, args.device, ["--nproc-per-node", "2"], env
            ),
        ]
    print(f"basic_cnn on 28 px digits folder, {args.epochs} epochs, device {args.device}, {os.cpu_count()} CPU cores")
    print(f"{'run':<22} {'img/s':>8} {'test acc':>9}")
    for r in results:
        print(f"{r.name:<22} {r.images_per_second:>8,.0f} {r.accuracy:>9.2%}")
    one, two = results[0], results[2]
    efficiency = two.images_per_second / (2 * one.images_per_second)
    print(f"scaling efficiency (2 processes ÷ 2 × 1 process): {efficiency:.2f}")
    if (os.cpu_count() or 1) <= 2 and args.device == "cpu":
        print(
            "note: 2 processes on 2 cores share the cores one process already used through its threads; "
            "0.5 means no faster. The figure measures DDP's overhead here, not its scaling."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
