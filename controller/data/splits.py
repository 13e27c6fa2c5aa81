"""In-memory and on-disk dataset splits, and the deterministic way we cut them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageOps

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data.scan import IMAGE_ERRORS, describe_error


@dataclass
class TensorSplit:
    """A split held as uint8 (N, C, H, W) images and int64 targets, in RAM or memory-mapped.

    Small datasets (digits, CIFAR-10: 150 MB, most folders) live in RAM so a
    batch is one index operation instead of thousands of Python calls. A
    decoded folder too large for RAM stays memory-mapped (``mapped``): its
    subsets keep ``rows`` into the shared array instead of copying it.
    ``source`` names the decoded cache the pixels came from, so the split can
    be fingerprinted without reading them.
    """

    images: torch.Tensor
    targets: torch.Tensor
    rows: torch.Tensor | None = None  # split position → row of ``images`` (or of the source, when in RAM)
    source: str | None = None
    mapped: bool = False

    def __len__(self) -> int:
        return len(self.targets)

    def pixels(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """The uint8 images at split positions ``index`` (all of them when None)."""
        if self.mapped:
            assert self.rows is not None
            rows = self.rows if index is None else self.rows[index]
            return self.images[rows]
        return self.images if index is None else self.images[index]

    def fingerprint(self, digest: Any) -> None:
        """Feed the pixels (or the decoded cache key and rows) and the labels into ``digest``."""
        if self.source is not None and self.rows is not None:
            digest.update(self.source.encode())
            digest.update(self.rows.numpy().astype("<i8").tobytes())
        else:
            digest.update(self.images.contiguous().numpy().tobytes())
        digest.update(self.targets.numpy().astype("<i8").tobytes())

    def subset(self, indices: npt.NDArray[np.int64]) -> TensorSplit:
        idx = torch.as_tensor(indices, dtype=torch.long)
        rows = self.rows[idx] if self.rows is not None else None
        images = self.images if self.mapped else self.images[idx]
        return TensorSplit(images, self.targets[idx], rows, self.source, self.mapped)


def load_image(path: Path, size: int, channels: int) -> npt.NDArray[np.uint8]:
    """Decode, resize the shorter side to ``size``, centre-crop to square; (C, H, W) uint8.

    The same recipe, written with numpy and Pillow only, is what an agent
    applies on a device, so training and on-device inputs match (including
    the EXIF orientation: a phone photo is upright in both places).
    """
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = img.convert("L" if channels == 1 else "RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except IMAGE_ERRORS as exc:
        raise JetfleetError(f"cannot read image {path}: {describe_error(exc)}") from exc
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1), order="C")  # writable copy


Split = TensorSplit  # every dataset, folders included once decoded, is a TensorSplit


def stratified_split(
    targets: npt.ArrayLike, fractions: tuple[float, ...], seed: int = 0
) -> list[npt.NDArray[np.int64]]:
    """Cut indices into ``len(fractions) + 1`` parts keeping class proportions.

    The first part gets what the fractions leave; the split depends only on
    ``seed`` (not on the training seed) so every run of a dataset is scored
    on the same test images.
    """
    t = np.asarray(targets)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(t):
        idx = rng.permutation(np.flatnonzero(t == cls))
        start = 0
        counts = [round(len(idx) * f) for f in fractions]
        for part, n in zip(parts[1:], counts, strict=True):
            part.extend(idx[start : start + n])
            start += n
        parts[0].extend(idx[start:])
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
