"""The ``jetfleet`` command run as a subprocess, the way users run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures import write_cifar10, write_image_folder
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version_and_help(cli) -> None:
    assert cli("--version").stdout.startswith("jetfleet, version")
    helptext = cli("--help").stdout
    assert all(cmd in helptext for cmd in ("train", "evaluate", "viz"))


def test_train_then_evaluate_digits(cli, tmp_path: Path) -> None:
    result = cli(
        "train", "--no-register", "--model", "BasicCNN", "--dataset", "digits", "--epochs", "2", "--out", "runs/d"
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "d"
    assert "report written to" in result.stdout and "summary.md" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "basic_cnn" and 0.5 < summary["test_accuracy"] <= 1

    ev = cli("evaluate", run / "best.pt", "--dataset", "digits")
    assert ev.returncode == 0, ev.stderr
    evaluation = json.loads((run / "eval-digits-test" / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert (run / "eval-digits-test" / "confusion_matrix.png").is_file()

    again = cli("evaluate", run / "best.pt", "--dataset", "digits")
    assert_one_line_error(again, "already holds an evaluation", "--overwrite")


def test_train_cifar10_fixture_with_options(cli, tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data", per_batch=16, test=20)
    result = cli(
        "train",
        "--model",
        "CustomResNet",
        "--model-arg",
        "depth=8",
        "--dataset",
        "cifar10",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--optimizer",
        "sgd",
        "--nesterov",
        "--scheduler",
        "step",
        "--loss",
        "focal",
        "--out",
        "runs/c",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "c" / "summary.json").read_text())
    assert summary["model"] == "custom_resnet" and summary["test"]["num_samples"] == 20
    assert summary["augment"] == {
        "crop_padding": 4,
        "resized_crop": 0.0,
        "hflip": True,
        "rotation": 0.0,
        "color_jitter": 0.0,
    }
    assert summary["config"]["model_kwargs"] == {"depth": 8}


def test_train_image_folder(cli, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets", per_class=8)
    result = cli(
        "train",
        "--dataset",
        f"folder:{tmp_path / 'pets'}",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--out",
        "runs/f",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "f" / "summary.json").read_text())
    assert summary["dataset"].startswith("folder:") and len(summary["test"]["per_class"]) == 3


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--model", "lenet5"], ["unknown model 'lenet5'", "basic_cnn"]),
        (["train", "--dataset", "svhn"], ["unknown dataset 'svhn'"]),
        (["train", "--dataset", "cifar10"], ["CIFAR-10 not found", "--download"]),
        (["train", "--dataset", "folder:missing_dir"], ["missing_dir does not exist"]),
        (["train", "--dataset", "imagenet"], ["ImageNet not found"]),
        (["evaluate", "nothing.pt"], ["nothing.pt does not exist"]),
    ],
)
def test_bad_input_is_one_line(cli, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(cli(*args), *fragments)


def test_image_folder_with_no_classes(cli, tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert_one_line_error(cli("train", "--no-register", "--dataset", f"folder:{tmp_path / 'empty'}"), "has no classes")


def test_corrupt_and_foreign_checkpoints(cli, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    assert_one_line_error(cli("evaluate", "junk.pt"), "junk.pt is corrupt or not a checkpoint")
    import torch

    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    assert_one_line_error(cli("evaluate", "foreign.pt"), "not a jetfleet checkpoint")


def test_checkpoint_from_another_model_or_dataset(cli, tmp_path: Path) -> None:
    assert cli("train", "--no-register", "--epochs", "1", "--out", "r").returncode == 0
    assert_one_line_error(cli("evaluate", "r/best.pt", "--model", "custom_resnet"), "holds a basic_cnn model")
    write_cifar10(tmp_path / "data", per_batch=4, test=4)
    assert_one_line_error(cli("evaluate", "r/best.pt", "--dataset", "cifar10"), "1-channel")


def test_run_directory_is_protected(cli, tmp_path: Path) -> None:
    assert cli("train", "--no-register", "--epochs", "1", "--out", "r").returncode == 0
    before = (tmp_path / "r" / "best.pt").read_bytes()
    assert_one_line_error(cli("train", "--no-register", "--epochs", "1", "--out", "r"), "not empty", "--overwrite")
    assert (tmp_path / "r" / "best.pt").read_bytes() == before
    assert cli("train", "--no-register", "--epochs", "1", "--seed", "7", "--out", "r", "--overwrite").returncode == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 7


def test_usage_errors_exit_2(cli) -> None:
    result = cli("train", "--no-register", "--batch-size", "lots")
    assert result.returncode == 2 and "--batch-size" in result.stderr


def test_legacy_toolkit_command(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = REPO / "jetson_cnn_toolkit.py"
    base = [sys.executable, str(script)]
    train = subprocess.run(
        [
            *base,
            "--mode",
            "train",
            "--model",
            "BasicCNN",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--out",
            "legacy",
            "--no-optimize",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "legacy" / "summary.json").is_file()
    ev = subprocess.run(
        [*base, "--mode", "evaluate", "--checkpoint", "legacy/best.pt", "--dataset", "digits"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "seven.png")
    viz = subprocess.run(
        [
            *base,
            "--mode",
            "visualize",
            "--model",
            "BasicCNN",
            "--checkpoint",
            "legacy/best.pt",
            "--image",
            "seven.png",
            "--output",
            "figs",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert viz.returncode == 0, viz.stderr
    assert len(list((tmp_path / "figs").glob("*.png"))) >= 4
    bad = subprocess.run(
        [*base, "--mode", "train", "--model", "NoSuchNet"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 1 and "unknown model" in bad.stderr and "Traceback" not in bad.stderr
