"""The fault suite's shared machinery: an invariant recorder and real faults and witnesses.

Fault tests drive real components (agents, gRPC on loopback, SQLite files,
processes killed with real signals) and judge the outcome by invariants
checked at the end, next to a timeline of what was done (:class:`Invariants`,
the ``invariants`` fixture). Nothing of ours is mocked, and the faults and
witnesses here are real too: a small tmpfs that fills up
(:func:`small_filesystem`, :func:`fill_disk`), inotify watching who opens a
file (:class:`OpenWitness`), the kernel's own peak-memory counter
(:class:`PeakRss`).

Agents, and so the transport (mutual TLS, signed manifests), come from two
places only: in-process ones from the ``start_agent`` fixture of
``tests/agents.py``, processes from ``faults/procs_agent.py``
(``agent_processes``, whose ``AgentProc.connect`` builds every client). No
fault test builds an ``AgentClient`` or a channel itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

REQUIRE_ENV = "JETFLEET_REQUIRE_FAULTS"  # "1" in CI: a fault that cannot be injected fails instead of skipping
MiB = 1024 * 1024


def fault_unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail where the environment demands every fault (``JETFLEET_REQUIRE_FAULTS=1``)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but this fault cannot be injected here: {reason}")
    pytest.skip(reason)


# ----------------------------------------------------------------------------- invariants


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the recorder was made
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


class Invariants:
    """A timeline of what a fault test did, and the invariants that must hold afterwards.

    ``record`` notes an action or observation; ``expect`` notes an invariant
    and whether it held; ``check`` (called once, at the end) fails with
    every broken invariant *and* the timeline. A fault test's failure is read
    next to the sequence that caused it (which writer died when, which chunk
    met ENOSPC), and one broken invariant does not hide the others.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list[Event] = []
        self.results: list[tuple[str, bool, str]] = []
        self.checked = False
        self._lock = threading.Lock()  # killer threads and watchers record concurrently

    def record(self, what: str, **detail: Any) -> None:
        with self._lock:
            self.events.append(Event(round(time.monotonic() - self.started, 3), what, detail))

    def expect(self, name: str, holds: bool, detail: Any = "") -> bool:
        """Note invariant ``name``; ``detail`` says what was seen (shown when it fails). Returns ``holds``."""
        with self._lock:
            self.results.append((name, bool(holds), str(detail)))
        self.record("invariant", name=name, holds=bool(holds))
        return bool(holds)

    def check(self) -> None:
        """Fail with every broken invariant and the timeline; pass only if at least one invariant was stated."""
        self.checked = True
        assert self.results, "a fault test must state at least one invariant"
        broken = [(name, detail) for name, ok, detail in self.results if not ok]
        if broken:
            lines = [f"{len(broken)} of {len(self.results)} invariants broken:"]
            lines += [f"  - {name}: {detail}" for name, detail in broken]
            lines += ["timeline:", *(f"  {e.at:8.3f}s {e.what} {e.detail or ''}" for e in self.events[-80:])]
            raise AssertionError("\n".join(lines))

    def dump(self, path: Path) -> None:
        """The timeline and the invariants as JSON lines (kept beside the test's files for a post-mortem)."""
        with open(path, "w") as fh:
            for e in self.events:
                fh.write(json.dumps({"at": e.at, "what": e.what, **e.detail}, default=str) + "\n")


# ----------------------------------------------------------------------------- memory


