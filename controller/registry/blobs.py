"""A content-addressed store of immutable blobs, the registry's file storage.

Layout: ``ROOT/sha256/ab/<64 hex digits>``, and ``ROOT/tmp/`` for writes in
progress. A blob is written to ``tmp/``, hashed while it is copied, fsynced
and only then renamed into place, so a reader (or a crash) never sees half
a blob under a real name, and writing the same content twice, even from two
processes at once, leaves one blob. Reads verify the hash by default: a
flipped bit on disk is an error, not a silently different model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jetfleet.common.errors import JetfleetError
from jetfleet.common.hashing import CHUNK, check_sha256, sha256_file


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


class BlobCorrupted(JetfleetError):
    """A stored blob no longer matches its name."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "sha256"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where blob ``sha256`` lives (whether or not it exists); the digest is validated first."""
        check_sha256(sha256)
        return self.blobs / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_stream(self, source: BinaryIO, max_size: int | None = None) -> BlobRef:
        """Copy ``source`` into the store, hashing on the way; dedup by content."""
        return self._put(source, max_size)[0]

    def add_file(self, path: Path, max_size: int | None = None) -> tuple[BlobRef, bool]:
        """Like :meth:`put_file`, also saying whether this call created the blob (for cleanup on failure)."""
        with open(path, "rb") as fh:
            return self._put(fh, max_size)

    def _put(self, source: BinaryIO, max_size: int | None) -> tuple[BlobRef, bool]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise JetfleetError(f"blob exceeds the size limit of {max_size:,} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            ref = BlobRef(digest.hexdigest(), size)
            final = self.path(ref.sha256)
            if final.is_file():
                return ref, False
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)  # immutable by convention and by mode
            os.replace(tmp, final)  # atomic; a concurrent writer of the same content wrote the same bytes
            return ref, True
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: Path, max_size: int | None = None) -> BlobRef:
        with open(path, "rb") as fh:
            return self.put_stream(fh, max_size)

    def put_bytes(self, data: bytes) -> BlobRef:
        import io

        return self.put_stream(io.BytesIO(data))

    def verify(self, sha256: str) -> BlobRef:
        """Re-hash a stored blob; raise :class:`BlobCorrupted` if it changed, JetfleetError if missing."""
        path = self.path(sha256)
        if not path.is_file():
            raise JetfleetError(f"blob {sha256} is not in the store at {self.root}")
        actual, size = sha256_file(path)
        if actual != sha256:
            raise BlobCorrupted(f"blob {sha256} is corrupted on disk (its content hashes to {actual})")
        return BlobRef(sha256, size)

    def read_bytes(self, sha256: str) -> bytes:
        """The whole blob, verified (for small blobs: metadata, specs)."""
        if not self.exists(sha256):
            raise JetfleetError(f"blob {sha256} is not in the store at {self.root}")
        data = self.path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupted(f"blob {sha256} is corrupted on disk")
        return data

    def copy_to(self, sha256: str, dest: Path) -> Path:
        """Copy a blob out (atomically, verified); ``dest`` never holds unverified bytes."""
        from jetfleet.common.files import atomic_path

        self.verify(sha256)
        with atomic_path(dest) as tmp:
            shutil.copyfile(self.path(sha256), tmp)
            if sha256_file(tmp)[0] != sha256:
                raise BlobCorrupted(f"blob {sha256} changed while it was being copied")
        return dest

    def __iter__(self) -> Iterator[str]:
        for sub in sorted(self.blobs.iterdir()):
            for blob in sorted(sub.iterdir()):
                yield blob.name

    def delete(self, sha256: str) -> bool:
        path = self.path(sha256)
        if not path.exists():
            return False
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty
        return True

    def gc(self, referenced: set[str]) -> list[str]:
        """Delete every blob not in ``referenced`` and any abandoned temp file; return the deleted digests."""
        removed = [sha for sha in list(self) if sha not in referenced and self.delete(sha)]
        for stale in self.tmp.iterdir():
            stale.unlink(missing_ok=True)
        return removed
