"""Decode an image folder once, into a uint8 array cached on disk, shared by every epoch and later runs.

Decoding PNG/JPEG files every epoch is what made folder training 0.2× a
plain loop over tensors: on 2 cores the loader workers and the training
step fight for the same CPUs. Instead the files are decoded once, in
parallel on ``--workers`` processes, into ``(N, C, S, S)`` uint8 rows of a
``.npy`` file in the cache folder (``$JETFLEET_HOME/cache/decoded`` by
default). A run then holds it in memory when it fits in a quarter of the
available memory, or memory-maps it when it does not (ImageNet at 224 px is
190 GB), and batches are one index operation either way.

The cache is keyed by everything that changes its bytes: the recipe version,
size, channels and each file's path, size and modification time. Any change
to the folder gives a new key, and the stale entry for the same folder is
removed. A cache file is written under a temporary name and renamed into
place with its metadata only when complete, so a killed run never leaves a
half-written cache that a later run would use. A cache that fails its checks
(size, header, checksum) is rebuilt with a warning. A lock file serializes
two runs (or two DDP ranks) that want the same entry: the second one waits
and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from jetfleet.common.errors import JetfleetError
from jetfleet.common.progress import LOG_INTERVAL_S, ProgressLog
from jetfleet.controller.data.pool import chunked, parallel_map

RECIPE_VERSION = 1  # bump when load_image's pixels change, so no cache of the old recipe is reused
MEMORY_SHARE = 0.25  # a decoded split is held in RAM when it needs at most this share of available memory
FULL_CHECKSUM_BYTES = 64 << 20  # caches up to this size are hashed whole; larger ones by sampled rows
SAMPLED_ROWS = 256
PROGRESS_INTERVAL_S = LOG_INTERVAL_S  # a progress line at least this often while decoding
Log = Callable[[str], None]


@dataclass
class Decoded:
    """The decoded rows of a list of files; rows of unreadable files are zero and listed in ``bad``."""

    images: torch.Tensor  # uint8 (N, C, S, S)
    bad: dict[int, str]  # row → why the file could not be decoded
    key: str  # the cache key: names exactly these pixels
    seconds: float  # time spent decoding (0 when the cache was reused)
    from_cache: bool
    mapped: bool  # True when memory-mapped instead of held in RAM


def cache_key(paths: Sequence[Path], size: int, channels: int) -> str:
    """sha256 over the recipe, the geometry and each file's path, size and mtime (no pixel reads)."""
    digest = hashlib.sha256(f"jetfleet-decoded v{RECIPE_VERSION} {size} {channels}\n".encode())
    for path in paths:
        st = path.stat()
        # abspath, not resolve(): no syscall per file (resolve() alone costs ~55 s over ImageNet's 1.28 M)
        digest.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable), or total RAM where unknown."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo", encoding="ascii") as fh:
            line = next(row for row in fh if row.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def checksum(rows: npt.NDArray[np.uint8]) -> str:
    """sha256 of the whole array when small, else of evenly spaced rows (a torn or zeroed file fails it)."""
    digest = hashlib.sha256()
    if rows.nbytes <= FULL_CHECKSUM_BYTES:
        digest.update(np.ascontiguousarray(rows).tobytes())
    else:
        for i in np.linspace(0, len(rows) - 1, SAMPLED_ROWS).astype(np.int64):
            digest.update(np.ascontiguousarray(rows[i]).tobytes())
    return digest.hexdigest()


# -- decoding (runs in worker processes) -------------------------------------------


def _decode_rows(job: tuple[str, int, int, list[tuple[int, str]]]) -> list[tuple[int, str]]:
    """Decode files into rows of the memory-mapped array at ``job[0]``; return (row, reason) of failures."""
    from jetfleet.controller.data.splits import load_image

    array_path, size, channels, items = job
    rows = np.load(array_path, mmap_mode="r+")
    failed = []
    for row, path in items:
        try:
            rows[row] = load_image(Path(path), size, channels)
        except JetfleetError as exc:
            failed.append((row, str(exc).split(": ", 1)[-1]))
    rows.flush()
    return failed


def _decode_into(tmp: Path, paths: Sequence[Path], size: int, channels: int, workers: int, log: Log) -> dict[int, str]:
    """Fill the preallocated ``tmp`` array; progress to ``log`` every 30 s; returns the bad rows."""
    items = [(i, str(p)) for i, p in enumerate(paths)]
    jobs = [(str(tmp), size, channels, list(chunk)) for chunk in chunked(items, workers)]
    progress = ProgressLog("decoding", len(paths), log, interval_s=PROGRESS_INTERVAL_S)
    bad: dict[int, str] = {}
    done = 0
    for job, failed in zip(jobs, parallel_map(_decode_rows, jobs, workers), strict=True):
        bad.update(failed)
        done += len(job[3])
        progress.update(done)
    return bad


# -- the cache ---------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _entry(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key[:40]}.npy", cache_dir / f"{key[:40]}.json"


def _load_entry(array: Path, meta_path: Path, shape: tuple[int, ...], log: Log) -> tuple[np.ndarray, dict] | None:
    """The cached rows and metadata if both are present and sound; None (after saying why) otherwise."""
    if not array.exists() and not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        rows = np.load(array, mmap_mode="r")
        problem = ""
        if tuple(rows.shape) != shape or rows.dtype != np.uint8:
            problem = f"holds {rows.dtype} {tuple(rows.shape)}, expected uint8 {shape}"
        elif checksum(rows) != meta["checksum"]:
            problem = "checksum mismatch"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem:
        log(f"decoded cache {array} is corrupt: {problem}; rebuilding it")
        return None
    return rows, meta


def _remove_stale(cache_dir: Path, source: str, size: int, channels: int, keep: str) -> None:
    """Drop older entries of the same folder at the same geometry: their files changed."""
    for meta_path in cache_dir.glob("*.json"):
        if meta_path.stem == keep[:40]:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            meta = json.loads(meta_path.read_text())
            if (meta["source"], meta["size"], meta["channels"]) == (source, size, channels):
                meta_path.with_suffix(".npy").unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)


