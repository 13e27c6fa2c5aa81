"""Named datasets: ``digits`` (embedded), ``cifar10``, ``imagenet`` and ``folder:PATH``.

Nothing here downloads unless the user passes ``--download`` (CIFAR-10
only); a missing dataset is a one-line error saying where to put it.

Splits: every dataset yields train / val / test. Validation drives early
stopping and the best checkpoint, so it is never the set the final accuracy
is reported on:

- digits and custom folders without their own splits: stratified 70/10/20.
- cifar10: val is 10% of the training batches, test is ``test_batch``.
- imagenet and folders with ``train/`` + ``val/``: val is 10% of ``train/``,
  test is ``val/`` (ImageNet's labelled evaluation set).

Image folders (``folder:`` and ``imagenet``) are scanned once (classes,
sizes, modes: ``data/scan.py``), get defaults fitted to what the scan found
(``data/defaults.py``), and are decoded once into a cached uint8 array
(``data/decoded.py``), so every split of every dataset is a ``TensorSplit``.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.data.augment import AugmentConfig
from jetfleet.controller.data.decoded import Decoded, decode_images
from jetfleet.controller.data.defaults import DataDefaults, choose_defaults, default_augment
from jetfleet.controller.data.scan import FolderScan, require_classes, scan_folder
from jetfleet.controller.data.splits import Split, TensorSplit, load_image, stratified_split

MAX_LISTED_BAD = 5  # unreadable files named in the error; the rest are counted
STATS_SAMPLE = 4096  # images a folder's mean/std is estimated on
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_SEED = 0  # fixed: every run of a dataset is scored on the same held-out images


@dataclass(frozen=True)
class DataOptions:
    """Where a dataset lives and how its images are shaped; defaults suit a first run."""

    root: Path = Path("data")  # parent folder of cifar-10-batches-py/, imagenet train/ val/
    download: bool = False  # only CIFAR-10 can be fetched, and only when asked
    image_size: int | None = None  # None: the dataset's natural size (8, 32; folders: from the data)
    channels: int | None = None  # image folders: None = 1 when every image is grayscale, else 3
    val_fraction: float = 0.1
    test_fraction: float = 0.2  # only where the dataset has no test split of its own
    workers: int = 2  # processes decoding an image folder (its cache is built once)
    skip_bad: bool = False  # train without unreadable images instead of stopping
    cache_dir: Path | None = None  # decoded folders; None: $JETFLEET_HOME/cache/decoded
    log: Callable[[str], None] = field(default=print, compare=False, repr=False)  # progress and notes


@dataclass
class DatasetBundle:
    """Three splits plus everything needed to preprocess and report on them."""

    name: str
    train: Split
    val: Split
    test: Split
    labels: tuple[str, ...]
    channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_augment: AugmentConfig
    augment_reason: str = "the dataset's standard recipe"
    summary_line: str = ""  # the one-line form of `jetfleet data inspect`, printed at the start of a run
    decode_seconds: float = 0.0  # time spent decoding image files (0: in memory already, or cached)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """sha256 over every split's content (in-memory) or file listing (folders) and the labels.

        Recorded as lineage, so two versions trained "on cifar10" can be told
        apart when the data under that name changed.
        """
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            split.fingerprint(digest)
            digest.update(b"|")
        digest.update("\0".join(self.labels).encode())
        return digest.hexdigest()

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(
            input_size=(self.input_size, self.input_size),
            channels=self.channels,
            mean=self.mean,
            std=self.std,
            labels=self.labels,
        )


STATS_CHUNK = 256  # images converted to float64 at a time: bounded memory at 224 px (~300 MB)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of uint8 (N, C, H, W) images scaled to [0, 1], a chunk at a time."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(STATS_CHUNK):
        x = chunk.double().div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def _three_way(split: Split, targets: np.ndarray, opts: DataOptions) -> tuple[Split, Split, Split]:
    train_idx, val_idx, test_idx = stratified_split(targets, (opts.val_fraction, opts.test_fraction), SPLIT_SEED)
    return split.subset(train_idx), split.subset(val_idx), split.subset(test_idx)


def _train_val(split: Split, targets: np.ndarray, opts: DataOptions) -> tuple[Split, Split]:
    train_idx, val_idx = stratified_split(targets, (opts.val_fraction,), SPLIT_SEED)
    return split.subset(train_idx), split.subset(val_idx)


def load_digits_dataset(opts: DataOptions) -> DatasetBundle:
    """scikit-learn's 1,797 real 8×8 handwritten digits, bundled with the package."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.from_numpy(np.rint(raw.images * (255.0 / 16.0)).astype(np.uint8))[:, None]
    if opts.image_size and opts.image_size != 8:
        images = _resize_uint8(images, opts.image_size)
    targets = torch.from_numpy(raw.target.astype(np.int64))
    train, val, test = _three_way(TensorSplit(images, targets), raw.target, opts)
    assert isinstance(train, TensorSplit)
    mean, std = _channel_stats(train.images)
    return DatasetBundle(
        name="digits",
        train=train,
        val=val,
        test=test,
        labels=tuple(str(i) for i in range(10)),
        channels=1,
        input_size=images.shape[-1],
        mean=mean,
        std=std,
        # 8×8 glyphs have no pixels to spare: a 1-pixel shift moves an eighth of
        # the image, and in 10 epochs every augmentation we tried cost accuracy
        # (98.9% plain vs 97.2% with crop+rotation, mean of 3 seeds).
        default_augment=AugmentConfig(),
        augment_reason="none: on 8×8 glyphs every augmentation tried cost accuracy",
        summary_line=f"digits: {len(raw.target):,} images 8×8 grayscale, 10 classes (embedded)",
    )


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickle CIFAR-10 batches while refusing every class but numpy arrays.

    The format is pickle by definition; restricting globals means a doctored
    file cannot run code, only fail to load.
    """

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as fh:
            data = _CifarUnpickler(fh, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise JetfleetError(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise JetfleetError(f"{path} is not a CIFAR-10 batch (expected a dict)")
    return data


def _cifar_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_cifar_batch(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise JetfleetError(f"{path} is not a CIFAR-10 batch: {exc!r}") from exc
    if len(data) != len(labels):
        raise JetfleetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _find_cifar_dir(opts: DataOptions) -> Path:
    for candidate in (opts.root / "cifar-10-batches-py", opts.root):
        if (candidate / "batches.meta").is_file():
            return candidate
    if opts.download:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(opts.root), train=True, download=True)
        return opts.root / "cifar-10-batches-py"
    raise JetfleetError(
        f"CIFAR-10 not found in {opts.root}/cifar-10-batches-py",
        hint="extract cifar-10-python.tar.gz there, point --data-root at its parent, or add --download",
    )


def load_cifar10(opts: DataOptions) -> DatasetBundle:
    """CIFAR-10 from its standard python-pickle batches (``cifar-10-batches-py``)."""
    folder = _find_cifar_dir(opts)
    meta = _read_cifar_batch(folder / "batches.meta")
    labels = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])
    parts = [_cifar_arrays(folder / f"data_batch_{i}") for i in range(1, 6)]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _cifar_arrays(folder / "test_batch")
    full = TensorSplit(torch.from_numpy(train_x), torch.from_numpy(train_y))
    train, val = _train_val(full, train_y, opts)
    test = TensorSplit(torch.from_numpy(test_x), torch.from_numpy(test_y))
    if opts.image_size and opts.image_size != 32:
        train, val, test = (
            TensorSplit(_resize_uint8(s.images, opts.image_size), s.targets)  # type: ignore[union-attr]
            for s in (train, val, test)
        )
    return DatasetBundle(
        name="cifar10",
        train=train,
        val=val,
        test=test,
        labels=labels,
        channels=3,
        input_size=opts.image_size or 32,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        default_augment=AugmentConfig(crop_padding=4, hflip=True),
        augment_reason="CIFAR-10's standard recipe: 4 px padded crops and flips (its classes are mirror-safe)",
        summary_line=f"cifar10: {len(train_y) + len(test_y):,} images 32×32 RGB, {len(labels)} classes",
    )


@dataclass(frozen=True)
class FolderLayout:
    """Where an image-folder dataset's splits are: ``train`` always, ``test`` when it has its own."""

    name: str
    train: Path
    test: Path | None  # None: val and test are cut from ``train``
    imagenet: bool = False


