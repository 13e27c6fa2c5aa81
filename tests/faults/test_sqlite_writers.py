"""Scenario 11: concurrent writer processes on the controller's SQLite database, killed mid-commit.

Four writer processes store job results through the real ``FleetStore`` on
one SQLite file (migrated by the real migrations, tuned by the real
``make_engine``). Each writes only job results, one commit after another,
and appends a job id to its own fsync'd ack log only after ``add_job``
returned, as the controller acknowledges an agent's report only after
storing it. Every writer also sends a set of job ids all writers share
(the same report arriving twice), and on every restart re-sends everything
it had not acked plus some it had (retries).

Meanwhile writers are SIGKILLed at random moments; since they do nothing
but commit, many kills land inside a transaction or between a commit and
its ack. Each is restarted at once. When the kills stop, every writer runs
to completion. Expected outcome:

- every acked id is stored exactly once, and so is every other id: no lost
  and no duplicate rows (``count(*) == count(distinct)``), nothing stored
  that no writer sent, every stored result readable and naming its id;
- ``PRAGMA integrity_check`` is "ok" and the WAL checkpoints;
- every connection (the test's and each writer's) runs WAL with
  ``synchronous=FULL`` (2): what was acknowledged also survives a power
  loss, which no process kill can show, so the setting itself is checked.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults.harness import Invariants

from jetfleet.controller.fleet.store import FleetStore
from jetfleet.controller.registry.db import make_engine, migrate

WRITERS = 4
OWN_IDS = 250  # per writer: enough work that the kills land while everyone is still writing
SHARED_IDS = 40  # sent by every writer: cross-process duplicates
RESENDS = 15  # already-acked ids a restarted writer sends again
TARGET_KILLS = 12
MIN_KILLS = 6  # fewer means the writers finished before the faults could be injected: the test proved nothing
AGENT = "jetson-01"

WRITER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from jetfleet.common.fleet import ArtifactRef, JobResult, ModelSlot, ModelSpec
    from jetfleet.common.latency import LatencyStats
    from jetfleet.common.preprocess import PreprocessSpec
    from jetfleet.controller.fleet.store import FleetStore
    from jetfleet.controller.registry.db import make_engine

    url, plan_path, ack_path, agent, seed, resends = sys.argv[1:7]
    engine = make_engine(url)
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    print("pragmas", mode, sync, flush=True)
    store = FleetStore(engine)
    spec = ModelSpec("basic_cnn", 1, "int8", ArtifactRef("ab" * 32, 10), PreprocessSpec((8, 8), 1, (0.3,), (0.4,), ("a", "b")))
    slot = ModelSlot(spec, "onnxruntime", "f" * 32, 1.0)

    acked = []
    if os.path.exists(ack_path):
        with open(ack_path) as fh:
            acked = [line.split()[0] for line in fh if line.endswith("\\n")]  # a torn last line is no ack
    done = set(acked)
    rng = random.Random(int(seed))
    queue = [j for j in json.load(open(plan_path)) if j not in done]
    for job_id in rng.sample(sorted(done), min(len(done), int(resends))):
        queue.insert(rng.randrange(len(queue) + 1), job_id)
    print("queue", len(queue), "acked", len(done), flush=True)

    fd = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for job_id in queue:
        result = JobResult(job_id, agent, slot, 10, 8, 1, 0, LatencyStats.from_ms([1.0, 2.0]), 50.0, 0.2, time.time(), top1=0.9)
        stored = store.add_job(result, now=time.time())
        os.write(fd, f"{job_id} {int(stored)}\\n".encode())  # one write: a kill leaves a whole line or a torn one
        os.fsync(fd)
    print("done", flush=True)
    """
)


@dataclass
class Writer:
    """One writer's plan and ack log, and its current incarnation."""

    name: str
    plan: list[str]
    root: Path
    seed: int
    proc: subprocess.Popen[bytes] | None = None
    incarnations: int = 0
    kills: int = 0
    acks_at_start: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def ack_log(self) -> Path:
        return self.root / f"{self.name}.acks"

    def start(self, url: str) -> None:
        self.incarnations += 1
        self.acks_at_start = self._lines()
        log = self.root / f"{self.name}.{self.incarnations}.log"
        self.logs.append(log)
        plan = self.root / f"{self.name}.plan.json"
        plan.write_text(json.dumps(self.plan))
        args = [url, plan, self.ack_log, AGENT, self.seed * 1000 + self.incarnations, RESENDS]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, *map(str, args)], stdout=out, stderr=subprocess.STDOUT
            )

    def _lines(self) -> int:
        return self.ack_log.read_bytes().count(b"\n") if self.ack_log.exists() else 0

    def acks(self) -> list[tuple[str, bool]]:
        """(job id, newly stored) for every complete line of the ack log."""
        if not self.ack_log.exists():
            return []
        lines = self.ack_log.read_text().splitlines(keepends=True)
        return [(ln.split()[0], ln.split()[1] == "1") for ln in lines if ln.endswith("\n")]

    def writing(self) -> bool:
        """Alive and acking in this run: past its imports and first commit, so a kill lands in the commit loop."""
        assert self.proc is not None
        return self.proc.poll() is None and self._lines() > self.acks_at_start


