from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.common.hashing import check_sha256, sha256_chunks, sha256_file


def test_file_and_chunk_hashes_agree(tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    (tmp_path / "f").write_bytes(data)
    expected = (hashlib.sha256(data).hexdigest(), len(data))
    assert sha256_file(tmp_path / "f") == expected
    assert sha256_chunks([data[:7], data[7:]]) == expected


def test_check_sha256() -> None:
    good = hashlib.sha256(b"").hexdigest()
    assert check_sha256(good) == good
    with pytest.raises(JetfleetError):
        check_sha256(good.upper())