def folder_layout(name: str, opts: DataOptions) -> FolderLayout:
    """``imagenet`` or ``folder:PATH`` → the folders holding its class folders; a clear error if absent."""
    if name.lower() == "imagenet":
        root = opts.root / "imagenet" if (opts.root / "imagenet" / "train").is_dir() else opts.root
        if not (root / "train").is_dir() or not (root / "val").is_dir():
            raise JetfleetError(
                f"ImageNet not found: {root} needs train/ and val/ class folders",
                hint="arrange it as <root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG and pass --data-root",
            )
        return FolderLayout("imagenet", root / "train", root / "val", imagenet=True)
    root = Path(name.removeprefix("folder:")).expanduser()
    if not root.is_dir():
        raise JetfleetError(f"dataset folder {root} does not exist", hint="pass folder:PATH with an existing folder")
    if (root / "train").is_dir() and (root / "val").is_dir():
        test = root / "test" if (root / "test").is_dir() else root / "val"
        return FolderLayout(f"folder:{root}", root / "train", test)
    return FolderLayout(f"folder:{root}", root, None)


def scan_layout(layout: FolderLayout, workers: int) -> tuple[FolderScan, FolderScan | None]:
    """Scan the train folder (at least two classes) and the test folder against its class names."""
    train = scan_folder(layout.train, None, workers)
    require_classes(train)
    test = scan_folder(layout.test, train.classes, workers) if layout.test is not None else None
    readable = train.readable()
    if not readable:
        raise JetfleetError(f"no image in {layout.train} can be read", hint="run `jetfleet data inspect` on it")
    return train, test


