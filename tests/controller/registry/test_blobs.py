from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.registry.blobs import BlobCorrupted, BlobStore


def test_put_read_round_trip_and_layout(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put_bytes(b"model bytes")
    assert ref.sha256 == hashlib.sha256(b"model bytes").hexdigest() and ref.size == 11
    assert store.path(ref.sha256) == tmp_path / "sha256" / ref.sha256[:2] / ref.sha256
    assert store.read_bytes(ref.sha256) == b"model bytes"
    assert list(store) == [ref.sha256]
    assert not os.access(store.path(ref.sha256), os.W_OK) or os.geteuid() == 0  # read-only mode
    assert oct(store.path(ref.sha256).stat().st_mode & 0o777) == "0o444"


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    src = tmp_path / "a.onnx"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    first, second = store.put_file(src), store.put_file(src)
    assert first == second and len(list(store)) == 1
    assert list(store.tmp.iterdir()) == []


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put_bytes(b"x" * 1000)
    path = store.path(ref.sha256)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BlobCorrupted, match="corrupted"):
        store.verify(ref.sha256)
    with pytest.raises(BlobCorrupted):
        store.read_bytes(ref.sha256)
    with pytest.raises(BlobCorrupted):
        store.copy_to(ref.sha256, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "a" * 63, "g" * 64, "A" * 64])
def test_digests_are_validated_before_touching_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(JetfleetError, match="not a sha256"):
        BlobStore(tmp_path).path(bad)


def test_size_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"0" * 5000)
    with pytest.raises(JetfleetError, match="size limit"):
        store.put_file(big, max_size=4096)
    assert list(store) == [] and list(store.tmp.iterdir()) == []


def test_gc_keeps_referenced_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    keep, drop = store.put_bytes(b"keep"), store.put_bytes(b"drop")
    (store.tmp / "put-abandoned").write_bytes(b"half a blob from a crash")
    assert store.gc({keep.sha256}) == [drop.sha256]
    assert list(store) == [keep.sha256] and list(store.tmp.iterdir()) == []


def test_copy_out_is_verified_and_complete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    ref = store.put_bytes(b"weights" * 1000)
    out = store.copy_to(ref.sha256, tmp_path / "deploy" / "model.onnx")
    assert out.read_bytes() == b"weights" * 1000
    with pytest.raises(JetfleetError, match="not in the store"):
        store.copy_to("0" * 64, tmp_path / "x")


WRITER = """
import sys
from pathlib import Path
from jetfleet.controller.registry.blobs import BlobStore
store = BlobStore(Path(sys.argv[1]))
payload = Path(sys.argv[2]).read_bytes()
for _ in range(5):
    store.put_bytes(payload)
"""


def test_two_processes_writing_the_same_blob(tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(os.urandom(2 * 1024 * 1024))
    store_dir = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), str(src)]) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    store = BlobStore(store_dir)
    (sha,) = list(store)
    assert store.verify(sha).size == 2 * 1024 * 1024 and list(store.tmp.iterdir()) == []
