"""In-memory and on-disk dataset splits, and the deterministic way we cut them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from jetfleet.common.errors import JetfleetError


@dataclass
class TensorSplit:
    """A split held in memory as uint8 (N, C, H, W) images and int64 targets.

    Small datasets (digits, CIFAR-10: 150 MB) live here so batches are one
    index operation instead of thousands of Python calls.
    """

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def fingerprint(self, digest: Any) -> None:
        """Feed the exact pixels and labels into ``digest`` (a hashlib object)."""
        digest.update(self.images.contiguous().numpy().tobytes())
        digest.update(self.targets.numpy().astype("<i8").tobytes())

    def subset(self, indices: npt.NDArray[np.int64]) -> TensorSplit:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorSplit(self.images[idx], self.targets[idx])


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
    except (OSError, UnidentifiedImageError) as exc:
        raise JetfleetError(f"cannot read image {path}: {exc}") from exc
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1), order="C")  # writable copy


class FolderSplit(Dataset[tuple[torch.Tensor, int]]):
    """A split of image files decoded on demand (in loader workers)."""

    def __init__(self, samples: list[tuple[Path, int]], size: int, channels: int) -> None:
        self.samples = samples
        self.size = size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.samples[index]
        return torch.from_numpy(load_image(path, self.size, self.channels)), target

    def fingerprint(self, digest: Any) -> None:
        """Feed file names, sizes, modification times and labels into ``digest`` (no pixel reads)."""
        for path, target in self.samples:
            st = path.stat()
            digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0{target}\n".encode())

    def subset(self, indices: npt.NDArray[np.int64]) -> FolderSplit:
        return FolderSplit([self.samples[i] for i in indices], self.size, self.channels)

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([t for _, t in self.samples], dtype=torch.long)


Split = TensorSplit | FolderSplit


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
