"""Progress lines for logs: long work says how far it is, how fast, and when it will end.

A progress bar only renders on a terminal. Under systemd, CI or ``nohup`` a
run of many minutes would otherwise be silent until it ends, so work that can
take long (decoding a folder, a training epoch) also feeds a
:class:`ProgressLog`, which prints one plain line at most every
``interval_s`` seconds and never when the work finishes quickly.
"""

from __future__ import annotations

import time
from typing import Callable

LOG_INTERVAL_S = 30.0  # the longest a log stays silent during long work; the floor


def format_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3700`` → ``1h01m``: short enough for a log line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressLog:
    """Call :meth:`update` as often as you like; a line goes to ``emit`` every ``interval_s`` at most.

    The line reads ``<what>: 1,200/5,000 images (24%), 410 images/s, ETA 9s``.
    """

    def __init__(
        self,
        what: str,
        total: int,
        emit: Callable[[str], None],
        unit: str = "images",
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.emit = emit
        self.unit = unit
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self._last_emit = self.started
        self.lines = 0

    def due(self) -> bool:
        """True when the next :meth:`update` would print (so a caller can skip costly extras)."""
        return self.clock() - self._last_emit >= self.interval_s

    def update(self, done: int, extra: str | None = None) -> None:
        """Report ``done`` units finished so far; prints only when the interval has passed."""
        now = self.clock()
        if now - self._last_emit < self.interval_s:
            return
        self._last_emit = now
        self.lines += 1
        self.emit(self.line(done, now, extra))

    def line(self, done: int, now: float, extra: str | None = None) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        pct = f" ({done / self.total:.0%})" if self.total else ""
        eta = f", ETA {format_duration((self.total - done) / rate)}" if rate > 0 and self.total >= done else ""
        tail = f", {extra}" if extra else ""
        return f"{self.what}: {done:,}/{self.total:,} {self.unit}{pct}, {rate:,.0f} {self.unit}/s{eta}{tail}"
