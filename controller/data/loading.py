"""Batch iteration with an order that depends only on (seed, epoch).

Deriving each epoch's shuffle from ``seed`` and the epoch number, like
``DistributedSampler.set_epoch``, means a resumed run replays exactly the
batches the uninterrupted run would have seen, with no RNG state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from jetfleet.controller.data.splits import Split, TensorSplit

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (B, C, H, W) images, int64 (B,) targets


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from the run seed and epoch (for shuffling and augmentation)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 100_003 + epoch)
    return gen


class InMemoryLoader:
    """Yield batches of a :class:`TensorSplit` by slicing a permutation; no workers needed.

    Under DDP each of ``world`` ranks takes every ``world``-th position of the
    same seeded permutation, so shards are disjoint and together cover the
    epoch. A shuffled (training) order is first padded by wrapping around to
    a multiple of ``world``, as ``DistributedSampler`` does, so every rank
    runs the same number of steps and no all-reduce waits for a rank that
    has finished; an unshuffled (evaluation) order is not padded, so metrics
    count each image once.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        pin_memory: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank = rank
        self.world = world
        if pin_memory and not split.mapped:
            split = TensorSplit(split.images.pin_memory(), split.targets, split.rows, split.source)
        self.pixels = split

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def positions(self) -> torch.Tensor:
        """This rank's split positions for the current epoch, in the order they are served."""
        n = len(self.split)
        order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch)) if self.shuffle else torch.arange(n)
        if self.world == 1:
            return order
        if self.shuffle and n % self.world:
            pad = self.world - n % self.world
            order = torch.cat([order, order.repeat(-(-pad // n))[:pad]])  # n < pad is possible: repeat
        return order[self.rank :: self.world]

    def __len__(self) -> int:
        n = len(self.split)
        per_rank = -(-n // self.world) if self.shuffle else len(range(self.rank, n, self.world))
        return (per_rank + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        order = self.positions()
        contiguous = not self.shuffle and self.world == 1 and not self.split.mapped
        for start in range(0, len(order), self.batch_size):
            if contiguous:  # a view, not a gather: evaluation of in-RAM data copies nothing
                end = start + self.batch_size
                yield self.pixels.images[start:end], self.split.targets[start:end]
                continue
            idx = order[start : start + self.batch_size]
            yield self.pixels.pixels(idx), self.split.targets[idx]


Loader = InMemoryLoader


def make_loader(
    split: Split,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world: int = 1,
) -> Loader:
    """Batches of ``split`` by slicing a permutation (images in RAM or memory-mapped; no worker processes)."""
    return InMemoryLoader(split, batch_size, shuffle, seed, pin_memory, rank, world)
