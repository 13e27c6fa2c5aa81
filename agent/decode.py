"""Untrusted encoded images → uint8 pixels at the model's input size, with Pillow.

Steps 1-3 of the input recipe in :mod:`jetfleet.agent.imaging` (which does
step 4, the normalization, and everything that needs numpy alone). This is
the only agent module that decodes with Pillow, and only jobs that classify a
folder on the device or inline images import it: an agent that serves
models and scores test sets never pays Pillow's few MiB of memory.

1. decode the first frame; convert to ``"L"`` or ``"RGB"`` with Pillow's
   ``convert`` (uint8);
2. resize with ``Image.Resampling.BILINEAR`` so the image covers
   ``input_size``: ``scale = max(W / w, H / h)`` (for the square sizes the
   controller trains with that is ``size / min(w, h)``), new sides
   ``max(W, round(w * scale))`` × ``max(H, round(h * scale))``;
3. centre crop with offsets ``(new - target) // 2``.

Resizing happens on uint8 pixels, as in training, not on [0, 1] floats.

Decisions where the controller gives no answer, or a wrong one:

- **Modes.** Everything Pillow can convert is accepted. 8-bit modes (1, L,
  P, LA, PA, RGB, RGBA, CMYK, YCbCr...) go through ``Image.convert``, exactly
  as in training. Alpha is *dropped*, not composited: that is what
  ``convert`` did to the training images, so compositing would make device
  inputs differ from training inputs wherever pixels are transparent.
  High-bit-depth grayscale is rescaled instead of clipped (Pillow's
  ``convert("L")`` clips, turning a 16-bit image almost white):
  ``I;16*`` and ``I`` are read as 0-65535 and mapped to 0-255 (rounded);
  ``F`` is read as 0.0-1.0 (clipped, NaN → 0). The controller still clips
  such files; training on 16-bit images would need the same fix there.
  A mode Pillow cannot convert, and LAB (Pillow's LAB → RGB is not a real
  colour conversion), is an :class:`ImageError` ("unsupported mode").
- **EXIF orientation** is applied (``ImageOps.exif_transpose``) by default,
  so photos from cameras and phones are upright. The controller's
  ``load_image`` does not do this yet; for files without an orientation tag
  (all synthetic and most dataset images) nothing changes. Pass
  ``DecodeOptions(exif_transpose=False)`` to reproduce training on rotated
  camera files bit for bit. A malformed EXIF block is ignored, not fatal.
- **Limits.** Width × height is checked against ``max_pixels`` from the
  header, before any pixel data is decoded, so a decompression bomb never
  allocates. Pillow's own bomb check (a global, ``Image.MAX_IMAGE_PIXELS``,
  left untouched) still applies on top, so ``max_pixels`` above ~89 MP has
  no effect; its warning is made an error inside :func:`decode_image` only
  (``warnings.catch_warnings``, which on Python < 3.14 swaps the process-wide
  filter list: decode from one thread, or accept that rare race). Files over ``max_bytes`` are refused before
  they are read.
- **Formats.** Only PNG, JPEG (MPO included), BMP, GIF, TIFF, WebP and PPM/PGM are
  opened, whatever the extension says: Pillow's other plugins (EPS runs
  Ghostscript) are attack surface a classifier does not need.
- **Truncated files** are errors. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
  never set here; if other code in the process set it, Pillow would pad
  truncated files silently, so decoding refuses to run at all
  (:class:`~jetfleet.common.errors.JetfleetError`) rather than score
  half-grey images.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from jetfleet.agent.imaging import (
    DEFAULT_BATCH_SIZE,
    Batch,
    FolderInput,
    ImageError,
    Label,
    batched,
    normalize_uint8,
    refusal,
)
from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
DEFAULT_MAX_PIXELS = 50_000_000  # a 50 MP camera frame; far below what a Jetson Nano can hold as RGB
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # the largest sane encoded photo; bounds the read before decoding

# Pillow plugins report corrupt data with many exception types.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@dataclass(frozen=True)
class DecodeOptions:
    """Safety limits and orientation handling for untrusted image files."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # checked from the header, before pixels are decoded
    max_bytes: int = DEFAULT_MAX_BYTES  # checked before the file is read
    exif_transpose: bool = True  # upright camera photos; see the module docstring for the training caveat


DEFAULT_OPTIONS = DecodeOptions()


# ----------------------------------------------------------------------------- decoding


def _refuse_hidden_truncation() -> None:
    """Fail loudly if someone made Pillow pad truncated files (a process-wide global)."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise JetfleetError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in this process: truncated images would be "
            "padded silently and scored as if complete",
            hint="remove the code that sets it; the agent reports truncated files as errors instead",
        )


def _read_file(path: Path, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` without blocking on FIFOs or devices."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageError(f"cannot open file ({exc.strerror})") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageError("not a regular file")
    with os.fdopen(fd, "rb") as fh:
        _check_bytes(st.st_size, max_bytes)
        try:
            data = fh.read(max_bytes + 1)  # +1: notice a file that grew after fstat
        except OSError as exc:
            raise ImageError(f"cannot read file ({exc.strerror})") from exc
    _check_bytes(len(data), max_bytes)
    return data


def _check_bytes(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageError("empty file (0 bytes)")
    if size > max_bytes:
        raise ImageError(f"file is {size} bytes, over the {max_bytes}-byte limit")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse from the header alone, so an oversized image never allocates its pixels."""
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"image is {w}x{h} = {w * h} pixels, over the {max_pixels}-pixel limit (decompression bomb?)")


