from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import write_image_folder

from jetfleet.controller.data import DataOptions, load_dataset, make_loader
from jetfleet.controller.data.loading import InMemoryLoader
from jetfleet.controller.data.splits import TensorSplit


def _split(n: int = 50) -> TensorSplit:
    return TensorSplit(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n))


def test_a_memory_mapped_split_serves_the_same_batches() -> None:
    base = _split()
    mapped = TensorSplit(base.images, base.targets, torch.arange(50), "key", mapped=True).subset(np.arange(10, 40))
    plain = base.subset(np.arange(10, 40))
    assert mapped.images.data_ptr() == base.images.data_ptr()  # a subset of a mapping copies nothing
    a, b = make_loader(mapped, 7, True, seed=2), make_loader(plain, 7, True, seed=2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_in_memory_loader_covers_every_sample_once_per_epoch() -> None:
    loader = make_loader(_split(), 16, shuffle=True, seed=1)
    assert isinstance(loader, InMemoryLoader) and len(loader) == 4
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == list(range(50))


def test_shuffle_depends_only_on_seed_and_epoch() -> None:
    a, b = make_loader(_split(), 10, True, seed=3), make_loader(_split(), 10, True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    order_a = torch.cat([y for _, y in a])
    assert torch.equal(order_a, torch.cat([y for _, y in b]))
    b.set_epoch(3)
    assert not torch.equal(order_a, torch.cat([y for _, y in b]))


def test_unshuffled_loader_keeps_order() -> None:
    assert torch.cat([y for _, y in make_loader(_split(), 7, False)]).tolist() == list(range(50))


def test_folder_batches_come_from_the_decoded_tensor(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=6)
    b = load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(image_size=10))
    loader = make_loader(b.train, 4, True, seed=0)
    batches = list(loader)
    assert sum(len(y) for _, y in batches) == len(b.train)
    assert batches[0][0].shape[1:] == (3, 10, 10) and batches[0][0].dtype == torch.uint8


@pytest.mark.parametrize(("n", "world"), [(50, 2), (51, 2), (50, 3)])
def test_ranks_get_disjoint_shards_that_cover_the_epoch(n: int, world: int) -> None:
    loaders = [make_loader(_split(n), 8, True, seed=5, rank=r, world=world) for r in range(world)]
    for loader in loaders:
        loader.set_epoch(1)
    shards = [torch.cat([y for _, y in loader]).tolist() for loader in loaders]
    assert len({len(s) for s in shards}) == 1 and {len(loader) for loader in loaders} == {len(loaders[0])}
    padded = -(-n // world) * world
    assert sum(len(s) for s in shards) == padded  # padding wraps around, as DistributedSampler does
    assert set().union(*map(set, shards)) == set(range(n))
    if padded == n:
        assert not set(shards[0]) & set(shards[1])
    same = make_loader(_split(n), 8, True, seed=5)
    same.set_epoch(1)
    assert torch.cat([y for _, y in same]).tolist()[:world] == [s[0] for s in shards]  # one permutation


def test_unshuffled_shards_count_every_image_once() -> None:
    loaders = [make_loader(_split(51), 8, False, rank=r, world=2) for r in range(2)]
    ys = sorted(torch.cat([y for loader in loaders for _, y in loader]).tolist())
    assert ys == list(range(51)) and [len(loader) for loader in loaders] == [4, 4]


def test_fewer_images_than_ranks_still_gives_every_rank_a_batch() -> None:
    loaders = [make_loader(_split(1), 8, True, rank=r, world=4) for r in range(4)]
    assert [len(list(loader)) for loader in loaders] == [1, 1, 1, 1] == [len(loader) for loader in loaders]
