"""``jetfleet data inspect``: what a dataset holds and what ``train`` would make of it, before training.

It reads every file in full, once, on ``--workers`` processes: a content
hash (sha256 of the file's bytes, or of the pixels for CIFAR-10 and
digits) finds the same image in two splits, which inflates test accuracy,
and a full decode finds truncated files that a header read would miss.
The report lists class counts and imbalance, sizes and modes, duplicates
across splits, unreadable files and the defaults ``train`` would choose;
``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.common.progress import ProgressLog
from jetfleet.controller.data.datasets import (
    SPLIT_SEED,
    DataOptions,
    FolderLayout,
    folder_defaults,
    folder_layout,
    load_dataset,
    scan_layout,
    summary_line,
)
from jetfleet.controller.data.defaults import default_augment, describe_augment
from jetfleet.controller.data.pool import chunked, parallel_map
from jetfleet.controller.data.scan import IMAGE_ERRORS, FileInfo, FolderScan, describe_error, summarize_sizes
from jetfleet.controller.data.splits import stratified_split

MAX_EXAMPLES = 10  # duplicate groups and unreadable files listed by name; all are counted


@dataclass
class SplitCounts:
    name: str
    images: int
    classes: dict[str, int]

    @property
    def imbalance(self) -> float:
        counts = [c for c in self.classes.values()]
        return max(counts) / max(1, min(counts)) if counts else 0.0


@dataclass
class InspectReport:
    """Everything ``data inspect`` found; :meth:`to_dict` is the ``--json`` document."""

    dataset: str
    layout: dict[str, str]
    splits: list[SplitCounts]
    sizes: dict[str, Any]
    unreadable: list[dict[str, str]]
    duplicates: dict[str, Any]
    defaults: dict[str, Any]
    summary: str
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for split, counts in zip(d["splits"], self.splits, strict=True):
            split["imbalance"] = round(counts.imbalance, 3)
        return d


# -- reading every file (in worker processes) ---------------------------------------


def check_file(path: Path) -> tuple[str, FileInfo]:
    """sha256 of the bytes, and size/mode after a full decode (a truncated file fails here)."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        return "", FileInfo(0, 0, "", describe_error(exc))
    digest = hashlib.sha256(data).hexdigest()
    try:
        import io

        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
            return digest, FileInfo(width, height, img.mode)
    except IMAGE_ERRORS as exc:
        return digest, FileInfo(0, 0, "", describe_error(exc))


def _check_files(paths: Sequence[Path]) -> list[tuple[str, FileInfo]]:
    return [check_file(p) for p in paths]


def check_files(paths: Sequence[Path], workers: int, log: Any) -> list[tuple[str, FileInfo]]:
    out: list[tuple[str, FileInfo]] = []
    progress = ProgressLog("reading", len(paths), log)
    for results in parallel_map(_check_files, chunked(paths, workers), workers):
        out.extend(results)
        progress.update(len(out))
    return out


# -- shared by both kinds of dataset -------------------------------------------------


def duplicates_across(hashes: dict[str, list[str]], names: dict[str, list[str]]) -> dict[str, Any]:
    """Content hashes seen in more than one split; ``names`` gives each item's name per split."""
    where: dict[str, set[str]] = defaultdict(set)
    first_name: dict[tuple[str, str], str] = {}
    within = 0
    for split, split_hashes in hashes.items():
        seen = Counter(h for h in split_hashes if h)
        within += sum(n - 1 for n in seen.values())
        for h, name in zip(split_hashes, names[split], strict=True):
            if h:
                where[h].add(split)
                first_name.setdefault((h, split), name)
    groups = [h for h, splits in where.items() if len(splits) > 1]
    examples = [{s: first_name[(h, s)] for s in sorted(where[h])} for h in groups[:MAX_EXAMPLES]]
    return {"across_splits": len(groups), "within_splits": within, "examples": examples}


def _defaults_dict(size: int, size_reason: str, channels: int, channels_reason: str, augment: Any, why: str) -> dict:
    return {
        "image_size": size,
        "size_reason": size_reason,
        "channels": channels,
        "channels_reason": channels_reason,
        "augment": describe_augment(augment),
        "augment_reason": why,
    }


# -- image folders ---------------------------------------------------------------------


