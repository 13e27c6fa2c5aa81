"""The agent's artifact store: resumable chunked uploads into content-addressed blobs.

Layout under ``root``::

    blobs/<sha256>        verified, read-only (0444), immutable
    staging/<sha256>.part bytes received so far; resumable after a broken stream

Nothing leaves staging before its size and sha256 match what the sender
declared, so a truncated or corrupted upload can never be activated. Memory
stays bounded: each chunk is written and hashed as it arrives. A resumed
upload re-hashes the staged prefix from disk (disk speed, no state to persist
across restarts) and continues from there.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent.errors import (
    ABORTED,
    DATA_LOSS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    RESOURCE_EXHAUSTED,
    AgentError,
)
from jetfleet.common.failpoints import failpoint
from jetfleet.common.files import fsync_dir
from jetfleet.common.fleet import ArtifactRef
from jetfleet.common.hashing import CHUNK, sha256_file


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass(frozen=True)
class UploadState:
    present: bool  # already stored; send nothing
    offset: int  # bytes staged so far


class ArtifactStore:
    """Blobs on the device's disk, with quota and free-space checks before accepting bytes."""

    def __init__(self, root: Path, max_store_bytes: int, min_free_bytes: int) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.staging = root / "staging"
        self.max_store_bytes = max_store_bytes
        self.min_free_bytes = min_free_bytes
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        self._busy: set[str] = set()
        self._admitted: dict[str, Upload] = {}  # uploads in flight: the disk they will still take is promised
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------
    def path(self, ref: ArtifactRef) -> Path:
        """The blob's path; NOT_FOUND unless it is stored with the expected size."""
        path = self.blobs / ref.sha256
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise AgentError(NOT_FOUND, f"artifact {ref.short} is not on this device", "upload it first") from None
        if size != ref.size:
            raise AgentError(DATA_LOSS, f"artifact {ref.short} on disk is {size} bytes, expected {ref.size}")
        return path

    def has(self, ref: ArtifactRef) -> bool:
        path = self.blobs / ref.sha256
        return path.exists() and path.stat().st_size == ref.size

    def verify(self, ref: ArtifactRef) -> Path:
        """Re-hash a stored blob: a flipped bit on disk since upload is caught before activation.

        A corrupt blob is deleted, so the next ``GetUploadOffset`` asks for it
        again instead of deduplicating against bad bytes forever.
        """
        path = self.path(ref)
        digest, size = sha256_file(path)
        if digest != ref.sha256 or size != ref.size:
            path.unlink(missing_ok=True)
            raise AgentError(
                DATA_LOSS,
                f"artifact {ref.short} was corrupt on disk (sha256 {digest[:12]}, {size} bytes) and has been removed",
                "upload it again",
            )
        return path

    def list(self) -> list[tuple[ArtifactRef, float]]:
        out = []
        for p in sorted(self.blobs.iterdir()):
            st = p.stat()
            with contextlib.suppress(Exception):
                out.append((ArtifactRef(p.name, st.st_size), st.st_mtime))
        return out

    def usage(self) -> int:
        """Bytes held in blobs and staging (the quota counts both)."""
        total = 0
        for folder in (self.blobs, self.staging):
            for path in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):  # pruned or renamed meanwhile: not held any more
                    total += path.stat().st_size
        return total

    def disk_free(self) -> int:
        return shutil.disk_usage(self.root).free

    # -- uploading -------------------------------------------------------
    def _part(self, ref: ArtifactRef) -> Path:
        return self.staging / f"{ref.sha256}.part"

    def offset(self, ref: ArtifactRef) -> UploadState:
        """Where an upload of ``ref`` stands: stored, or how many bytes to skip."""
        with self._lock:
            busy = ref.sha256 in self._busy  # an upload is writing the part: only that upload may reset it
        return self._state(ref, reset=not busy)

    def _state(self, ref: ArtifactRef, reset: bool) -> UploadState:
        if self.has(ref):
            return UploadState(True, ref.size)
        part = self._part(ref)
        staged = part.stat().st_size if part.exists() else 0
        if staged > ref.size and reset:  # a stale part of a different size claim: start over
            part.unlink(missing_ok=True)
            staged = 0
        return UploadState(False, staged)

    @contextlib.contextmanager
    def upload(self, ref: ArtifactRef, offset: int) -> Iterator[Upload]:
        """Receive ``ref`` from ``offset``; one upload per artifact at a time.

        On a clean exit the caller must have called :meth:`Upload.commit`;
        if the stream broke (any exception that is not an :class:`AgentError`)
        the staged prefix stays for a resume. A verification failure or a full
        disk removes it: those bytes can never become the artifact.
        """
        with self._lock:
            if ref.sha256 in self._busy:
                raise AgentError(ABORTED, f"artifact {ref.short} is already being uploaded", "retry when it finishes")
            self._busy.add(ref.sha256)
        try:
            state = self._state(ref, reset=True)  # this upload holds the artifact: it may reset a stale part
            if not state.present and offset != state.offset:
                raise AgentError(
                    INVALID_ARGUMENT,
                    f"upload of {ref.short} must resume at byte {state.offset}, not {offset}",
                    "ask GetUploadOffset first",
                )
            upload = Upload(self, ref, offset, present=state.present)
            if not state.present:
                with self._lock:  # check and admit in one step: concurrent uploads cannot both pass on the same space
                    try:
                        self._check_space(ref.size - offset)
                    except AgentError:
                        upload.discard() if offset == 0 else upload.close()  # keep a resumable prefix only
                        raise
                    self._admitted[ref.sha256] = upload
            try:
                yield upload
            except IncompleteUpload:
                raise  # resumable: keep the staged prefix
            except AgentError:
                upload.discard()
                raise
            finally:
                upload.close()
        finally:
            with self._lock:
                self._busy.discard(ref.sha256)
                self._admitted.pop(ref.sha256, None)

    def _check_space(self, needed: int) -> None:
        """Refuse ``needed`` more bytes if they would break the free-disk floor or the quota (caller holds the lock).

        Bytes that admitted uploads have yet to write count as taken already.
        """
        pending = sum(u.ref.size - u.position for u in self._admitted.values() if not u.present)
        needed += pending
        free = self.disk_free()
        if free - needed < self.min_free_bytes:
            raise AgentError(
                RESOURCE_EXHAUSTED,
                f"not enough disk: {_human(needed)} needed, {_human(free)} free and "
                f"{_human(self.min_free_bytes)} must stay free",
            )
        used = self.usage()
        if used + needed > self.max_store_bytes:
            raise AgentError(
                RESOURCE_EXHAUSTED,
                f"artifact store quota exceeded: {_human(used)} used + {_human(needed)} > {_human(self.max_store_bytes)}",
                "remove unused artifacts or raise max_store_bytes",
            )

    def _install(self, part: Path, ref: ArtifactRef) -> None:
        blob = self.blobs / ref.sha256
        os.replace(part, blob)
        os.chmod(blob, 0o444)
        fsync_dir(self.blobs)

    def remove(self, ref: ArtifactRef) -> None:
        (self.blobs / ref.sha256).unlink(missing_ok=True)

    def prune(self, keep: set[str], grace_s: float) -> int:
        """Remove blobs not in ``keep`` and untouched for ``grace_s``, and stale partial uploads."""
        cutoff, removed = time.time() - grace_s, 0
        for p in list(self.blobs.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                if p.name not in keep and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed + self.clean_staging(grace_s)

    def clean_staging(self, older_than_s: float) -> int:
        """Drop partial uploads nobody resumed for ``older_than_s``; returns how many."""
        cutoff, removed = time.time() - older_than_s, 0
        with self._lock:
            busy = {f"{sha}.part" for sha in self._busy}
        for p in list(self.staging.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                if p.name not in busy and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed


class Upload:
    """One upload stream: append, hash, and commit only if everything matches.

    Every ``WRITEBACK_BYTES`` the kernel is asked to start writing the pages
    back (``POSIX_FADV_DONTNEED``), so the final fsync has little left to do
    and the page cache, which a Jetson shares with its GPU, does not fill up
    with artifact bytes.
    """

    WRITEBACK_BYTES = 8 * 1024 * 1024

    def __init__(self, store: ArtifactStore, ref: ArtifactRef, offset: int, present: bool) -> None:
        self.store, self.ref, self.present = store, ref, present
        self.received = 0
        self.position = offset
        self._part = store._part(ref)
        self._hash = hashlib.sha256()
        self._fh = None
        self._flushed = offset
        if not present:
            self._hash_prefix(offset)
            self._fh = open(self._part, "ab")  # noqa: SIM115 - closed in close()

    def _hash_prefix(self, offset: int) -> None:
        if offset == 0:
            self._part.unlink(missing_ok=True)
            return
        with open(self._part, "rb") as fh:
            while offset > 0 and (chunk := fh.read(min(CHUNK, offset))):
                self._hash.update(chunk)
                offset -= len(chunk)

    def write(self, data: bytes) -> None:
        if self.present:
            return  # dedup: the blob is stored already; bytes are ignored
        if self.position + len(data) > self.ref.size:
            raise AgentError(
                DATA_LOSS, f"upload of {self.ref.short} overran its declared size of {self.ref.size} bytes"
            )
        try:
            self._fh.write(data)  # type: ignore[union-attr]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise AgentError(RESOURCE_EXHAUSTED, f"disk full while receiving {self.ref.short}") from exc
            raise
        self._hash.update(data)
        self.position += len(data)
        self.received += len(data)
        failpoint("agent.upload.chunk")
        if self.position - self._flushed >= self.WRITEBACK_BYTES:
            try:
                self._fh.flush()  # type: ignore[union-attr]
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise AgentError(RESOURCE_EXHAUSTED, f"disk full while receiving {self.ref.short}") from exc
                raise
            os.posix_fadvise(self._fh.fileno(), self._flushed, self.position - self._flushed, os.POSIX_FADV_DONTNEED)  # type: ignore[union-attr]
            self._flushed = self.position

    def commit(self) -> None:
        """Verify size and sha256, then move the blob out of staging."""
        if self.present:
            return
        if self.position != self.ref.size:
            # A stream that ended early is resumable, not corrupt: keep the prefix.
            raise IncompleteUpload(self.ref, self.position)
        try:
            self._fh.flush()  # type: ignore[union-attr]
            os.fsync(self._fh.fileno())  # type: ignore[union-attr]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise AgentError(RESOURCE_EXHAUSTED, f"disk full while receiving {self.ref.short}") from exc
            raise
        digest = self._hash.hexdigest()
        if digest != self.ref.sha256:
            raise AgentError(
                DATA_LOSS, f"upload of {self.ref.short} has sha256 {digest[:12]}…: the bytes were corrupted in transit"
            )
        self.close()
        self.store._install(self._part, self.ref)

    def discard(self) -> None:
        """Delete the staged bytes, even when closing fails.

        On a full disk a chunk may have been half written and its tail left in
        the file object's buffer; closing then fails again with ENOSPC. Those
        bytes are being thrown away, so that error must not keep the partial
        file (which would hold the disk full) nor replace the caller's error.
        """
        with contextlib.suppress(OSError):
            self.close()
        self._part.unlink(missing_ok=True)

    def close(self) -> None:
        fh, self._fh = self._fh, None  # forget it first: a close that raised must not be retried
        if fh is not None:
            fh.close()


class IncompleteUpload(AgentError):
    """The stream ended before the declared size: resumable from ``offset``."""

    def __init__(self, ref: ArtifactRef, offset: int) -> None:
        super().__init__(
            FAILED_PRECONDITION,
            f"upload of {ref.short} ended at byte {offset} of {ref.size}",
            f"resume from offset {offset}",
        )
        self.offset = offset
