"""Images on a device → the exact float32 NCHW batches the model was trained on.

The agent has no torch, so it rebuilds the controller's input pipeline with
Pillow and numpy alone. The recipe is the controller's
``jetfleet.controller.data.splits.load_image`` followed by the normalization
of ``controller.registry.optimize._materialize``, step for step, so that the
same file gives bit-identical inputs on both sides (a test checks this):

1. decode the first frame; convert to ``"L"`` or ``"RGB"`` (uint8);
2. bilinear resize so the image covers the input size;
3. centre crop;
4. ``((x / 255) - mean) / std`` in float32, in that order (the operations
   torch performed, hence the same rounding): :func:`normalize_uint8`.

Steps 1-3 need Pillow and live in :mod:`jetfleet.agent.decode`, with the
decisions about hostile and unusual files. This module needs numpy only
and never imports Pillow: registry test sets (:func:`load_test_set`) are
already uint8 at the model's input size, so serving a model and scoring its
test set, the agent's steady state, leave Pillow out of the process. It also
holds what the decoders share: :class:`Batch`, batching with per-item
errors, and folder listing (:func:`load_folder`, which reads no pixels).

Decisions where the controller gives no answer:

- **Folders.** Hidden files and folders are skipped; only the image
  extensions of :data:`IMAGE_EXTENSIONS` are listed. A symlink is followed only when its target
  lies inside the folder (checked when listing and again when reading);
  one that escapes, a broken one, or a non-regular file (FIFO, device) is
  reported as that item's error. Symlinked folders below a class folder
  are not descended into (no loops).
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, Optional, TypeVar

import numpy as np
import numpy.typing as npt

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_BATCH_SIZE = 32  # a common engine max batch; a few MB of float32 at 224×224
_NORMALIZE_CHUNK = 1 << 18  # elements per in-place pass: 1 MiB of float32 stays in cache

Label = Optional[int]  # a runtime alias: typing's spelling, for Python 3.8
T = TypeVar("T")


class ImageError(JetfleetError):
    """One item cannot be used; ``str()`` says what is wrong with it (not where: the caller knows the name)."""


class Batch(NamedTuple):
    """Up to ``batch_size`` decoded items and the items skipped since the previous batch.

    ``images`` may have zero rows when a tail of items all failed: the
    errors are still delivered.
    """

    images: npt.NDArray[np.float32]  # (n, C, H, W), normalized
    names: list[str]
    labels: list[Label]
    errors: list[tuple[str, str]]  # (name, reason)


# ----------------------------------------------------------------------------- normalization


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


# ----------------------------------------------------------------------------- batching


def batched(
    items: Iterable[tuple[str, T, Label]],
    load: Callable[[T], npt.NDArray[np.uint8]],
    spec: PreprocessSpec,
    batch_size: int,
    errors: Iterable[tuple[str, str]] = (),
) -> Iterator[Batch]:
    """Decode lazily, ``batch_size`` good items at a time; a bad item becomes an error entry, not a stop.

    ``load`` turns one source into uint8 (C, H, W) pixels or raises :class:`ImageError`
    (the decoders of :mod:`jetfleet.agent.decode`).
    """
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


def refusal(path: Path, real_root: Path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or a class ``folder``) may not be read as part of the folder, or None when it may.

    ``real_root`` is the folder, resolved. Asked when listing and again before reading each file.
    """
    try:
        target = path.resolve(strict=True)
        mode = target.stat().st_mode
    except FileNotFoundError:
        return "broken symlink"
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        return f"cannot resolve path ({exc})"
    if target != real_root and real_root not in target.parents:  # Path.is_relative_to is 3.9+
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
        reason = refusal(folder, real_root, folder=True) if folder is not root else None
        if reason:
            refused.append((folder.relative_to(root).as_posix() + "/", reason))
            continue
        for path in _list_files(folder, recursive=labelled):
            name = path.relative_to(root).as_posix()
            reason = refusal(path, real_root)
            if reason:
                refused.append((name, reason))
            else:
                items.append(FolderItem(name, path, label))
    items.sort(key=lambda item: item.name)
    return FolderInput(root, tuple(items), labelled, tuple(sorted(refused)))


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