def _assign_splits(layout: FolderLayout, train: FolderScan, test: FolderScan | None, opts: DataOptions) -> dict:
    """Which split each file lands in, cut exactly as ``load_dataset`` cuts it."""
    targets = np.asarray([t for _, t in train.samples])
    if test is not None:
        parts = stratified_split(targets, (opts.val_fraction,), SPLIT_SEED)
        names = {"train": parts[0], "val": parts[1]}
        out = {k: [train.samples[i][0] for i in idx] for k, idx in names.items()}
        out["test"] = [p for p, _ in test.samples]
        return out
    parts = stratified_split(targets, (opts.val_fraction, opts.test_fraction), SPLIT_SEED)
    return {k: [train.samples[i][0] for i in idx] for k, idx in zip(("train", "val", "test"), parts, strict=True)}


def inspect_folders(name: str, opts: DataOptions) -> InspectReport:
    layout = folder_layout(name, opts)
    train, test = scan_layout(layout, opts.workers)
    by_split = _assign_splits(layout, train, test, opts)
    label_of = {p: train.classes[t] for p, t in train.samples + (test.samples if test else [])}
    all_paths = [p for paths in by_split.values() for p in paths]
    checked = dict(zip(all_paths, check_files(all_paths, opts.workers, opts.log), strict=True))
    readable = [info for _, info in checked.values() if info.error is None]
    defaults = folder_defaults(train)  # from the headers, exactly as train chooses
    size, channels = opts.image_size or defaults.image_size, opts.channels or defaults.channels
    augment, why = default_augment(size)
    root = layout.train.parent if layout.test is not None else layout.train
    splits = [
        SplitCounts(s, len(paths), {c: Counter(label_of[p] for p in paths)[c] for c in train.classes})
        for s, paths in by_split.items()
    ]
    return InspectReport(
        dataset=layout.name,
        layout={"train": str(layout.train), "test": str(layout.test) if layout.test else "cut from train"},
        splits=splits,
        sizes=summarize_sizes(readable),
        unreadable=[{"path": str(p), "error": info.error} for p, (_, info) in checked.items() if info.error],
        duplicates=duplicates_across(
            {s: [checked[p][0] for p in paths] for s, paths in by_split.items()},
            {s: [str(p.relative_to(root)) for p in paths] for s, paths in by_split.items()},
        ),
        defaults=_defaults_dict(size, defaults.size_reason, channels, defaults.channels_reason, augment, why),
        summary=summary_line(layout, train, size, channels, [defaults.size_reason, defaults.channels_reason]),
        labels=list(train.classes),
    )


# -- in-memory datasets (digits, CIFAR-10) ----------------------------------------------


def inspect_tensors(name: str, opts: DataOptions) -> InspectReport:
    bundle = load_dataset(name, opts)
    splits, hashes, names = [], {}, {}
    for split_name in ("train", "val", "test"):
        split = getattr(bundle, split_name)
        pixels = split.pixels().numpy()
        counts = np.bincount(split.targets.numpy(), minlength=bundle.num_classes)
        splits.append(SplitCounts(split_name, len(split), dict(zip(bundle.labels, map(int, counts), strict=True))))
        hashes[split_name] = [hashlib.sha256(row.tobytes()).hexdigest() for row in pixels]
        names[split_name] = [f"{split_name}[{i}]" for i in range(len(split))]
    c, size = bundle.channels, bundle.input_size
    n = sum(s.images for s in splits)
    mode = "L" if c == 1 else "RGB"
    return InspectReport(
        dataset=bundle.name,
        layout={"train": "in memory", "test": "in memory"},
        splits=splits,
        sizes={
            "images": n,
            "distinct_sizes": 1,
            "common_sizes": [{"width": size, "height": size, "count": n}],
            "shorter_side": {"min": size, "median": size, "max": size},
            "modes": {mode: n},
        },
        unreadable=[],
        duplicates=duplicates_across(hashes, names),
        defaults=_defaults_dict(
            size, "the dataset's own", c, "the dataset's own", bundle.default_augment, bundle.augment_reason
        ),
        summary=bundle.summary_line,
        labels=list(bundle.labels),
    )


def inspect_dataset(name: str, opts: DataOptions) -> InspectReport:
    """The report for ``digits``, ``cifar10``, ``imagenet`` or ``folder:PATH``."""
    if name.startswith("folder:") or name.lower() == "imagenet":
        return inspect_folders(name, opts)
    return inspect_tensors(name, opts)
