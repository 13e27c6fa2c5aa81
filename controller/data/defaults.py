"""The defaults ``train`` derives from an image folder: input size, channels, augmentation.

A folder of 28×28 grayscale scans trained at 64×64 RGB with flips and colour
jitter (the old fixed defaults) reached 75% where a plain loop at the natural
size reached 97.5%. So the defaults come from the data:

- **Input size.** When every image has the same size, its shorter side (a
  square input; non-square images are centre-cropped, as on the device).
  Otherwise the median shorter side, rounded to a multiple of 8. Either is
  clamped to [8, 224]: below 8 the three poolings of ``basic_cnn`` leave
  nothing, and above 224 a CPU epoch takes hours (pass ``--image-size`` to
  train larger).
- **Channels.** 1 when every image is grayscale, else 3.
- **Augmentation**, label-safe only: nothing that mirrors, rotates or
  recolours (a flipped "2", a mirrored sign or a recoloured defect changes
  its label). Small images get a random crop after zero padding of a
  sixteenth of the side (1 px at 28, 2 at 32, 4 at 64); images of 128
  pixels and more, typically photos, get a random resized crop (area
  35–100%, aspect 3/4–4/3), which teaches scale as well as position.
  The padding is gentle because defaults must suit a short run: on the
  digits folder at 28 px (``controller/data/samples.py``), 10 epochs of
  ``basic_cnn`` scored 98.1% with 1 px, 94.7% with 2 px and 93.6% with
  3 px (CIFAR's 1/8 of the side), and 98.1% without augmentation.

Each choice carries a reason, printed at the start of a run and stored in
its summary. ``--image-size``, ``--channels`` and every augmentation switch
override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jetfleet.controller.data.augment import AugmentConfig
from jetfleet.controller.data.scan import GRAY_MODES, FileInfo

MIN_SIZE = 8  # basic_cnn pools three times: 8 → 1
MAX_SIZE = 224  # ImageNet's size; beyond it a CPU epoch is too slow to be a default
SIZE_STEP = 8  # mixed sizes round to a multiple of 8: friendly to pooling and to TensorRT tactics
LARGE_IMAGE = 128  # from this input size on, images are photos: resized crops instead of padded shifts
RESIZED_CROP_MIN_SCALE = 0.35  # the smallest share of the image area a resized crop keeps
PAD_FRACTION = 16  # padded random crop: pad by size // 16, at least 1 (module docstring: measured)


@dataclass(frozen=True)
class DataDefaults:
    """What ``train`` would use when given no flags, and why."""

    image_size: int
    size_reason: str
    channels: int
    channels_reason: str

    def augment(self, size: int) -> tuple[AugmentConfig, str]:
        """The label-safe augmentation for images trained at ``size``."""
        return default_augment(size)


def _clamp(size: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, size))


def choose_size(infos: Sequence[FileInfo]) -> tuple[int, str]:
    """The default input size of readable images (module docstring: the rule)."""
    sizes = {(i.width, i.height) for i in infos}
    if len(sizes) == 1:
        ((w, h),) = sizes
        natural = min(w, h)
        why = f"all images are {w}×{h}" + ("" if w == h else f", centre-cropped to {natural}×{natural}")
    else:
        sides = sorted(i.shorter_side for i in infos)
        median = sides[len(sides) // 2]
        natural = max(SIZE_STEP, int(median / SIZE_STEP + 0.5) * SIZE_STEP)  # half up: 20 → 24
        why = f"{len(sizes)} different sizes: the median shorter side {median} rounded to a multiple of {SIZE_STEP}"
    size = _clamp(natural)
    if size != natural:
        why += f", clamped to {size} (pass --image-size to override)"
    return size, why


def choose_channels(infos: Sequence[FileInfo]) -> tuple[int, str]:
    modes = sorted({i.mode for i in infos})
    if modes and all(m in GRAY_MODES for m in modes):
        return 1, f"every image is grayscale ({', '.join(modes)})"
    return 3, f"images are in colour ({', '.join(modes)})" if modes else "no readable images"


def choose_defaults(infos: Sequence[FileInfo]) -> DataDefaults:
    """Size and channels from the headers of the training images."""
    size, size_reason = choose_size(infos)
    channels, channels_reason = choose_channels(infos)
    return DataDefaults(size, size_reason, channels, channels_reason)


def default_augment(size: int) -> tuple[AugmentConfig, str]:
    """Label-safe augmentation for ``size``: padded random crops when small, resized crops when large."""
    if size >= LARGE_IMAGE:
        config = AugmentConfig(resized_crop=RESIZED_CROP_MIN_SCALE)
        return config, (
            f"random resized crop (area {RESIZED_CROP_MIN_SCALE:.0%}-100%) for images of {size} px; "
            "no flips, rotation or colour jitter (label-safe default)"
        )
    padding = max(1, size // PAD_FRACTION)
    return AugmentConfig(crop_padding=padding), (
        f"random crop after {padding} px padding for small {size} px images; "
        "no flips, rotation or colour jitter (label-safe default)"
    )


def describe_augment(config: AugmentConfig) -> str:
    """``crop pad 3, hflip`` or ``none``: the one-line form of what ran."""
    parts = []
    if config.crop_padding:
        parts.append(f"crop pad {config.crop_padding}")
    if config.resized_crop:
        parts.append(f"resized crop {config.resized_crop:.0%}-100%")
    if config.hflip:
        parts.append("hflip")
    if config.rotation:
        parts.append(f"rotation ±{config.rotation:g}°")
    if config.color_jitter:
        parts.append(f"colour jitter {config.color_jitter:g}")
    return ", ".join(parts) or "none"
