"""A durable queue of reports for the controller: what a job measured survives an agent restart.

SQLite from the standard library, one row per report (the serialized wire
message), committed with ``synchronous=FULL`` before ``append`` returns, so a
result the agent has accepted is on disk even if the process is killed the
next moment. Rows leave only after the controller acknowledged them; the
controller stores reports idempotently (by agent and id), so a report sent
again after a crash between "acknowledged" and "deleted" is stored once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)
MAX_ROWS = 10_000  # weeks of jobs for one device; beyond it the oldest go first (logged)


class Outbox:
    def __init__(self, path: Path, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._lock = threading.Lock()
        import sqlite3  # here, not at the top: an agent without a controller never opens an outbox (~0.5 MiB)

        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB NOT NULL)"
        )

    def append(self, kind: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO outbox (kind, payload) VALUES (?, ?)", (kind, payload))
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            if count > self.max_rows:
                log.warning("report outbox full (%d): dropping the oldest report", self.max_rows)
                self._db.execute("DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)")
            self._db.execute("COMMIT")

    def peek(self) -> tuple[int, str, bytes] | None:
        """The oldest report (id, kind, payload), or None when everything was delivered."""
        with self._lock:
            row = self._db.execute("SELECT id, kind, payload FROM outbox ORDER BY id LIMIT 1").fetchone()
        return (int(row[0]), str(row[1]), bytes(row[2])) if row else None

    def remove(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
