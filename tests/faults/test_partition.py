"""Fault scenario 5: a network partition between the controller and an agent, mid-job; nothing is lost or doubled.

A real controller process listens on the host; a real agent process runs in
its own network namespace (``faults/netns.py``), joined to the host by a veth
pair, and talks to the controller over mutual TLS across that link. The agent
serves the digits model in FP32. ``jetfleet jobs run`` starts a long job on
it through the controller; while the job runs the link is cut (``ip link set
<host end> down``: packets are dropped, no reset), held down, then healed.
Expected:

- during the partition the agent keeps running and serving: the job started
  before the cut completes and its result waits in the agent's durable
  outbox; a job asked for from inside the namespace runs too (and queues its
  result); the controller calls the device offline and has neither result;
- after healing, within 60 s, the outbox drains, the device is online again,
  and every job result lands in the controller exactly once (``jetfleet jobs
  list`` and the ``job_results`` table), with the numbers the agent measured;
- the CLI that started the job may report a failure for it (its call crossed
  the partition), but may not hang: it ends within 60 s of the heal;
- the agent's own invariants hold (``check_invariants``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agents import DigitsModel
from faults.harness import Invariants
from faults.netns import Namespace, network_namespaces
from faults.procs_agent import (
    AgentProc,
    AgentProcs,
    ControllerProc,
    agent_processes,
    check_invariants,
    cli_json,
    copy_registry,
    fleet_pki_of,
    free_port,
    start_controller_process,
    until,
)
from google.protobuf import json_format

from jetfleet.proto.v1 import controller_pb2 as cpb

AGENT_PORT = 7443  # the namespace is the agent's own: any fixed port is free there
JOB_S = 8.0  # how long the job crossing the partition should run (calibrated on this machine first)
LOCAL_JOB = "local-during-partition"

# A client inside the namespace: the agent's status, and a short job run on it directly (as an operator on
# the device's own network would), printed as JSON. The link to the controller is down meanwhile.
INSIDE = """
import json, sys
from pathlib import Path
from jetfleet.common.fleet import ArtifactRef
from jetfleet.controller.fleet.agent_client import AgentClient
from jetfleet.controller.fleet.security import FleetPKI
from jetfleet.proto import convert
pki, address, name, sha, size, job_id = sys.argv[1:]
pki = FleetPKI(Path(pki))
with AgentClient(address, name, credentials=pki.controller_credentials(), signer=pki.signer()) as c:
    active = [convert.slot_from_pb(s).spec.ref for s in c.status().active]
    r = c.run_job(test_set=ArtifactRef(sha, int(size)), job_id=job_id, warmup=0, iterations=20)
print(json.dumps({"active": active, "job_id": r.job_id, "items": r.items}))
"""


@pytest.fixture
def namespace(invariants: Invariants) -> Iterator[Namespace]:
    with network_namespaces(1, invariants.record) as (ns,):
        yield ns


@pytest.fixture
def agents(tmp_path: Path, invariants: Invariants, namespace: Namespace) -> Iterator[AgentProcs]:
    with agent_processes(tmp_path, invariants.record) as procs:  # stopped before the namespace goes
        yield procs


def _device(ctl: ControllerProc, name: str) -> dict:
    listed = cli_json(ctl, "devices", "list") or []
    return next((d for d in listed if d["name"] == name), {})


def _queued(ap: AgentProc) -> list[tuple[str, str]]:
    """The agent's undelivered reports as (kind, id), oldest first: its outbox, read-only."""
    path = ap.data_dir / "outbox.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT kind, payload FROM outbox ORDER BY id").fetchall()
    out = []
    for kind, payload in rows:
        if kind == "JobResultReport":
            out.append((kind, cpb.JobResultReport.FromString(payload).result.job_id))
        else:
            out.append((kind, cpb.DeploymentReport.FromString(payload).record.deployment_id))
    return out


def _queued_result(ap: AgentProc, job_id: str) -> dict[str, Any]:
    """The job result the agent queued for ``job_id``, as JSON (what it measured), or {} if none is queued."""
    path = ap.data_dir / "outbox.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM outbox WHERE kind = 'JobResultReport'").fetchall()
    for (payload,) in rows:
        result = cpb.JobResultReport.FromString(payload).result
        if result.job_id == job_id:
            return json_format.MessageToDict(result, preserving_proto_field_name=True)
    return {}