def folder_defaults(train: FolderScan) -> DataDefaults:
    return choose_defaults(train.readable())


def _bad_files_error(bad: list[tuple[Path, str]]) -> JetfleetError:
    listed = "; ".join(f"{path} ({why})" for path, why in bad[:MAX_LISTED_BAD])
    more = f" and {len(bad) - MAX_LISTED_BAD} more" if len(bad) > MAX_LISTED_BAD else ""
    return JetfleetError(
        f"{len(bad)} unreadable image(s): {listed}{more}",
        hint="fix or remove them, or pass --skip-bad to train without them (`jetfleet data inspect` lists all)",
    )


def _decode_scan(scan: FolderScan, size: int, channels: int, opts: DataOptions) -> tuple[Decoded, TensorSplit]:
    from jetfleet.controller.home import decoded_cache_dir

    paths = [p for p, _ in scan.samples]
    decoded = decode_images(paths, size, channels, opts.cache_dir or decoded_cache_dir(), opts.workers, opts.log)
    targets = torch.tensor([t for _, t in scan.samples], dtype=torch.long)
    split = TensorSplit(decoded.images, targets, torch.arange(len(paths)), decoded.key, decoded.mapped)
    return decoded, split


def _without_bad(split: TensorSplit, decoded: Decoded) -> TensorSplit:
    """``split`` minus the rows that failed to decode.

    Splits are cut over every listed file first and the bad rows dropped
    after, so a file that breaks (or is fixed) never moves another file into
    a different split: the test set stays the test set.
    """
    if not decoded.bad:
        return split
    assert split.rows is not None
    keep = [i for i, row in enumerate(split.rows.tolist()) if row not in decoded.bad]
    return split.subset(np.asarray(keep, dtype=np.int64))


def _bad_of(scan: FolderScan, decoded: Decoded) -> list[tuple[Path, str]]:
    return [(scan.samples[row][0], why) for row, why in sorted(decoded.bad.items())]


