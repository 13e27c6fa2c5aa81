from __future__ import annotations

import pytest
import torch

from jetfleet.controller.models import create_model
from jetfleet.controller.training.batch_size import activation_bytes_per_sample, auto_batch_size, find_max_batch_size


@pytest.mark.parametrize("capacity", [1, 2, 3, 37, 64, 100, 511, 512])
def test_search_finds_the_exact_capacity(capacity: int) -> None:
    calls: list[int] = []

    def fits(b: int) -> bool:
        calls.append(b)
        return b <= capacity

    assert find_max_batch_size(fits, start=2, limit=512) == capacity
    assert len(calls) <= 20


def test_search_respects_limit_and_returns_one_when_nothing_fits() -> None:
    assert find_max_batch_size(lambda b: True, limit=48) == 48
    assert find_max_batch_size(lambda b: False) == 1


def test_activation_estimate_grows_with_resolution() -> None:
    model = create_model("basic_cnn", num_classes=10, in_channels=3)
    small = activation_bytes_per_sample(model, (3, 16, 16))
    large = activation_bytes_per_sample(model, (3, 64, 64))
    assert 12 * small < large < 20 * small  # ~16x the pixels
    assert model.training  # the probe restores the mode


def test_cpu_auto_batch_size_is_capped() -> None:
    model = create_model("basic_cnn", num_classes=10, in_channels=1)
    assert auto_batch_size(model, (1, 8, 8), torch.device("cpu"), limit=300) == 300