def _bomb_message(exc: Exception, max_pixels: int) -> str:
    """Pillow's own bomb check fired in ``Image.open``, before our check could see the size."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    if found and int(found[1]) > max_pixels:
        return f"image is {found[1]} pixels, over the {max_pixels}-pixel limit (decompression bomb?)"
    return f"image refused by Pillow as a decompression bomb ({exc})"


def _decode_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "truncated" in text:
        return f"truncated image data ({text})"
    return f"corrupt image data ({type(exc).__name__}: {text})"


def _upright(img: Image.Image, exif_transpose: bool) -> Image.Image:
    """A loaded copy detached from the file, rotated per EXIF when asked."""
    if exif_transpose:
        try:
            turned = ImageOps.exif_transpose(img)
        except _DECODE_ERRORS:  # a broken EXIF block: the pixels are still good
            turned = None
        if turned is not None:
            return turned
    return img.copy()


def _decode_loaded(raw: bytes, options: DecodeOptions) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS) as img:
            _check_pixels(img.size, options.max_pixels)
            img.load()  # the first frame only: multi-frame GIF/TIFF/WebP open on frame 0
            return _upright(img, options.exif_transpose)


def decode_image(
    data: bytes | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    exif_transpose: bool = True,
) -> Image.Image:
    """Decode untrusted encoded bytes or a file into a loaded Pillow image (first frame).

    Every problem with the item itself is an :class:`ImageError` naming it;
    nothing Pillow raises on hostile input escapes as another type.
    """
    options = DecodeOptions(max_pixels, max_bytes, exif_transpose)
    _refuse_hidden_truncation()
    raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else _read_file(Path(data), max_bytes)
    _check_bytes(len(raw), max_bytes)
    try:
        return _decode_loaded(raw, options)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_bomb_message(exc, max_pixels)) from exc
    except UnidentifiedImageError as exc:
        accepted = ", ".join(ALLOWED_FORMATS)
        raise ImageError(f"not an image file (cannot identify format; accepted: {accepted})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(_decode_message(exc)) from exc


# ----------------------------------------------------------------------------- pixels


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit and float grayscale → 8-bit by scaling, where Pillow's ``convert`` would clip."""
    arr = np.asarray(img)
    if img.mode == "F":
        unit = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0)
        u8 = np.rint(np.clip(unit, 0.0, 1.0) * np.float32(255)).astype(np.uint8)
    else:  # 0..65535 → 0..255, rounded: (v * 255 + 32767) // 65535
        wide = np.clip(arr.astype(np.int64, copy=False), 0, 65535)
        u8 = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(u8))


def to_model_mode(img: Image.Image, channels: int) -> Image.Image:
    """``"L"`` (channels 1) or ``"RGB"`` (channels 3), 8 bits per channel."""
    target = "L" if channels == 1 else "RGB"
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        img = _high_depth_to_l(img)
    if img.mode == target:
        return img
    if img.mode == "LAB":  # Pillow's LAB → RGB is not colorimetric (mid-grey comes out blue)
        raise ImageError("unsupported mode 'LAB' (needs a colour-managed conversion; save the image as RGB)")
    try:
        return img.convert(target)
    except ValueError as exc:
        raise ImageError(f"unsupported mode {img.mode!r} ({exc})") from exc


def resize_crop(img: Image.Image, input_size: tuple[int, int]) -> Image.Image:
    """Cover ``input_size`` (H, W) with a bilinear resize, then centre crop: the controller's geometry."""
    height, width = input_size
    w, h = img.size
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - width) // 2, (nh - height) // 2
    return img.crop((left, top, left + width, top + height))


def to_uint8_chw(img: Image.Image, spec: PreprocessSpec) -> npt.NDArray[np.uint8]:
    """Mode, size and layout of the model input, still uint8 (the form training stored)."""
    arr = np.asarray(resize_crop(to_model_mode(img, spec.channels), spec.input_size), dtype=np.uint8)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))


def preprocess_image(img: Image.Image, spec: PreprocessSpec) -> npt.NDArray[np.float32]:
    """A decoded image → the model's float32 (C, H, W) input."""
    return normalize_uint8(to_uint8_chw(img, spec)[None], spec)[0]


def preprocess_file(
    source: bytes | Path, spec: PreprocessSpec, options: DecodeOptions = DEFAULT_OPTIONS
) -> npt.NDArray[np.float32]:
    """Encoded bytes or a file → the model's float32 (C, H, W) input; :class:`ImageError` if unusable."""
    return preprocess_image(_decode(source, options), spec)


def _decode(source: bytes | Path, options: DecodeOptions) -> Image.Image:
    return decode_image(source, options.max_pixels, options.max_bytes, exif_transpose=options.exif_transpose)


# ----------------------------------------------------------------------------- batches


def iter_encoded(
    items: Sequence[tuple[str, bytes, Label]],
    spec: PreprocessSpec,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: DecodeOptions = DEFAULT_OPTIONS,
) -> Iterator[Batch]:
    """Batches of in-memory encoded images ``(name, bytes, label or None)``, in the given order."""
    return batched(items, lambda data: to_uint8_chw(_decode(data, options), spec), spec, batch_size)


def iter_folder(
    folder: FolderInput,
    spec: PreprocessSpec,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: DecodeOptions = DEFAULT_OPTIONS,
) -> Iterator[Batch]:
    """Batches of the folder's images, read lazily; the refused items come as errors of the first batch."""
    real_root = folder.root.resolve()

    def load(path: Path) -> npt.NDArray[np.uint8]:
        reason = refusal(path, real_root)  # again: the folder may have changed since listing
        if reason:
            raise ImageError(reason)
        return to_uint8_chw(_decode(path, options), spec)

    triples = ((item.name, item.path, item.label) for item in folder.items)
    return batched(triples, load, spec, batch_size, folder.refused)