def _pragmas(store: FleetStore) -> tuple[str, int]:
    with store.engine.connect() as conn:
        return (
            conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
            conn.exec_driver_sql("PRAGMA synchronous").scalar(),
        )


@pytest.mark.slow
def test_writers_killed_mid_commit_lose_and_duplicate_nothing(tmp_path: Path, invariants: Invariants) -> None:
    inv = invariants
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    engine = make_engine(url)
    migrate(engine)
    store = FleetStore(engine)
    mode, sync = _pragmas(store)
    inv.expect("the store's connections run WAL with synchronous=FULL", (mode, sync) == ("wal", 2), (mode, sync))

    shared = [f"shared-{i:03d}" for i in range(SHARED_IDS)]
    writers = []
    for n in range(WRITERS):
        own = [f"w{n}-{i:04d}" for i in range(OWN_IDS)]
        plan = own + shared
        random.Random(n).shuffle(plan)
        writers.append(Writer(f"w{n}", plan, tmp_path, seed=n))
    expected = {j for w in writers for j in w.plan}
    for w in writers:
        w.start(url)
    inv.record("writers started", writers=WRITERS, distinct_ids=len(expected))

    rng = random.Random(11)
    deadline = time.monotonic() + 90
    kills = 0
    while kills < TARGET_KILLS and time.monotonic() < deadline:
        candidates = [w for w in writers if w.writing()]
        if not candidates:
            if all(w.proc is not None and w.proc.poll() is not None for w in writers):
                break  # everyone finished: no more moments to kill in
            time.sleep(0.02)
            continue
        victim = rng.choice(candidates)
        time.sleep(rng.uniform(0.0, 0.05))  # a random moment inside its tight commit loop
        if victim.proc is None or victim.proc.poll() is not None:
            continue
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        kills += 1
        victim.kills += 1
        inv.record("SIGKILL", writer=victim.name, acked=len(victim.acks()))
        victim.start(url)
    inv.record("kills done", kills=kills)

    for w in writers:
        assert w.proc is not None
        rc = w.proc.wait(timeout=300)
        inv.expect(f"{w.name} finished its last run cleanly", rc == 0, w.logs[-1].read_text()[-2000:])

    acked = {j for w in writers for j, _ in w.acks()}
    # An own id acked as "not newly stored" the first time: its previous incarnation committed it and died
    # before the ack. The evidence that kills landed between a commit and its acknowledgement.
    orphan_commits = 0
    for w in writers:
        seen: set[str] = set()
        for job_id, stored in w.acks():
            if job_id not in seen and not stored and not job_id.startswith("shared"):
                orphan_commits += 1
            seen.add(job_id)
    inv.record("acks", acked=len(acked), orphan_commits=orphan_commits)

    with engine.connect() as conn:
        total, distinct = conn.exec_driver_sql(
            "SELECT COUNT(*), COUNT(DISTINCT agent || '/' || job_id) FROM job_results"
        ).one()
        doubled = conn.exec_driver_sql(
            "SELECT job_id, COUNT(*) FROM job_results GROUP BY agent, job_id HAVING COUNT(*) > 1"
        ).all()
        stored_ids = {row[0] for row in conn.exec_driver_sql("SELECT job_id FROM job_results")}
    # Plain sqlite3, outside our engine and its tuning: the file itself must be sound.
    with contextlib.closing(sqlite3.connect(tmp_path / "controller.db")) as db:
        integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    readable = store.jobs(limit=10 * len(expected))

    inv.expect(f"at least {MIN_KILLS} writers were killed while writing", kills >= MIN_KILLS, kills)
    inv.expect("every writer acked its whole plan in the end", acked == expected, len(expected - acked))
    inv.expect("every acked id is stored", acked <= stored_ids, sorted(acked - stored_ids)[:10])
    inv.expect("no id is stored twice", not doubled and total == distinct, (total, distinct, doubled[:10]))
    inv.expect("nothing lost, nothing invented", stored_ids == expected, (len(stored_ids), len(expected)))
    inv.expect(
        "every stored result is readable and names its id",
        sorted(r.job_id for r in readable) == sorted(stored_ids) and all(r.agent == AGENT for r in readable),
        len(readable),
    )
    inv.expect("PRAGMA integrity_check is ok", integrity == ["ok"], integrity)
    inv.expect("the WAL checkpoints completely", busy == 0, busy)
    pragmas = [line for w in writers for log in w.logs for line in log.read_text().splitlines() if "pragmas" in line]
    inv.expect(
        "every writer process ran WAL with synchronous=FULL",
        len(pragmas) == WRITERS + kills and set(pragmas) == {"pragmas wal 2"},
        sorted(set(pragmas)),
    )
    engine.dispose()
    inv.check()
