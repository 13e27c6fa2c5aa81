from __future__ import annotations

import pytest
import torch

from jetfleet.controller.data.augment import (
    AugmentConfig,
    BatchAugment,
    color_jitter,
    random_crop,
    random_hflip,
    random_rotation,
)
from jetfleet.controller.data.loading import epoch_generator


@pytest.fixture
def batch() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(16, 3, 12, 12)


def test_crop_is_a_shifted_window_of_the_padded_image(batch: torch.Tensor) -> None:
    out = random_crop(batch, 2, epoch_generator(0, 0))
    assert out.shape == batch.shape
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    for i in range(len(batch)):
        windows = [padded[i, :, y : y + 12, x : x + 12] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, batch)


def test_hflip_flips_about_half(batch: torch.Tensor) -> None:
    out = random_hflip(batch, epoch_generator(1, 0))
    flipped = sum(torch.equal(o, b.flip(2)) for o, b in zip(out, batch, strict=True))
    kept = sum(torch.equal(o, b) for o, b in zip(out, batch, strict=True))
    assert flipped + kept == 16 and 2 <= flipped <= 14


def test_zero_rotation_is_identity_and_rotation_changes_pixels(batch: torch.Tensor) -> None:
    same = random_rotation(batch, 1e-9, epoch_generator(0, 0))
    torch.testing.assert_close(same, batch, atol=1e-4, rtol=0)
    assert not torch.allclose(random_rotation(batch, 30, epoch_generator(0, 0)), batch, atol=1e-3)


def test_jitter_stays_in_range(batch: torch.Tensor) -> None:
    out = color_jitter(batch.clone(), 0.5, epoch_generator(0, 0))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, batch)


def test_same_seed_same_augmentation(batch: torch.Tensor) -> None:
    aug = BatchAugment(AugmentConfig(crop_padding=2, hflip=True, rotation=10, color_jitter=0.2))
    a = aug(batch, epoch_generator(5, 3))
    b = aug(batch, epoch_generator(5, 3))
    c = aug(batch, epoch_generator(5, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_disabled_config() -> None:
    assert not AugmentConfig().enabled and AugmentConfig(hflip=True).enabled
