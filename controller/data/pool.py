"""Run a function over chunks of work in worker processes, in order, with a single-process fallback.

Decoding images is CPU-bound Python and C; threads would serialize on the
GIL for small files, so ``--workers`` means processes. On Linux they are
forked, as torch's own DataLoader does, so a worker starts in milliseconds
without importing torch again; elsewhere they are spawned.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def chunked(items: Sequence[T], workers: int, per_chunk: int = 256) -> list[Sequence[T]]:
    """Cut ``items`` into chunks small enough to spread over ``workers`` and report progress often."""
    size = max(1, min(per_chunk, -(-len(items) // max(1, workers * 4))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def parallel_map(fn: Callable[[T], R], chunks: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, chunks)`` on ``workers`` processes (0 or 1: in this process); results in input order."""
    if workers <= 1 or len(chunks) <= 1:
        yield from map(fn, chunks)
        return
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
        yield from pool.map(fn, chunks)
