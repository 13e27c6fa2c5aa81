"""Data-parallel training: real torchrun workers (gloo on 2 CPU processes), killed with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetfleet.controller.cli import worker_argv
from jetfleet.controller.training import distributed
from jetfleet.controller.training.checkpoint import load_checkpoint

JETFLEET = Path(sys.executable).parent / "jetfleet"


def test_worker_argv_drops_the_launchers_options() -> None:
    argv = [
        "jetfleet",
        "train",
        "--epochs",
        "3",
        "--nproc-per-node",
        "2",
        "--max-restarts=1",
        "--out",
        "x",
        "--seed",
        "7",
    ]
    assert worker_argv(argv) == ["--epochs", "3", "--seed", "7"]


def test_launcher_args_single_node_and_multi_node() -> None:
    single = distributed.launcher_args(["--epochs", "1"], 2)
    assert "--standalone" in single and single[-4:] == ["-m", "jetfleet.controller.training", "--epochs", "1"]
    multi = distributed.launcher_args([], 4, "2", "head:29400", rdzv_timeout_s=30, max_restarts=3)
    assert {"--nnodes=2", "--rdzv-endpoint=head:29400", "--rdzv-conf=join_timeout=30", "--max-restarts=3"} <= set(multi)


def test_more_processes_than_cores_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert "2 CPU core(s)" in (distributed.oversubscription_warning(3, "cpu") or "")
    assert distributed.oversubscription_warning(2, "cpu") is None


def test_placement_comes_from_torchruns_environment() -> None:
    place = distributed.placement_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert place.enabled and not place.is_main
    assert not distributed.placement_from_env({}).enabled


def _registered(cli) -> list[dict]:
    out = cli("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_two_gloo_processes_train_digits_like_one_and_register_once(cli, tmp_path: Path) -> None:
    one = cli("train", "--epochs", "8", "--out", "one", "--no-register")
    two = cli("train", "--epochs", "8", "--out", "two", "--nproc-per-node", "2", "--no-optimize", timeout=600)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    acc_one = json.loads((tmp_path / "one" / "summary.json").read_text())["test_accuracy"]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.93 and abs(summary["test_accuracy"] - acc_one) <= 0.04
    assert "× 2 ranks" in two.stdout and "registered as basic_cnn:1" in two.stdout
    [model] = _registered(cli)
    assert model["versions"] == 1  # only rank 0 registers
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(history) == 8  # one writer: no epoch twice
    assert not list((tmp_path / "two").glob("tensorboard/*rank*"))


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(JETFLEET), "train", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _wait_for_epochs(history: Path, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history.exists() and len(json.loads(history.read_text() or "[]")) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{history} never reached {n} epochs")


def _workers(pattern: str) -> list[int]:
    """Pids of the rank processes whose command line contains ``pattern`` (each rank has its own session)."""
    found = subprocess.run(["pgrep", "-f", f"jetfleet.controller.training {pattern}"], capture_output=True, text=True)
    return sorted(int(p) for p in found.stdout.split())


def _wait_until_gone(pattern: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _workers(pattern):
            return
        time.sleep(0.1)
    raise AssertionError("the ranks outlived their launcher")


@pytest.mark.slow
def test_a_ddp_run_killed_mid_run_resumes_and_registers_once(cli, tmp_path: Path) -> None:
    proc = _start(tmp_path, "--epochs", "8", "--out", "cut", "--nproc-per-node", "2", "--no-optimize")
    _wait_for_epochs(tmp_path / "cut" / "history.json", 2)
    assert len(_workers("--epochs 8 --no-optimize --out cut")) == 2
    os.kill(proc.pid, signal.SIGKILL)  # the launcher; its ranks must not train on as orphans
    proc.wait()
    _wait_until_gone("--epochs 8 --no-optimize --out cut")
    assert not (tmp_path / "cut" / "summary.json").exists()
    done = load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] + 1
    assert 2 <= done < 8 and _registered(cli) == []
    resumed = cli("train", "--resume", "cut", "--nproc-per-node", "2", "--no-optimize", timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"at epoch {done + 1} of 8" in resumed.stdout, resumed.stdout
    history = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 9))
    [model] = _registered(cli)
    assert model["versions"] == 1


@pytest.mark.slow
def test_a_dead_rank_fails_the_run_with_a_message_instead_of_hanging(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--epochs", "50", "--out", "dead", "--nproc-per-node", "2", "--no-register")
    _wait_for_epochs(tmp_path / "dead" / "history.json", 1)
    pids = _workers("--epochs 50 --no-register --out dead")
    assert len(pids) == 2, pids
    os.kill(pids[-1], signal.SIGKILL)  # one rank dies; the other is blocked in an all-reduce
    out, _ = proc.communicate(timeout=120)
    text = out.decode()
    assert proc.returncode == 1 and "distributed training failed: rank" in text and "exited with -9" in text
    assert "Traceback" not in text.splitlines()[-1]


def test_a_rendezvous_that_never_completes_times_out(cli) -> None:
    out = cli(
        "train", "--epochs", "1", "--no-register", "--out", "r",
        "--nproc-per-node", "1", "--nnodes", "2", "--rdzv-endpoint", "127.0.0.1:29613", "--rdzv-timeout", "3",
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "error: distributed training could not start: not every node joined the rendezvous" in out.stderr
