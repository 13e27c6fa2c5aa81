"""The engine cache key: every field that makes an engine valid changes it, nothing else does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jetfleet.agent.engines.cache import EngineCache, EngineKey

KEY = EngineKey(
    artifact_sha256="ab" * 32,
    backend="tensorrt",
    backend_version="10.3.0",
    device_class="jetson-orin-nano",
    compute_capability="8.7",
    l4t_release="R36.4.0",
    precision="int8",
    builder_flags={"workspace_fraction": 0.5, "max_batch": 64},
)


@pytest.mark.parametrize(
    "change",
    [
        {"artifact_sha256": "cd" * 32},
        {"backend": "onnxruntime"},
        {"backend_version": "10.3.1"},  # a TensorRT upgrade
        {"device_class": "jetson-agx-orin"},
        {"compute_capability": "7.2"},
        {"l4t_release": "R36.3.0"},  # a JetPack upgrade
        {"precision": "fp16"},
        {"builder_flags": {"workspace_fraction": 0.25, "max_batch": 64}},
    ],
)
def test_every_field_changes_the_fingerprint(change: dict) -> None:
    assert dataclasses.replace(KEY, **change).fingerprint() != KEY.fingerprint()


def test_the_fingerprint_is_stable() -> None:
    same = EngineKey(**{**dataclasses.asdict(KEY), "builder_flags": {"max_batch": 64, "workspace_fraction": 0.5}})
    assert same.fingerprint() == KEY.fingerprint()  # dict order does not matter


def test_put_publishes_atomically_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.get(KEY) is None

    def broken(path: Path) -> None:
        path.write_bytes(b"half an engine")
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError):
        cache.put(KEY, broken)
    assert cache.get(KEY) is None and not list(tmp_path.iterdir())
    path = cache.put(KEY, lambda p: p.write_bytes(b"engine"))
    assert cache.get(KEY) == path and path.read_bytes() == b"engine"
    assert (path.parent / "meta.json").read_text().count("R36.4.0") == 1
    (tmp_path / ".tmp-deadbeef-x").mkdir()  # what a SIGKILL during a build leaves
    assert cache.clean() == 1 and cache.entries() == [KEY.fingerprint()]


def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    path = cache.put(KEY, lambda p: p.write_bytes(b"\x01" * 4096))
    path.write_bytes(b"\x00" * 4096)  # zero-filled after a power cut
    assert cache.get(KEY) is None and cache.entries() == []
