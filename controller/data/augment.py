"""Data augmentation applied to whole batches on the training device.

Per-sample PIL transforms in loader workers are the classic bottleneck on a
2-core workstation or a Jetson: the GPU (or the CPU's vector units) waits on
Python. Applying each augmentation to a batch tensor at once keeps the
training loop within a few percent of a bare-tensor loop
(``benchmarks/train_throughput.py`` measures exactly that).

Every random draw comes from an explicit ``torch.Generator`` so a run seeded
the same way augments the same way, which is what makes ``--resume`` exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run during training; each is off at its zero value."""

    crop_padding: int = 0  # pixels of zero padding before a random crop back to size
    resized_crop: float = 0.0  # random resized crop keeping at least this share of the area (0 = off)
    hflip: bool = False  # mirror half the images left-right (wrong for digits and text)
    rotation: float = 0.0  # maximum rotation in degrees, uniform in [-r, r]
    color_jitter: float = 0.0  # max relative change of brightness, contrast, saturation

    @property
    def enabled(self) -> bool:
        return bool(self.crop_padding or self.resized_crop or self.hflip or self.rotation or self.color_jitter)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop each image back to its size at a random offset."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=gen, device=x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=gen, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # B,1,H,1
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # B,1,1,W
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_resized_crop(x: torch.Tensor, min_scale: float, gen: torch.Generator) -> torch.Tensor:
    """Crop each image to its own random area in [min_scale, 1] and aspect in [3/4, 4/3], resized back.

    torchvision's RandomResizedCrop per image, done for the whole batch as one
    affine sampling grid (bilinear), so it costs one kernel instead of B.
    """
    b = x.shape[0]
    area = _uniform(b, min_scale, 1.0, gen, x.device)
    log_ratio = _uniform(b, math.log(3 / 4), math.log(4 / 3), gen, x.device)
    ratio = torch.exp(log_ratio)
    sw = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width as a share of the image width
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen, device=x.device) * 2 - 1) * (1 - sw)  # centre, in [-1, 1] grid units
    cy = (torch.rand(b, generator=gen, device=x.device) * 2 - 1) * (1 - sh)
    zero = torch.zeros_like(sw)
    theta = torch.stack([torch.stack([sw, zero, cx], 1), torch.stack([zero, sh, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_rotation(x: torch.Tensor, degrees: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by its own angle about the centre (bilinear, zero fill)."""
    angle = _uniform(x.shape[0], -degrees, degrees, gen, x.device) * (math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights[None, :, None, None]).sum(1, keepdim=True)


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and (for RGB) saturation, each factor in [1-s, 1+s]."""
    b = x.shape[0]

    def factor() -> torch.Tensor:
        return _uniform(b, max(0.0, 1 - strength), 1 + strength, gen, x.device)[:, None, None, None]

    x = x * factor()
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    if x.shape[1] == 3:
        gray = _grayscale(x)
        x = (x - gray) * factor() + gray
    return x.clamp_(0.0, 1.0)


class BatchAugment:
    """Apply an :class:`AugmentConfig` to a float batch in [0, 1] of shape (B, C, H, W)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c = self.config
        if c.crop_padding:
            x = random_crop(x, c.crop_padding, gen)
        if c.resized_crop:
            x = random_resized_crop(x, c.resized_crop, gen)
        if c.hflip:
            x = random_hflip(x, gen)
        if c.rotation:
            x = random_rotation(x, c.rotation, gen)
        if c.color_jitter:
            x = color_jitter(x, c.color_jitter, gen)
        return x