def _build_entry(
    cache_dir: Path, key: str, paths: Sequence[Path], size: int, channels: int, workers: int, log: Log
) -> tuple[dict[int, str], float]:
    array, meta_path = _entry(cache_dir, key)
    for leftover in cache_dir.glob(f".{array.stem}.*.tmp.npy"):  # a killed build's; we hold the key's lock
        leftover.unlink(missing_ok=True)
    tmp = array.with_name(f".{array.stem}.{os.getpid()}.tmp.npy")
    started = time.perf_counter()
    log(f"decoding {len(paths):,} images at {size}×{size}×{channels} on {max(1, workers)} process(es) → {array}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), channels, size, size))
    del out  # the workers write through their own mappings
    try:
        bad = _decode_into(tmp, paths, size, channels, workers, log)
        rows = np.load(tmp, mmap_mode="r")
        source = str(Path(os.path.commonpath([str(p.parent) for p in paths])).resolve()) if paths else ""
        meta = {
            "version": RECIPE_VERSION,
            "source": source,
            "size": size,
            "channels": channels,
            "count": len(paths),
            "bad": {str(k): v for k, v in bad.items()},
            "checksum": checksum(rows),
        }
        del rows
        os.replace(tmp, array)
        tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_meta, meta_path)  # last: an entry without metadata is never used
    finally:
        tmp.unlink(missing_ok=True)
    _remove_stale(cache_dir, source, size, channels, key)
    return bad, time.perf_counter() - started


def _as_tensor(rows: np.ndarray) -> tuple[torch.Tensor, bool]:
    if rows.nbytes <= MEMORY_SHARE * available_memory():
        return torch.from_numpy(np.array(rows)), False
    # copy-on-write: a writable view torch accepts without a warning; nothing is ever written back
    mapped = np.load(rows.filename, mmap_mode="c")  # type: ignore[attr-defined]
    return torch.from_numpy(mapped), True


def decode_images(
    paths: Sequence[Path], size: int, channels: int, cache_dir: Path, workers: int = 0, log: Log = print
) -> Decoded:
    """The decoded rows of ``paths``, from the cache when it holds them, else decoded now and cached."""
    key = cache_key(paths, size, channels)
    array, meta_path = _entry(cache_dir, key)
    shape = (len(paths), channels, size, size)
    with _locked(cache_dir / f"{key[:40]}.lock"):
        loaded = _load_entry(array, meta_path, shape, log)
        if loaded is not None:
            rows, meta = loaded
            bad, seconds, from_cache = {int(k): v for k, v in meta["bad"].items()}, 0.0, True
        else:
            bad, seconds = _build_entry(cache_dir, key, paths, size, channels, workers, log)
            rows, from_cache = np.load(array, mmap_mode="r"), False
    images, mapped = _as_tensor(rows)
    return Decoded(images, bad, key, seconds, from_cache, mapped)
