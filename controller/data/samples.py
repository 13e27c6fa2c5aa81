"""The embedded digits written out as an image folder, in the layout users bring their own data in.

``train/<class>/*.png`` and ``val/<class>/*.png``, 8-bit grayscale PNGs
upscaled from scikit-learn's 8×8 scans (bilinear), so folder training,
``jetfleet data inspect`` and the benchmarks have a real, offline folder
dataset of small grayscale images to work on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VAL_EVERY = 5  # every fifth image of each class goes to val/: a stratified 80/20 cut


def write_digits_folder(root: Path, size: int = 28) -> Path:
    """Write ``root/train`` and ``root/val`` (1,797 PNGs); returns ``root``."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    pixels = np.rint(raw.images * (255.0 / 16.0)).astype(np.uint8)
    seen = [0] * 10
    for i, (img, label) in enumerate(zip(pixels, raw.target, strict=True)):
        seen[label] += 1
        split = "val" if seen[label] % VAL_EVERY == 0 else "train"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img, mode="L").resize((size, size), Image.Resampling.BILINEAR)
        pil.save(folder / f"{i:04d}.png")
    return root