class PeakRss:
    """The peak resident memory of process ``pid`` over a ``with`` block, from the kernel's own counter.

    Linux keeps the high-water mark ``VmHWM`` per process and (since 4.0)
    resets it when 5 is written to ``/proc/PID/clear_refs``, so the peak of
    the block is exact, not sampled: a spike between two samples cannot be
    missed. Where the reset is refused, a thread sampling RSS every 2 ms
    stands in and ``exact`` is False.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.peak = 0
        self.exact = False
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def _status(self, key: str) -> int:
        text = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        assert found, f"/proc/{self.pid}/status has no {key}"
        return int(found[1]) * 1024

    def __enter__(self) -> PeakRss:
        self.before = self._status("VmRSS")
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.exact = self._status("VmHWM") <= self.before + MiB
        except OSError:
            self.exact = False
        if not self.exact:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, AssertionError):
                self.peak = max(self.peak, self._status("VmRSS"))
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
        else:
            self.peak = self._status("VmHWM")

    @property
    def growth(self) -> int:
        """Bytes the peak rose above the resident size at the start of the block."""
        return max(0, self.peak - self.before)


# ----------------------------------------------------------------------------- filesystems


@contextlib.contextmanager
def small_filesystem(path: Path, size: int) -> Iterator[Path]:
    """A real filesystem of ``size`` bytes (tmpfs) mounted at ``path``, unmounted afterwards.

    Needs root (or CAP_SYS_ADMIN): elsewhere the test skips, or fails under
    ``JETFLEET_REQUIRE_FAULTS=1``. Unmounting falls back to a lazy unmount if a
    process still holds a file there, so a failing test never leaves a mount.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        fault_unavailable(f"cannot mount a {size // MiB} MiB tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=True)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_disk(ballast: Path, leave: int) -> int:
    """Grow ``ballast`` until exactly ``leave`` bytes stay free (page-exact on tmpfs); the bytes written.

    Another writer filling the disk (logs, a core dump): written with real
    data, fsync'd, so the space is really taken rather than reserved sparse.
    """
    need = free_bytes(ballast.parent) - leave
    assert need >= 0, f"only {free_bytes(ballast.parent)} bytes free, cannot leave {leave}"
    block = b"\xa5" * MiB
    with open(ballast, "ab") as fh:
        remaining = need
        while remaining > 0:
            remaining -= fh.write(block[: min(MiB, remaining)])
        fh.flush()
        os.fsync(fh.fileno())
    left = free_bytes(ballast.parent)
    assert left == leave, f"wanted {leave} bytes free, {left} are"
    return need


# ----------------------------------------------------------------------------- files whose opening is seen

_IN_ACCESS, _IN_OPEN = 0x001, 0x020
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


class OpenWitness:
    """Sees every open or read of the files it watches, by any process, through Linux inotify.

    A file's atime is a poor witness (``relatime``/``noatime`` mounts), and a
    FIFO changes what a reader does (ONNX Runtime refuses non-regular files
    before opening them). inotify reports ``IN_OPEN`` for every ``open(2)``
    of a watched regular file and ``IN_ACCESS`` for every read, whatever the
    mount options and whoever the process, while ``stat`` and existence
    checks, which read nothing, stay silent. Every reader opens first (mmap
    included), so :meth:`events` empty means nobody looked inside.

    Where inotify is unavailable the test skips (or fails under
    ``JETFLEET_REQUIRE_FAULTS=1``).
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._libc = libc
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            fault_unavailable(f"inotify is unavailable: {os.strerror(ctypes.get_errno())}")
        self._watched: dict[int, Path] = {}
        self.seen: list[tuple[Path, str]] = []

    def watch(self, path: Path) -> Path:
        """Watch ``path`` (it must exist) from now on; returns it."""
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_OPEN | _IN_ACCESS)
        if wd < 0:
            fault_unavailable(f"cannot watch {path} with inotify: {os.strerror(ctypes.get_errno())}")
        self._watched[wd] = path
        return path

    def events(self) -> list[tuple[Path, str]]:
        """Every (path, "open" | "read") seen so far."""
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return list(self.seen)
            offset = 0
            while offset < len(buf):
                wd, mask, _, length = _EVENT.unpack_from(buf, offset)
                offset += _EVENT.size + length
                if wd in self._watched and mask & (_IN_OPEN | _IN_ACCESS):
                    self.seen.append((self._watched[wd], "open" if mask & _IN_OPEN else "read"))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> OpenWitness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