def _cpu_share(pid: int, window: float = 0.5) -> float:
    """The share of one core process ``pid`` used over the next ``window`` seconds (the kernel's own counters).

    An idle agent (heartbeats, telemetry) uses a few percent; a job's inference
    loop a whole core: how the test sees, from outside, that the job is running.
    """

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before, began = ticks(), time.monotonic()
    time.sleep(window)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - began)


def _stored_jobs(ctl: ControllerProc) -> dict[str, int]:
    """job_id -> rows in the controller's job_results table (read-only)."""
    with sqlite3.connect(f"file:{ctl.db}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT job_id, count(*) FROM job_results GROUP BY job_id").fetchall())


@pytest.mark.slow
def test_a_partition_mid_job_loses_and_doubles_nothing(
    invariants: Invariants, namespace: Namespace, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    ns, fp32 = namespace, digits_model.fp32
    home = tmp_path / "home"
    copy_registry(digits_model.root, home)
    port = free_port("0.0.0.0")
    ctl = start_controller_process(tmp_path, home, port=port, host="0.0.0.0")  # the host end of the link too
    invariants.record("controller started", pid=ctl.pid, port=port)
    cli_runs = ThreadPoolExecutor(max_workers=1)
    try:
        ap = agents.start(
            "jetson-01", controller=f"{ns.host_ip}:{port}", prefix=ns.prefix, listen=f"{ns.ns_ip}:{AGENT_PORT}"
        )
        until(lambda: _device(ctl, "jetson-01").get("liveness") == "online", 30, "jetson-01 online")
        assert _device(ctl, "jetson-01")["address"] == f"{ns.ns_ip}:{AGENT_PORT}"  # dialled across the link
        first = cli_json(ctl, "deploy", "--model", "basic_cnn", "--precision", "fp32", "--devices", "all")
        assert first is not None and first["jetson-01"]["phase"] == "active", first

        # calibrate: how many timed batches make a JOB_S-long job on this machine, now
        began = time.monotonic()
        ap.client.run_job(test_set=fp32.spec.test_set, warmup=0, iterations=300, job_id="calibration")
        per_batch = (time.monotonic() - began) / 300
        iterations = max(300, int(JOB_S / per_batch))
        until(lambda: not _queued(ap), 30, "the outbox drained before the job")
        invariants.record("calibrated", per_batch_ms=round(per_batch * 1000, 3), iterations=iterations)

        job = cli_runs.submit(
            ctl.cli, "jobs", "run", "--model", "basic_cnn", "--devices", "jetson-01",
            "--iterations", str(iterations), "--warmup", "0", "--json", timeout=300,
        )  # fmt: skip
        invariants.record("jetfleet jobs run started", iterations=iterations)
        until(lambda: _cpu_share(ap.pid) > 0.3, 30, "the agent busy with the job", every=0)
        invariants.record("the agent is running the job (a third of a core busy or more)")
        ns.cut()
        cut_at = time.monotonic()
        queued_at_cut = _queued(ap)
        invariants.expect("the job was still running when the link was cut", not queued_at_cut, queued_at_cut)

        # partitioned: the agent serves on; the controller hears nothing
        inside = ns.run(
            sys.executable, "-c", INSIDE, str(fleet_pki_of(tmp_path).folder), f"{ns.ns_ip}:{AGENT_PORT}",
            "jetson-01", fp32.spec.test_set.sha256, str(fp32.spec.test_set.size), LOCAL_JOB,  # type: ignore[union-attr]
        )  # fmt: skip
        invariants.record("status and a job from inside the namespace", rc=inside.returncode, out=inside.stdout[-300:])
        local = json.loads(inside.stdout) if inside.returncode == 0 else {}
        invariants.expect(
            "during the partition the agent serves fp32 and runs a job asked for on its side of the link",
            local.get("active") == [fp32.spec.ref] and local.get("job_id") == LOCAL_JOB,
            inside.stdout[-300:] + inside.stderr[-600:],
        )

        def long_job_queued() -> list[str]:
            return [i for k, i in _queued(ap) if k == "JobResultReport" and i != LOCAL_JOB]

        try:
            until(lambda: long_job_queued(), 60, "the long job's result in the agent's outbox", every=0.2)
        except AssertionError as exc:
            invariants.record("the long job never finished", error=str(exc))
        (job_id,) = long_job_queued() or [""]
        queued, measured = _queued(ap), _queued_result(ap, job_id)
        invariants.record("outbox during the partition", queued=queued)
        invariants.expect(
            "the job started before the cut finished during it, its result queued in the outbox",
            bool(job_id) and not ns.up,
            queued,
        )
        invariants.expect(
            "the job run during the partition is queued too", ("JobResultReport", LOCAL_JOB) in queued, queued
        )
        try:
            until(lambda: _device(ctl, "jetson-01").get("liveness") == "offline", 30, "jetson-01 offline")
        except AssertionError as exc:
            invariants.record("never offline", error=str(exc))
        seen = _device(ctl, "jetson-01")
        invariants.expect(
            "the controller calls the partitioned device offline", seen.get("liveness") == "offline", seen
        )
        stored = _stored_jobs(ctl)
        invariants.expect(
            "the controller has neither result during the partition",
            job_id not in stored and LOCAL_JOB not in stored,
            stored,
        )
        invariants.expect("the agent process ran through the partition", ap.returncode is None, ap.returncode)
        invariants.record("partition held", seconds=round(time.monotonic() - cut_at, 1))

        ns.heal()
        healed, healed_at = time.time(), time.monotonic()

        def delivered() -> bool:
            device = _device(ctl, "jetson-01")
            back = device.get("liveness") == "online" and float(device.get("last_seen", 0)) > healed
            return back and not _queued(ap) and {job_id, LOCAL_JOB} <= set(_stored_jobs(ctl))

        try:
            until(delivered, 60, "the outbox drained into the controller, the device online", every=0.5)
            invariants.record("delivered after the heal", seconds=round(time.monotonic() - healed_at, 1))
        except AssertionError as exc:
            invariants.record("not delivered", error=str(exc), queued=_queued(ap), device=_device(ctl, "jetson-01"))
        device = _device(ctl, "jetson-01")
        invariants.expect("the device is online again", device.get("liveness") == "online", device.get("liveness"))
        invariants.expect("the agent's outbox drained", not _queued(ap), _queued(ap))

        try:
            ran = job.result(timeout=max(1.0, 60 - (time.monotonic() - healed_at)))
            try:
                said = json.loads(ran.stdout)
                said = {"results": [r["job_id"] for r in said["results"]], "failures": said["failures"]}
            except (ValueError, KeyError, TypeError):
                said = {"stdout": ran.stdout[-300:], "stderr": ran.stderr[-300:]}
            invariants.record("jetfleet jobs run ended", returncode=ran.returncode, **said)
            cli_ended = True
        except TimeoutError:
            cli_ended = False
        invariants.expect("the CLI that started the job ends within 60 s of the heal", cli_ended)

        listed = cli_json(ctl, "jobs", "list", "--limit", "100") or []
        ids = [r["job_id"] for r in listed]
        for jid in (job_id, LOCAL_JOB, "calibration"):
            invariants.expect(f"`jetfleet jobs list` has job {jid!r} exactly once", ids.count(jid) == 1, ids)
        with sqlite3.connect(f"file:{ctl.db}?mode=ro", uri=True) as db:
            dupes = db.execute(
                "SELECT job_id, count(*) FROM job_results GROUP BY job_id HAVING count(*) > 1"
            ).fetchall()
        invariants.expect("no job result is stored twice", not dupes, dupes)
        mine = next((r for r in listed if r["job_id"] == job_id), {})
        keys = ("agent", "model", "items", "iterations", "top1", "latency", "throughput")
        invariants.expect(
            "the controller stores the numbers the agent measured (and queued during the partition)",
            bool(measured) and {k: mine.get(k) for k in keys} == {k: measured.get(k) for k in keys},
            f"controller { ({k: mine.get(k) for k in keys}) }, agent { ({k: measured.get(k) for k in keys}) }",
        )
        invariants.expect("the long job ran the iterations asked for", measured.get("iterations") == iterations)
        check_invariants(invariants, ap, deployed=[fp32.spec], when="after the heal")
    finally:
        if not ns.up:
            ns.heal()  # let the agent stop gracefully
        agents.close()  # the agents first: they report to the controller until they stop
        ctl.stop()
        cli_runs.shutdown(wait=False, cancel_futures=True)
    invariants.check()
