"""Fixtures for the viz tests: a tiny untrained checkpoint and a real photo on disk.

No training is needed: feature-map plots only need weights of the right
shapes, and a checkpoint is a plain dict built with the public helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.models import create_model
from jetfleet.controller.training.checkpoint import save_checkpoint

LABELS = ("cat", "dog", "bird")

MakeCheckpoint = Callable[..., Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """Build and save an untrained checkpoint for any registered model."""

    def make(model: str = "basic_cnn", channels: int = 3, size: int = 32, **model_kwargs: object) -> Path:
        torch.manual_seed(0)
        net = create_model(model, num_classes=len(LABELS), in_channels=channels, **model_kwargs)
        spec = PreprocessSpec((size, size), channels, (0.5,) * channels, (0.25,) * channels, LABELS)
        path = tmp_path / f"{model}_{channels}ch.pt"
        save_checkpoint(
            path,
            {
                "model": model,
                "model_kwargs": model_kwargs,
                "num_classes": len(LABELS),
                "in_channels": channels,
                "state_dict": net.state_dict(),
                "preprocess": spec.to_dict(),
                "config": {"note": "built by the viz tests, never trained"},
            },
        )
        return path

    return make


@pytest.fixture
def checkpoint(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real photograph (scikit-learn's flower, shrunk) saved as a PNG file."""
    from sklearn.datasets import load_sample_image

    path = tmp_path / "flower.png"
    Image.fromarray(load_sample_image("flower.jpg")).resize((96, 64)).save(path)
    return path


@pytest.fixture
def solid_png(tmp_path: Path) -> Path:
    """A 40×50 image of one RGB colour, whose preprocessed values are known exactly."""
    path = tmp_path / "solid.png"
    Image.fromarray(np.full((40, 50, 3), (100, 150, 200), dtype=np.uint8)).save(path)
    return path


def _check_png(path: Path, min_size: tuple[int, int] = (200, 200)) -> tuple[int, int]:
    """The file exists, PIL decodes it as a PNG, and it is not a thumbnail; returns (width, height)."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG"
        assert img.width >= min_size[0] and img.height >= min_size[1], img.size
        return img.size


@pytest.fixture
def assert_png() -> Callable[..., tuple[int, int]]:
    """``assert_png(path, min_size=(w, h))``: a fixture because test modules do not import conftest."""
    return _check_png


@pytest.fixture
def labels() -> tuple[str, ...]:
    """The class names every checkpoint built by ``make_checkpoint`` carries."""
    return LABELS
