from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.viz.cli import viz


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(viz, [str(a) for a in args])


def _ok(result: Result) -> str:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def test_group_lists_every_command() -> None:
    out = _ok(_invoke("--help"))
    for command in ("conv-demo", "activations", "feature-maps", "architecture"):
        assert command in out


def test_conv_demo(tmp_path: Path, assert_png) -> None:
    out = _ok(_invoke("conv-demo", "--out", tmp_path, "--height", "32", "--image", "flower.jpg"))
    png = tmp_path / "conv_demo.png"
    assert_png(png, min_size=(1000, 700))
    assert f"wrote {png}" in out
    assert "max abs difference" in out


def test_activations_default_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_png) -> None:
    monkeypatch.chdir(tmp_path)
    out = _ok(_invoke("activations"))
    assert_png(tmp_path / "viz" / "activations.png")
    assert f"wrote {os.path.join('viz', 'activations.png')}" in out


def test_feature_maps(tmp_path: Path, checkpoint: Path, photo: Path, assert_png, labels: tuple[str, ...]) -> None:
    out = _ok(_invoke("feature-maps", checkpoint, "--image", photo, "--out", tmp_path / "figs", "--max-channels", "8"))
    png = tmp_path / "figs" / f"feature_maps_{checkpoint.stem}_{photo.stem}.png"
    assert_png(png)
    assert f"wrote {png}" in out
    assert any(f"predicted {label}" in out for label in labels)


def test_architecture_writes_png_and_json(tmp_path: Path, assert_png) -> None:
    out = _ok(
        _invoke(
            "architecture", "BasicCNN", "--input-size", "32", "--channels", "1", "--num-classes", "5", "--out", tmp_path
        )
    )
    png, summary = tmp_path / "architecture_basic_cnn.png", tmp_path / "architecture_basic_cnn.json"
    assert_png(png)
    assert f"wrote {png}" in out and f"wrote {summary}" in out
    doc = json.loads(summary.read_text())
    assert doc["model"] == "basic_cnn"
    assert doc["input_shape"] == [1, 1, 32, 32]
    conv1 = doc["layers"][0]
    assert conv1["name"] == "features.0.0"
    assert conv1["macs"] == 32 * 32 * 32 * 1 * 9
    assert doc["layers"][-1]["output_shape"] == [1, 5]
    assert doc["total_params"] == sum(layer["params"] for layer in doc["layers"])
    assert "features.0.0" in out  # the table went to the terminal too


def test_unknown_model_is_a_user_error(tmp_path: Path) -> None:
    result = _invoke("architecture", "lenet9000", "--out", tmp_path)
    assert result.exit_code != 0
    assert isinstance(result.exception, JetfleetError)
    assert "unknown model 'lenet9000'" in str(result.exception)
    assert not list(tmp_path.iterdir())


def test_non_positive_input_size_is_a_usage_error(tmp_path: Path) -> None:
    result = _invoke("architecture", "basic_cnn", "--input-size", "0", "--out", tmp_path)
    assert result.exit_code == 2
    assert "--input-size" in result.output


def test_missing_image_is_a_user_error(tmp_path: Path, checkpoint: Path) -> None:
    missing = tmp_path / "missing.png"
    result = _invoke("feature-maps", checkpoint, "--image", missing, "--out", tmp_path)
    assert result.exit_code != 0
    assert isinstance(result.exception, JetfleetError)
    assert f"image {missing} does not exist" in str(result.exception)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"\x80\x02}q\x00."])
def test_corrupt_checkpoint_is_a_user_error(tmp_path: Path, photo: Path, content: bytes) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(content)
    result = _invoke("feature-maps", bad, "--image", photo, "--out", tmp_path)
    assert result.exit_code != 0
    assert isinstance(result.exception, JetfleetError)
    assert "broken.pt" in str(result.exception)


def test_missing_checkpoint_is_a_user_error(tmp_path: Path, photo: Path) -> None:
    result = _invoke("feature-maps", tmp_path / "nope.pt", "--image", photo)
    assert isinstance(result.exception, JetfleetError)
    assert "does not exist" in str(result.exception)


def test_feature_maps_requires_an_image(checkpoint: Path) -> None:
    result = _invoke("feature-maps", checkpoint)
    assert result.exit_code == 2
    assert "--image" in result.output


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    result = _invoke("conv-demo", "--padding", "full", "--out", tmp_path)
    assert result.exit_code == 2
    assert "full" in result.output
    assert not (tmp_path / "conv_demo.png").exists()
