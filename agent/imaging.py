"""Images on a device → the exact float32 NCHW batches the model was trained on.

The agent has no torch, so this module rebuilds the controller's input
pipeline with Pillow and numpy alone. The recipe is the controller's
``jetfleet.controller.data.splits.load_image`` followed by the normalization
of ``controller.registry.optimize._materialize``, step for step, so that the
same file gives bit-identical inputs on both sides (a test checks this):

1. decode the first frame; convert to ``"L"`` or ``"RGB"`` with Pillow's
   ``convert`` (uint8);
2. resize with ``Image.Resampling.BILINEAR`` so the image covers
   ``input_size``: ``scale = max(W / w, H / h)`` (for the square sizes the
   controller trains with that is ``size / min(w, h)``), new sides
   ``max(W, round(w * scale))`` × ``max(H, round(h * scale))``;
3. centre crop with offsets ``(new - target) // 2``;
4. ``((x / 255) - mean) / std`` in float32, in that order (the operations
   torch performed, hence the same rounding).

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
- **Folders.** Hidden files and folders are skipped; only the image
  extensions above are listed. A symlink is followed only when its target
  lies inside the folder (checked when listing and again when reading);
  one that escapes, a broken one, or a non-regular file (FIFO, device) is
  reported as that item's error. Symlinked folders below a class folder
  are not descended into (no loops).
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, Optional, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
DEFAULT_MAX_PIXELS = 50_000_000  # a 50 MP camera frame; far below what a Jetson Nano can hold as RGB
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # the largest sane encoded photo; bounds the read before decoding
DEFAULT_BATCH_SIZE = 32  # a common engine max batch; a few MB of float32 at 224×224
_NORMALIZE_CHUNK = 1 << 18  # elements per in-place pass: 1 MiB of float32 stays in cache

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

Label = Optional[int]  # a runtime alias: typing's spelling, for Python 3.8
T = TypeVar("T")


class ImageError(JetfleetError):
    """One item cannot be used; ``str()`` says what is wrong with it (not where: the caller knows the name)."""


@dataclass(frozen=True)
class DecodeOptions:
    """Safety limits and orientation handling for untrusted image files."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # checked from the header, before pixels are decoded
    max_bytes: int = DEFAULT_MAX_BYTES  # checked before the file is read
    exif_transpose: bool = True  # upright camera photos; see the module docstring for the training caveat


DEFAULT_OPTIONS = DecodeOptions()


class Batch(NamedTuple):
    """Up to ``batch_size`` decoded items and the items skipped since the previous batch.

    ``images`` may have zero rows when a tail of items all failed: the
    errors are still delivered.
    """

    images: npt.NDArray[np.float32]  # (n, C, H, W), normalized
    names: list[str]
    labels: list[Label]
    errors: list[tuple[str, str]]  # (name, reason)


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


def _check_uint8_batch(images: np.ndarray, spec: PreprocessSpec) -> None:
    if images.dtype != np.uint8 or images.ndim != 4:
        raise JetfleetError(f"expected uint8 (N, C, H, W) images, got {images.dtype} with shape {images.shape}")
    expected = (spec.channels, *spec.input_size)
    if images.shape[1:] != expected:
        raise JetfleetError(f"images are {_dims(images.shape[1:])} but the model expects {_dims(expected)}")


