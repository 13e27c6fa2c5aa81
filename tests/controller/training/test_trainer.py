"""Real training runs on the embedded digits dataset (seconds each on 2 cores)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from rich.console import Console

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.training.checkpoint import load_checkpoint
from jetfleet.controller.training.config import AugmentOptions, LossConfig, OptimConfig, ScheduleConfig, TrainConfig
from jetfleet.controller.training.trainer import RunResult, resume, train

TIMING_KEYS = {"seconds", "images_per_second"}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    out = tmp_path_factory.mktemp("runs") / "digits"
    return train(TrainConfig(epochs=10), out, quiet())


def test_basic_cnn_learns_digits(digits_run: RunResult) -> None:
    assert digits_run.test_accuracy >= 0.97
    summary = json.loads((digits_run.out_dir / "summary.json").read_text())
    assert summary["test_accuracy"] == digits_run.test_accuracy
    assert summary["epochs_run"] == 10 and not summary["stopped_early"]
    assert len(summary["test"]["per_class"]) == 10
    assert summary["test"]["num_samples"] == 359


def test_run_directory_contents(digits_run: RunResult) -> None:
    out = digits_run.out_dir
    for name in ("config.json", "last.pt", "best.pt", "history.json", "history.csv", "summary.md"):
        assert (out / name).is_file(), name
    for name in ("loss.png", "accuracy.png", "lr.png", "confusion_matrix.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 200
    history = json.loads((out / "history.json").read_text())
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx([h["val_accuracy"] for h in history])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["lr"] < history[0]["lr"]  # cosine schedule
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    md = (out / "summary.md").read_text()
    assert "test accuracy" in md and "| 9 |" in md


def test_checkpoints_are_self_describing(digits_run: RunResult) -> None:
    best = load_checkpoint(digits_run.out_dir / "best.pt")
    assert best["model"] == "basic_cnn" and best["in_channels"] == 1 and best["num_classes"] == 10
    assert best["preprocess"]["input_size"] == [8, 8] and best["preprocess"]["labels"][3] == "3"
    assert TrainConfig.from_dict(best["config"]) == TrainConfig(epochs=10)
    assert best["test_metrics"]["top1_accuracy"] == digits_run.test_accuracy
    last = load_checkpoint(digits_run.out_dir / "last.pt")
    assert last["epoch"] == 9 and len(last["history"]) == 10


def test_existing_run_is_not_overwritten(digits_run: RunResult) -> None:
    before = (digits_run.out_dir / "summary.json").read_bytes()
    with pytest.raises(JetfleetError, match=r"not empty.*--overwrite"):
        train(TrainConfig(epochs=1), digits_run.out_dir, quiet())
    assert (digits_run.out_dir / "summary.json").read_bytes() == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(JetfleetError, match="no jetfleet run"):
        train(TrainConfig(epochs=1), tmp_path, quiet(), overwrite=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_same_seed_same_result(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, augment=AugmentOptions(rotation=10, crop_padding=1))
    a = train(cfg, tmp_path / "a", quiet())
    b = train(cfg, tmp_path / "b", quiet())
    assert a.summary["test"] == b.summary["test"]


def _without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path: Path, cli) -> None:
    """Kill a real training process mid-run, resume it, and get exactly the uninterrupted result."""
    args = ["train", "--epochs", "6", "--rotation", "8", "--no-register"]
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    import subprocess
    import sys

    exe = Path(sys.executable).parent / "jetfleet"
    proc = subprocess.Popen(
        [str(exe), *args, "--out", str(tmp_path / "cut")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    history = tmp_path / "cut" / "history.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if history.exists() and len(json.loads(history.read_text() or "[]")) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "summary.json").exists(), "the run finished before it was killed"
    done = load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] + 1
    assert 2 <= done < 6

    resumed = cli("train", "--resume", tmp_path / "cut", "--no-register")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {tmp_path / 'cut'} at epoch {done + 1}" in resumed.stdout.replace("\n", "")
    h_whole = json.loads((tmp_path / "whole" / "history.json").read_text())
    h_cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert _without_timing(h_cut) == _without_timing(h_whole)
    s_whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    s_cut = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert s_cut["test"] == s_whole["test"]
    w_whole = load_checkpoint(tmp_path / "whole" / "last.pt")["state_dict"]
    w_cut = load_checkpoint(tmp_path / "cut" / "last.pt")["state_dict"]
    assert all(torch.equal(w_whole[k], w_cut[k]) for k in w_whole)


def test_resume_can_extend_a_finished_run(tmp_path: Path) -> None:
    train(TrainConfig(epochs=2), tmp_path / "r", quiet())
    result = resume(tmp_path / "r", quiet(), epochs=3)
    assert result.summary["epochs_run"] == 3
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 3


def test_resume_rejects_a_weights_only_file(tmp_path: Path) -> None:
    from jetfleet.controller.training.checkpoint import save_checkpoint

    ckpt = load_checkpoint_of_fresh_run(tmp_path)
    for key in ("optimizer", "schedule"):
        ckpt.pop(key)
    save_checkpoint(tmp_path / "weights.pt", ckpt)
    with pytest.raises(JetfleetError, match="weights only"):
        resume(tmp_path / "weights.pt", quiet())


def load_checkpoint_of_fresh_run(tmp_path: Path) -> dict:
    train(TrainConfig(epochs=1), tmp_path / "fresh", quiet())
    return load_checkpoint(tmp_path / "fresh" / "last.pt")


def test_early_stopping_ends_the_run(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=8, early_stopping_patience=2, min_delta=0.5)  # nothing beats epoch 1 by 50 points
    result = train(cfg, tmp_path / "es", quiet())
    assert result.summary["stopped_early"] and result.summary["epochs_run"] == 3
    assert result.summary["best_epoch"] == 1


def test_other_recipes_train(tmp_path: Path) -> None:
    """SGD + Nesterov, one-cycle, focal loss, accumulation, augmentation and auto batch size together."""
    cfg = TrainConfig(
        epochs=3,
        batch_size="auto",
        accumulate=2,
        optim=OptimConfig("sgd", lr=0.05, nesterov=True),
        schedule=ScheduleConfig("onecycle"),
        loss=LossConfig("focal"),
        augment=AugmentOptions(crop_padding=1, rotation=5, color_jitter=0.1),
        monitor="val_loss",
    )
    result = train(cfg, tmp_path / "sgd", quiet())
    assert result.summary["batch_size"] == 1259 // 16  # memory allows more; 16 steps an epoch is the floor
    assert result.test_accuracy > 0.5  # far above the 10% of chance after 3 epochs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
def test_training_on_cuda_with_amp_gives_a_checkpoint_the_cpu_loads(tmp_path: Path) -> None:
    """Device placement, AMP's scaler and checkpoint portability: what only a GPU run can catch."""
    result = train(TrainConfig(epochs=6, device="cuda", amp=True), tmp_path / "cuda", quiet())
    assert result.test_accuracy >= 0.95
    raw = torch.load(result.out_dir / "best.pt", weights_only=True)  # no map_location: devices as saved
    tensors = [v for v in raw["state_dict"].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert load_checkpoint(result.out_dir / "best.pt")["model"] == "basic_cnn"


def test_progress_lines_in_logs_within_an_epoch(tmp_path: Path) -> None:
    from jetfleet.controller.training.progress import TrainProgress

    out = io.StringIO()
    progress = TrainProgress(Console(file=out, width=200), epochs=2, log_interval_s=0.0)
    progress.start_epoch(0, batches=10, images=640, batch_size=64)
    for i in range(10):
        progress.batch(i, torch.tensor(0.5))
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("epoch 1: 640/640 images (100%)")
    assert "images/s" in lines[0] and "ETA" in lines[0] and "loss 0.5000" in lines[0]


def test_resume_keeps_the_size_channels_and_augmentation_the_run_started_with() -> None:
    from jetfleet.controller.training.trainer import pinned_to_checkpoint

    ckpt = {
        "preprocess": {"input_size": [64, 64], "channels": 3},
        "augment": {"crop_padding": 8, "resized_crop": 0.0, "hflip": True, "rotation": 0.0, "color_jitter": 0.2},
    }
    pinned = pinned_to_checkpoint(TrainConfig(dataset="folder:x"), ckpt)
    assert (pinned.image_size, pinned.channels) == (64, 3)
    assert pinned.augment.hflip is True and pinned.augment.color_jitter == 0.2
    assert pinned_to_checkpoint(TrainConfig(image_size=32, channels=1), ckpt).image_size == 32  # given stays given