def _folder_stats(split: TensorSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalization of a custom dataset, measured on (an evenly spaced sample of) its training split."""
    idx = torch.linspace(0, len(split) - 1, min(len(split), STATS_SAMPLE)).round().long().unique()
    return _channel_stats(split.pixels(idx))


def _imbalance(counts: dict[str, int]) -> str:
    low, high = min(counts.values()), max(counts.values())
    return f"{len(counts)} classes, {low:,}–{high:,} images each (imbalance {high / max(low, 1):.1f}×)"


def summary_line(layout: FolderLayout, train: FolderScan, size: int, channels: int, reasons: list[str]) -> str:
    sizes = {(i.width, i.height) for i in train.readable()}
    shape = "×".join(map(str, next(iter(sizes)))) if len(sizes) == 1 else f"{len(sizes)} sizes"
    modes = "/".join(sorted({i.mode for i in train.readable()}))
    return (
        f"{layout.name}: {len(train.samples):,} training images, {_imbalance(train.class_counts())}, "
        f"{shape} {modes} → input {size}×{size}×{channels} ({'; '.join(reasons)})"
    )


def load_folders(name: str, opts: DataOptions) -> DatasetBundle:
    """An image-folder dataset: scanned, defaults fitted, decoded once (cached), split three ways."""
    layout = folder_layout(name, opts)
    train_scan, test_scan = scan_layout(layout, opts.workers)
    defaults = folder_defaults(train_scan)
    size = opts.image_size or defaults.image_size
    channels = opts.channels or defaults.channels
    reasons = [
        "size given" if opts.image_size else defaults.size_reason,
        "channels given" if opts.channels else defaults.channels_reason,
    ]
    decoded, full = _decode_scan(train_scan, size, channels, opts)
    bad, seconds = _bad_of(train_scan, decoded), decoded.seconds
    if test_scan is not None:
        test_decoded, test = _decode_scan(test_scan, size, channels, opts)
        bad += _bad_of(test_scan, test_decoded)
        seconds += test_decoded.seconds
        test = _without_bad(test, test_decoded)
        train, val = _train_val(full, full.targets.numpy(), opts)
    else:
        train, val, test = _three_way(full, full.targets.numpy(), opts)
        test = _without_bad(test, decoded)
    train, val = _without_bad(train, decoded), _without_bad(val, decoded)
    del full, decoded  # the splits hold what they need; drop the whole decoded array before training
    if bad and not opts.skip_bad:
        raise _bad_files_error(bad)
    if bad:
        opts.log(f"--skip-bad: training without {len(bad)} unreadable image(s): {_bad_files_error(bad).args[0]}")
    if layout.imagenet and channels == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = _folder_stats(train)
    augment, augment_reason = default_augment(size)
    return DatasetBundle(
        name=layout.name,
        train=train,
        val=val,
        test=test,
        labels=train_scan.classes,
        channels=channels,
        input_size=size,
        mean=mean,
        std=std,
        default_augment=augment,
        augment_reason=augment_reason,
        summary_line=summary_line(layout, train_scan, size, channels, reasons),
        decode_seconds=seconds,
    )


DATASETS: dict[str, Callable[[DataOptions], DatasetBundle]] = {
    "digits": load_digits_dataset,
    "cifar10": load_cifar10,
    "imagenet": lambda opts: load_folders("imagenet", opts),
}


def load_dataset(name: str, opts: DataOptions | None = None) -> DatasetBundle:
    """Load a dataset by CLI name: ``digits``, ``cifar10``, ``imagenet`` or ``folder:PATH``."""
    opts = opts or DataOptions()
    if opts.channels not in (None, 1, 3):
        raise JetfleetError(f"--channels must be 1 or 3, got {opts.channels}")
    if name.startswith("folder:"):
        return load_folders(name, opts)
    key = name.lower().replace("-", "")
    if key not in DATASETS:
        raise JetfleetError(f"unknown dataset {name!r}", hint=f"choose one of: {', '.join(DATASETS)}, folder:PATH")
    return DATASETS[key](opts)


__all__ = ["DataOptions", "DatasetBundle", "FolderLayout", "folder_layout", "load_dataset", "load_image"]