def normalize_uint8(images: npt.NDArray[np.uint8], spec: PreprocessSpec) -> npt.NDArray[np.float32]:
    """uint8 (N, C, H, W) → float32 ``((x / 255) - mean) / std``, vectorized.

    The hot path for large test sets. Works in float32 only, in cache-sized
    chunks, in place: the same operations in the same order as the
    controller's torch code, so results are bit-identical to it.
    """
    _check_uint8_batch(images, spec)
    out = np.empty(images.shape, dtype=np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(1, -1, 1, 1)
    step = max(1, _NORMALIZE_CHUNK // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(images), step):
        part = out[start : start + step]
        np.copyto(part, images[start : start + step], casting="unsafe")
        part /= np.float32(255)
        part -= mean
        part /= std
    return out


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


# ----------------------------------------------------------------------------- batching


def _batched(
    items: Iterable[tuple[str, T, Label]],
    load: Callable[[T], npt.NDArray[np.uint8]],
    spec: PreprocessSpec,
    batch_size: int,
    errors: Iterable[tuple[str, str]] = (),
) -> Iterator[Batch]:
    """Decode lazily, ``batch_size`` good items at a time; a bad item becomes an error entry, not a stop."""
    if batch_size < 1:
        raise JetfleetError(f"batch size must be at least 1, got {batch_size}")
    pixels: list[npt.NDArray[np.uint8]] = []
    names: list[str] = []
    labels: list[Label] = []
    failed = list(errors)
    for name, source, label in items:
        try:
            pixels.append(load(source))
        except ImageError as exc:
            failed.append((name, str(exc)))
            continue
        names.append(name)
        labels.append(label)
        if len(pixels) == batch_size:
            yield _make_batch(pixels, names, labels, failed, spec)
            pixels, names, labels, failed = [], [], [], []
    if pixels or failed:
        yield _make_batch(pixels, names, labels, failed, spec)


def _make_batch(
    pixels: list[npt.NDArray[np.uint8]],
    names: list[str],
    labels: list[Label],
    failed: list[tuple[str, str]],
    spec: PreprocessSpec,
) -> Batch:
    shape = (len(pixels), spec.channels, *spec.input_size)
    stacked = np.stack(pixels) if pixels else np.empty(shape, dtype=np.uint8)
    return Batch(normalize_uint8(stacked, spec), names, labels, failed)


def iter_encoded(
    items: Sequence[tuple[str, bytes, Label]],
    spec: PreprocessSpec,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: DecodeOptions = DEFAULT_OPTIONS,
) -> Iterator[Batch]:
    """Batches of in-memory encoded images ``(name, bytes, label or None)``, in the given order."""
    return _batched(items, lambda data: to_uint8_chw(_decode(data, options), spec), spec, batch_size)


# ----------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class FolderItem:
    """One listed image: ``name`` is its POSIX path relative to the folder (what reports show)."""

    name: str
    path: Path
    label: Label


@dataclass(frozen=True)
class FolderInput:
    """The images of a folder, listed but not read; decode them with :func:`iter_folder`."""

    root: Path
    items: tuple[FolderItem, ...]
    labelled: bool  # class subfolders named after the model's labels
    refused: tuple[tuple[str, str], ...] = ()  # (name, reason): escaping symlinks, non-regular files

    def __len__(self) -> int:
        return len(self.items)


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not _is_hidden(path)


def _refusal(path: Path, real_root: Path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or a class ``folder``) may not be read as part of the folder, or None when it may."""
    try:
        target = path.resolve(strict=True)
        mode = target.stat().st_mode
    except FileNotFoundError:
        return "broken symlink"
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        return f"cannot resolve path ({exc})"
    if not target.is_relative_to(real_root):
        return f"symlink points outside the folder (to {target})"
    if folder and not stat.S_ISDIR(mode):
        return "not a folder"
    if not folder and not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def _list_files(folder: Path, recursive: bool) -> list[Path]:
    """Non-hidden image files; recursive walks do not follow symlinked folders (no loops)."""
    if not recursive:
        return [p for p in folder.iterdir() if _is_image_name(p) and not p.is_dir()]
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if _is_image_name(Path(f))]
    return found


def _class_folders(root: Path, spec: PreprocessSpec, entries: list[Path]) -> list[tuple[Path, int]]:
    """(folder, label index) for each class folder; every folder name must be a model label."""
    dirs = [p for p in entries if p.is_dir()]
    if not spec.labels:
        raise JetfleetError(
            f"{root} has class folders ({', '.join(d.name for d in dirs)}) but the model records no label names",
            hint="pass a flat folder of images to classify them without labels",
        )
    unknown = sorted(d.name for d in dirs if d.name not in spec.labels)
    if unknown:
        raise JetfleetError(
            f"{root} has class folders that are not labels of the model: {', '.join(unknown)}",
            hint=f"the model's labels are: {', '.join(spec.labels)}",
        )
    loose = sorted(p.name for p in entries if _is_image_name(p) and not p.is_dir())
    if loose:
        raise JetfleetError(
            f"{root} mixes class folders with images at its top level: {', '.join(loose[:5])}",
            hint="move the images into their class folder, or classify them from a separate flat folder",
        )
    return [(d, spec.labels.index(d.name)) for d in dirs]


def load_folder(root: Path, spec: PreprocessSpec) -> FolderInput:
    """List ``root/<label>/**/<image>`` (labelled) or ``root/<image>`` (unlabelled), sorted by name.

    Only the listing happens here, so a folder of any size costs a few
    bytes per file; pixels are read batch by batch in :func:`iter_folder`.
    """
    root = Path(root)
    if not root.is_dir():
        raise JetfleetError(f"image folder {root} does not exist or is not a folder")
    real_root = root.resolve()
    entries = [p for p in root.iterdir() if not _is_hidden(p)]
    labelled = any(p.is_dir() for p in entries)
    sources = _class_folders(root, spec, entries) if labelled else [(root, None)]
    items: list[FolderItem] = []
    refused: list[tuple[str, str]] = []
    for folder, label in sources:
        reason = _refusal(folder, real_root, folder=True) if folder is not root else None
        if reason:
            refused.append((folder.relative_to(root).as_posix() + "/", reason))
            continue
        for path in _list_files(folder, recursive=labelled):
            name = path.relative_to(root).as_posix()
            reason = _refusal(path, real_root)
            if reason:
                refused.append((name, reason))
            else:
                items.append(FolderItem(name, path, label))
    items.sort(key=lambda item: item.name)
    return FolderInput(root, tuple(items), labelled, tuple(sorted(refused)))


def iter_folder(
    folder: FolderInput,
    spec: PreprocessSpec,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: DecodeOptions = DEFAULT_OPTIONS,
) -> Iterator[Batch]:
    """Batches of the folder's images, read lazily; the refused items come as errors of the first batch."""
    real_root = folder.root.resolve()

    def load(path: Path) -> npt.NDArray[np.uint8]:
        reason = _refusal(path, real_root)  # again: the folder may have changed since listing
        if reason:
            raise ImageError(reason)
        return to_uint8_chw(_decode(path, options), spec)

    triples = ((item.name, item.path, item.label) for item in folder.items)
    return _batched(triples, load, spec, batch_size, folder.refused)


# ----------------------------------------------------------------------------- test sets


def _dims(shape: Sequence[int]) -> str:
    return "×".join(str(int(v)) for v in shape)


@dataclass(frozen=True)
class TestSet:
    """A registry test set: uint8 images already at the model's input size, and their labels."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    images: npt.NDArray[np.uint8]  # (N, C, H, W)
    labels: npt.NDArray[np.int64]  # (N,)
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def check(self, spec: PreprocessSpec) -> None:
        """Refuse a test set the model cannot be scored on, naming the mismatch."""
        have, want = self.images.shape[1:], (spec.channels, *spec.input_size)
        if tuple(have) != want:
            raise JetfleetError(f"test set is {_dims(have)} but the model expects {_dims(want)}")
        if spec.labels and self.label_names and self.label_names != spec.labels:
            raise JetfleetError(
                f"test set labels ({', '.join(self.label_names)}) differ from the model's ({', '.join(spec.labels)})"
            )
        classes = len(self.label_names) or spec.num_classes
        if classes and len(self.labels) and int(self.labels.max()) >= classes:
            raise JetfleetError(f"test set has label {int(self.labels.max())} but only {classes} classes")

    def batches(
        self, spec: PreprocessSpec, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
        """(normalized images, labels) slices, so float32 copies of a large set never coexist."""
        self.check(spec)
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield normalize_uint8(self.images[start:stop], spec), self.labels[start:stop]


_TEST_SET_KEYS = ("images", "labels", "label_names")


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """Open ``path`` as an npz archive, refusing anything that would need pickle (it could run code)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise JetfleetError(
                f"test set {path} is not an npz archive; loading it would need pickle, which is refused for safety"
            ) from exc
        raise JetfleetError(f"test set {path} is not a valid npz archive ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise JetfleetError(f"cannot read test set {path} ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise JetfleetError(f"test set {path} is a single .npy array, not an npz archive")
    return archive


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The three arrays of a test-set archive; object (pickled) arrays are refused."""
    with _open_npz(path) as archive:
        missing = [k for k in _TEST_SET_KEYS if k not in archive.files]
        if missing:
            raise JetfleetError(f"test set {path} lacks {', '.join(repr(k) for k in missing)}")
        try:
            return {k: archive[k] for k in _TEST_SET_KEYS}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise JetfleetError(
                    f"test set {path} holds object arrays, which need pickle; refused for safety"
                ) from exc
            raise JetfleetError(f"test set {path} has a malformed array ({exc})") from exc
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise JetfleetError(f"test set {path} is a damaged archive ({type(exc).__name__}: {exc})") from exc


def _validated(path: Path, arrays: dict[str, np.ndarray]) -> TestSet:
    images, labels, names = arrays["images"], arrays["labels"], arrays["label_names"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise JetfleetError(
            f"test set {path}: images must be uint8 (N, C, H, W) with C 1 or 3, got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise JetfleetError(f"test set {path}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise JetfleetError(f"test set {path}: {len(images)} images but {len(labels)} labels")
    if names.size and (names.ndim != 1 or names.dtype.kind != "U"):
        raise JetfleetError(f"test set {path}: label_names must be a 1-D string array, got {names.dtype}")
    if len(labels) and int(labels.min()) < 0:
        raise JetfleetError(f"test set {path}: negative label {int(labels.min())}")
    label_names = tuple(str(n) for n in names) if names.size else ()
    if label_names and len(labels) and int(labels.max()) >= len(label_names):
        raise JetfleetError(f"test set {path}: label {int(labels.max())} but only {len(label_names)} label names")
    return TestSet(np.ascontiguousarray(images), labels.astype(np.int64, copy=False), label_names)


def load_test_set(path: Path, spec: PreprocessSpec | None = None) -> TestSet:
    """Read the registry's ``test-set`` npz (see ``controller.registry.optimize._save_npz``).

    With ``spec``, also check that the set fits the model (geometry, labels).
    """
    test_set = _validated(Path(path), _read_npz(Path(path)))
    if spec is not None:
        test_set.check(spec)
    return test_set
