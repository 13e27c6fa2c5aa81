"""Batch iteration with an order that depends only on (seed, epoch).

Deriving each epoch's shuffle from ``seed`` and the epoch number, like
``DistributedSampler.set_epoch``, means a resumed run replays exactly the
batches the uninterrupted run would have seen, with no RNG state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from jetfleet.controller.data.splits import FolderSplit, Split, TensorSplit

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (B, C, H, W) images, int64 (B,) targets


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from the run seed and epoch (for shuffling and augmentation)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 100_003 + epoch)
    return gen


class InMemoryLoader:
    """Yield batches of a :class:`TensorSplit` by slicing a permutation; no workers needed."""

    def __init__(
        self, split: TensorSplit, batch_size: int, shuffle: bool, seed: int = 0, pin_memory: bool = False
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.images = split.images.pin_memory() if pin_memory else split.images
        self.targets = split.targets

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.split) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.split)
        if self.shuffle:
            order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield self.images[idx], self.targets[idx]
        else:
            for start in range(0, n, self.batch_size):
                yield self.images[start : start + self.batch_size], self.targets[start : start + self.batch_size]


class FolderLoader:
    """A torch DataLoader over image files whose shuffle is reseeded every epoch."""

    def __init__(
        self,
        split: FolderSplit,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        workers: int = 2,
        pin_memory: bool = False,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.workers = workers
        self.pin_memory = pin_memory
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.split) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        loader = DataLoader(
            self.split,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            generator=epoch_generator(self.seed, self.epoch),
            persistent_workers=False,
        )
        yield from loader


Loader = InMemoryLoader | FolderLoader


def make_loader(
    split: Split, batch_size: int, shuffle: bool, seed: int = 0, workers: int = 2, pin_memory: bool = False
) -> Loader:
    """The fastest loader for ``split``: slicing for in-memory data, worker processes for files."""
    if isinstance(split, TensorSplit):
        return InMemoryLoader(split, batch_size, shuffle, seed, pin_memory)
    return FolderLoader(split, batch_size, shuffle, seed, workers, pin_memory)
