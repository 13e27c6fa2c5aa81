"""One pass over an image folder: its classes, and each file's size and mode from the header alone.

``train`` uses the scan to choose defaults that fit the data (see
``data/defaults.py``); ``jetfleet data inspect`` prints it. Reading headers
costs a fraction of a decode (Pillow parses only the first bytes), so it is
cheap enough to run at the start of every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data.pool import chunked, parallel_map

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})  # one channel of intensity
EXIF_ORIENTATION = 0x0112
ROTATED_90 = (5, 6, 7, 8)  # EXIF orientations that swap width and height once applied
IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class FileInfo:
    """What a header says about one file; ``error`` is set (and the rest zero) when it cannot be read."""

    width: int
    height: int
    mode: str
    error: str | None = None

    @property
    def shorter_side(self) -> int:
        return min(self.width, self.height)


def read_header(path: Path) -> FileInfo:
    """Size (as displayed, EXIF orientation applied) and mode, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(EXIF_ORIENTATION, 1) in ROTATED_90:
                width, height = height, width
            return FileInfo(width, height, img.mode)
    except IMAGE_ERRORS as exc:
        return FileInfo(0, 0, "", describe_error(exc))


def describe_error(exc: BaseException) -> str:
    """A short reason for a bad image, without the path (the caller names the file)."""
    text = str(exc).split(" [Errno")[0]
    return text if text else type(exc).__name__


def _read_headers(paths: Sequence[Path]) -> list[FileInfo]:
    return [read_header(p) for p in paths]


def read_headers(paths: Sequence[Path], workers: int) -> list[FileInfo]:
    """:func:`read_header` for every path, on ``workers`` processes; results in order."""
    out: list[FileInfo] = []
    for infos in parallel_map(_read_headers, chunked(paths, workers, 2048), workers):
        out.extend(infos)
    return out


@dataclass
class FolderScan:
    """``root/<class>/<image>``: the samples in a stable order and what each header said."""

    root: Path
    classes: tuple[str, ...]
    samples: list[tuple[Path, int]]
    infos: list[FileInfo] = field(default_factory=list)

    @property
    def unreadable(self) -> list[tuple[Path, str]]:
        return [(p, i.error) for (p, _), i in zip(self.samples, self.infos, strict=True) if i.error is not None]

    def readable(self) -> list[FileInfo]:
        return [i for i in self.infos if i.error is None]

    def class_counts(self) -> dict[str, int]:
        counts = Counter(t for _, t in self.samples)
        return {name: counts[i] for i, name in enumerate(self.classes)}

    def without(self, bad: set[Path]) -> FolderScan:
        """The same scan minus the files in ``bad`` (``--skip-bad``)."""
        keep = [k for k, (p, _) in enumerate(self.samples) if p not in bad]
        return FolderScan(self.root, self.classes, [self.samples[k] for k in keep], [self.infos[k] for k in keep])


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise JetfleetError(f"image folder {root} does not exist")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    """Image files under ``folder``, leaving out hidden ones (macOS ``._x.png``, ``.ipynb_checkpoints/``)."""
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and f.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def list_folder(root: Path, labels: tuple[str, ...] | None = None) -> FolderScan:
    """The class folders under ``root`` and their images; with ``labels``, ids follow those names.

    An empty class folder is an error rather than a silently missing class:
    a model trained without it would still be asked to predict it, or the
    label ids of the train and test folders would disagree.
    """
    dirs = _class_dirs(root)
    files = {d.name: _images_in(d) for d in dirs}
    if not any(files.values()):
        raise JetfleetError(
            f"image folder {root} has no classes",
            hint=f"expected {root}/<class name>/<image>.png with at least one image per class",
        )
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise JetfleetError(
            f"class folder {root / empty[0]} has no images"
            + (f" (nor {len(empty) - 1} more: {', '.join(empty[1:4])})" if len(empty) > 1 else ""),
            hint=f"add images or remove the folder; images are files ending in {', '.join(IMAGE_EXTENSIONS)}",
        )
    classes = labels if labels is not None else tuple(files)
    unknown = sorted(set(files) - set(classes))
    if unknown:
        raise JetfleetError(f"{root} has classes not in the training folder: {', '.join(unknown)}")
    samples = [(f, classes.index(name)) for name, found in files.items() for f in found]
    return FolderScan(root, classes, samples)


def scan_folder(root: Path, labels: tuple[str, ...] | None = None, workers: int = 0) -> FolderScan:
    """:func:`list_folder` plus every file's header."""
    scan = list_folder(root, labels)
    scan.infos = read_headers([p for p, _ in scan.samples], workers)
    return scan


def require_classes(scan: FolderScan) -> None:
    """A classifier needs at least two classes; one means the folder layout is off by a level."""
    if len(scan.classes) < 2:
        only = scan.classes[0]
        raise JetfleetError(
            f"{scan.root} has a single class ({only!r}); a classifier needs at least two",
            hint=f"point at the folder holding the class folders (is {scan.root / only} itself the dataset?)",
        )


def summarize_sizes(infos: Sequence[FileInfo]) -> dict[str, object]:
    """Sizes and modes of the readable images, as ``data inspect`` prints them."""
    sizes = Counter((i.width, i.height) for i in infos)
    sides = sorted(i.shorter_side for i in infos)
    return {
        "images": len(infos),
        "distinct_sizes": len(sizes),
        "common_sizes": [{"width": w, "height": h, "count": n} for (w, h), n in sizes.most_common(5)],
        "shorter_side": {"min": sides[0], "median": sides[len(sides) // 2], "max": sides[-1]} if sides else None,
        "modes": dict(Counter(i.mode for i in infos).most_common()),
    }
