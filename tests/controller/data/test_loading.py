from __future__ import annotations

from pathlib import Path

import torch
from fixtures import write_image_folder

from jetfleet.controller.data import DataOptions, load_dataset, make_loader
from jetfleet.controller.data.loading import FolderLoader, InMemoryLoader
from jetfleet.controller.data.splits import TensorSplit


def _split(n: int = 50) -> TensorSplit:
    return TensorSplit(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n))


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


def test_folder_loader_uses_worker_processes(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds", per_class=6)
    b = load_dataset(f"folder:{tmp_path / 'ds'}", DataOptions(image_size=10))
    loader = make_loader(b.train, 4, True, seed=0, workers=2)
    assert isinstance(loader, FolderLoader)
    batches = list(loader)
    assert sum(len(y) for _, y in batches) == len(b.train)
    assert batches[0][0].shape[1:] == (3, 10, 10) and batches[0][0].dtype == torch.uint8
