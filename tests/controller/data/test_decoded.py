"""The decoded-image cache: decoded once, reused, invalidated by changes, rebuilt when corrupt."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import write_image_folder

from jetfleet.controller.data import decoded as dec
from jetfleet.controller.data.decoded import decode_images
from jetfleet.controller.data.splits import load_image


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    write_image_folder(tmp_path / "ds", per_class=10)
    return sorted((tmp_path / "ds").rglob("*.png"))


def decode(files: list[Path], cache: Path, lines: list[str] | None = None, **kw: int) -> dec.Decoded:
    return decode_images(files, 12, 3, cache, log=(lines if lines is not None else []).append, **kw)


def test_rows_are_the_recipe_and_workers_do_not_change_them(files: list[Path], tmp_path: Path) -> None:
    one = decode(files, tmp_path / "a", workers=0)
    two = decode(files, tmp_path / "b", workers=2)
    assert one.images.shape == (30, 3, 12, 12) and one.images.dtype == torch.uint8
    assert torch.equal(one.images, two.images)
    np.testing.assert_array_equal(one.images[7].numpy(), load_image(files[7], 12, 3))


def test_a_second_run_reuses_the_cache(files: list[Path], tmp_path: Path) -> None:
    first = decode(files, tmp_path / "c")
    lines: list[str] = []
    second = decode(files, tmp_path / "c", lines)
    assert not first.from_cache and second.from_cache and second.seconds == 0 and not lines
    assert torch.equal(first.images, second.images) and first.key == second.key


def test_a_changed_file_invalidates_and_replaces_the_entry(files: list[Path], tmp_path: Path) -> None:
    first = decode(files, tmp_path / "c")
    os.utime(files[3], ns=(1, 1))
    second = decode(files, tmp_path / "c")
    assert second.key != first.key and not second.from_cache
    assert sorted(p.suffix for p in (tmp_path / "c").glob("*.*") if p.suffix != ".lock") == [".json", ".npy"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-meta"])
def test_a_corrupt_cache_is_rebuilt(files: list[Path], tmp_path: Path, damage: str) -> None:
    first = decode(files, tmp_path / "c")
    (array,) = (tmp_path / "c").glob("*.npy")
    data = bytearray(array.read_bytes())
    if damage == "truncate":
        array.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[-100] ^= 0xFF
        array.write_bytes(bytes(data))
    else:
        array.with_suffix(".json").unlink()
    lines: list[str] = []
    again = decode(files, tmp_path / "c", lines)
    assert not again.from_cache and torch.equal(again.images, first.images)
    assert any("is corrupt" in line and "rebuilding" in line for line in lines)


def test_large_splits_are_memory_mapped(files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dec, "MEMORY_SHARE", 0.0)
    mapped = decode(files, tmp_path / "c")
    (array,) = (tmp_path / "c").glob("*.npy")
    assert mapped.mapped and str(array) in Path("/proc/self/maps").read_text()  # backed by the file, not RAM
    monkeypatch.setattr(dec, "MEMORY_SHARE", 1.0)
    held = decode(files, tmp_path / "c")
    assert not held.mapped and torch.equal(mapped.images, held.images)


def test_an_interrupted_decode_leaves_no_entry(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: object, **_k: object) -> dict[int, str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(dec, "_decode_into", boom)
    with pytest.raises(KeyboardInterrupt):
        decode(files, tmp_path / "c")
    assert not [p for p in (tmp_path / "c").iterdir() if p.suffix != ".lock"]


def test_unreadable_files_are_reported_by_row(files: list[Path], tmp_path: Path) -> None:
    files[4].write_bytes(b"garbage")
    result = decode(files, tmp_path / "c")
    assert list(result.bad) == [4] and int(result.images[4].sum()) == 0
    assert decode(files, tmp_path / "c").bad == result.bad  # remembered by the cache


def test_long_decodes_print_progress(files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dec, "PROGRESS_INTERVAL_S", 0.0)
    lines: list[str] = []
    decode(files, tmp_path / "c", lines, workers=0)
    assert any(line.startswith("decoding: ") and "images/s" in line for line in lines)
