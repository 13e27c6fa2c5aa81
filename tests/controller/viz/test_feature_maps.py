from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.models import create_model
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint
from jetfleet.controller.viz.feature_maps import (
    candidate_blocks,
    capture_activations,
    plot_feature_maps,
    predict,
    preprocess_image,
)


def test_plot_feature_maps_basic_cnn(
    tmp_path: Path, checkpoint: Path, photo: Path, assert_png, labels: tuple[str, ...]
) -> None:
    out = tmp_path / "out" / "fm.png"
    result = plot_feature_maps(checkpoint, photo, out)
    assert result.out_path == out
    assert_png(out, min_size=(1200, 400))
    assert result.shapes == {"block1": (1, 32, 16, 16), "block2": (1, 64, 8, 8), "block3": (1, 128, 4, 4)}

    # The prediction shown is the model's own on the preprocessed image, computed here independently.
    ckpt = load_checkpoint(checkpoint)
    x = preprocess_image(photo, PreprocessSpec.from_dict(ckpt["preprocess"]))
    with torch.no_grad():
        probs = torch.softmax(model_from_checkpoint(ckpt)(x), dim=1)[0]
    assert result.prediction.index == int(probs.argmax())
    assert result.prediction.label == labels[int(probs.argmax())]
    assert result.prediction.probability == pytest.approx(float(probs.max()), abs=1e-6)
    assert result.prediction.probability >= 1 / len(labels)


def test_preprocess_applies_the_checkpoint_normalization(solid_png: Path) -> None:
    spec = PreprocessSpec((8, 8), 3, (0.1, 0.2, 0.3), (0.5, 0.25, 2.0))
    x = preprocess_image(solid_png, spec)
    assert x.shape == (1, 3, 8, 8)
    assert x.dtype == torch.float32
    expected = [(100 / 255 - 0.1) / 0.5, (150 / 255 - 0.2) / 0.25, (200 / 255 - 0.3) / 2.0]
    for c, value in enumerate(expected):
        assert torch.allclose(x[0, c], torch.full((8, 8), value), atol=1e-6)


def test_grayscale_checkpoint(make_checkpoint: Callable[..., Path], photo: Path, tmp_path: Path, assert_png) -> None:
    ckpt = make_checkpoint("custom_resnet", channels=1, size=16, depth=8)
    result = plot_feature_maps(ckpt, photo, tmp_path / "gray.png", max_channels=4)
    assert result.shapes == {
        "stem": (1, 16, 16, 16),
        "stage1": (1, 16, 16, 16),
        "stage2": (1, 32, 8, 8),
        "stage3": (1, 64, 4, 4),
    }
    assert_png(tmp_path / "gray.png")


def test_max_channels_narrows_the_grid(checkpoint: Path, photo: Path, tmp_path: Path, assert_png) -> None:
    wide = assert_png(plot_feature_maps(checkpoint, photo, tmp_path / "w.png", max_channels=16).out_path)
    narrow = assert_png(plot_feature_maps(checkpoint, photo, tmp_path / "n.png", max_channels=4).out_path)
    assert narrow[0] < wide[0] / 2


def test_models_without_feature_blocks_fall_back_to_their_stages() -> None:
    assert [n for n, _ in candidate_blocks(create_model("basic_cnn"))] == ["block1", "block2", "block3"]
    assert [n for n, _ in candidate_blocks(create_model("resnet18"))] == ["layer1", "layer2", "layer3", "layer4"]
    mobilenet = [n for n, _ in candidate_blocks(create_model("mobilenet_v3_small"))]
    assert mobilenet[0] == "features.0" and mobilenet[-1] == "features.12"
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert [n for n, _ in candidate_blocks(plain)] == ["0", "1"]


def test_many_blocks_are_thinned_evenly(make_checkpoint: Callable[..., Path], photo: Path, tmp_path: Path) -> None:
    ckpt = make_checkpoint("mobilenet_v3_small", size=32)
    result = plot_feature_maps(ckpt, photo, tmp_path / "m.png", max_channels=2, max_blocks=3)
    assert list(result.shapes) == ["features.0", "features.6", "features.12"]
    assert all(len(s) == 4 for s in result.shapes.values())


def test_captured_maps_survive_later_inplace_ops() -> None:
    conv = nn.Conv2d(1, 4, 3)
    model = nn.Sequential(conv, nn.ReLU(inplace=True))
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, captured = capture_activations(model, x, [("conv", conv)])
    assert captured["conv"].min() < 0, "the in-place ReLU overwrote the captured conv output"
    torch.testing.assert_close(captured["conv"], conv(x))


def test_predict_names_unlabelled_classes() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    p = predict(logits, ())
    assert (p.index, p.label) == (1, "class 1")
    expected = np.exp(3.0) / (1 + np.exp(3.0) + np.exp(1.0))
    assert p.probability == pytest.approx(expected)
    assert predict(logits, ("a", "b", "c")).label == "b"


def test_missing_image_is_a_user_error(checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(JetfleetError, match=re.escape(f"image {missing} does not exist")):
        plot_feature_maps(checkpoint, missing, tmp_path / "fm.png")
    assert not (tmp_path / "fm.png").exists()


def test_unreadable_image_is_a_user_error(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(JetfleetError, match="cannot read image"):
        plot_feature_maps(checkpoint, bad, tmp_path / "fm.png")


def test_corrupt_checkpoint_is_a_user_error(photo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(JetfleetError, match=r"bad\.pt"):
        plot_feature_maps(bad, photo, tmp_path / "fm.png")
