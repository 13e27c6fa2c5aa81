"""sha256 of files and streams, in bounded memory.

Artifacts are content-addressed by sha256 on both sides of the wire: the
controller's blob store names files by it, and an agent verifies every
transfer against it before anything is activated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from jetfleet.common.errors import JetfleetError

CHUNK = 1024 * 1024  # 1 MiB: large enough for full disk throughput, small enough for a Jetson Nano
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size in bytes) of ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256; anything else (paths included) is refused."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise JetfleetError(f"not a sha256 digest: {value!r}")
    return value
