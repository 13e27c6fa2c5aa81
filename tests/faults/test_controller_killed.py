"""Fault scenario 4: the controller is killed with SIGKILL mid-deploy; after a restart the fleet converges, truthfully.

A real controller process (``jetfleet controller serve``, its registry and
fleet tables in SQLite, a pinned port) and two real agent processes
registered to it over mutual TLS serve the digits model in FP32. The
controller is restarted with a failpoint that stalls every push at one of
two moments, ``jetfleet deploy --precision int8 --devices all --no-wait`` is
run, and once every push is stalled there the controller gets a real
SIGKILL:

- ``controller.push.uploaded``: the INT8 artifacts are on the devices, no
  deployment has been asked for;
- ``controller.push.deployed``: the devices switched to INT8, the controller
  has not recorded it.

It is restarted without failpoints on the same database, PKI and port.
Expected: within 60 s every device serves INT8, by its agent's own account
and by ``jetfleet devices list`` alike, and is online (heard from since the
restart: agents reconnect with backoff); each device activated INT8 exactly
once (no redeploy of what already serves); from the deploy to the end,
whenever the controller answered, ``jetfleet status`` never claimed a device
served a model its agent was not serving as of that report (heartbeat time),
nor a deployment in a state its agent does not record; the fleet tables hold
each agent's deployments once per (agent, deployment id), in the agent's
state; the database the killed process left passes ``PRAGMA
integrity_check``, and so does the one at the end.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from agents import DigitsModel
from faults.harness import Invariants
from faults.procs_agent import (
    AgentProc,
    AgentProcs,
    ControllerProc,
    agent_processes,
    check_invariants,
    cli_json,
    copy_registry,
    failpoints,
    free_port,
    start_controller_process,
    until,
)

from jetfleet.common.fleet import DeploymentState, ModelSlot

NAMES = ("jetson-01", "jetson-02")
SLOP_S = 1.0  # a heartbeat is read on the agent before the controller stamps it: transit on a busy 2-core box


@pytest.fixture
def agents(tmp_path: Path, invariants: Invariants) -> Iterator[AgentProcs]:
    with agent_processes(tmp_path, invariants.record) as procs:
        yield procs


def _devices(ctl: ControllerProc) -> dict[str, dict] | None:
    listed = cli_json(ctl, "devices", "list")
    return None if listed is None else {d["name"]: d for d in listed}


def _integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


def _key(model: str, precision: str, version: object, activated_at: float) -> tuple[str, str, str, float]:
    return (model, precision, str(version), round(float(activated_at), 3))


def _slot_key(slot: ModelSlot) -> tuple[str, str, str, float]:
    return _key(slot.spec.model, slot.spec.precision, slot.spec.version, slot.activated_at)


@dataclass
class Truth:
    """What the agents really served (every distinct slot seen over gRPC) and what the controller claimed.

    A controller's device view is a copy of the agent's last heartbeat, stamped
    ``last_seen``: a claimed slot is true when the agent really served it and
    had not replaced it before that heartbeat (``SLOP_S`` allowed for transit).
    A deployment record the controller shows must exist on its agent in the
    same state.
    """

    agents: dict[str, AgentProc]
    slots: dict[str, dict[tuple[str, str, str, float], float]] = field(default_factory=dict)  # key -> activated_at
    comparisons: int = 0
    lies: list[str] = field(default_factory=list)

    def observe(self) -> None:
        for name, ap in self.agents.items():
            for slot in ap.active():
                self.slots.setdefault(name, {})[_slot_key(slot)] = slot.activated_at

    def _replaced_at(self, name: str, key: tuple[str, str, str, float]) -> float | None:
        """When the agent replaced slot ``key`` by a later activation of the same model (None: still serves)."""
        later = [t for k, t in self.slots.get(name, {}).items() if k[0] == key[0] and t > key[3] + 1e-3]
        return min(later) if later else None

    def compare(self, status: dict) -> None:
        """Judge one ``jetfleet status --json`` answer against the agents (observed just after it)."""
        self.observe()
        self.comparisons += 1
        for dev in status.get("devices", []):
            name, last_seen = dev["name"], float(dev.get("last_seen", 0.0))
            for s in dev.get("active", []):
                spec = s["spec"]
                key = _key(spec["model"], spec["precision"], spec["version"], s.get("activated_at", 0.0))
                if key not in self.slots.get(name, {}):
                    self.lies.append(f"{name} said to serve {key}, which its agent never served")
                    continue
                replaced = self._replaced_at(name, key)
                if replaced is not None and last_seen > replaced + SLOP_S:
                    self.lies.append(
                        f"{name} said to serve {key} as of {last_seen:.3f}, replaced on the agent at {replaced:.3f}"
                    )
        histories = {n: {r.deployment_id: r.state.name for r in ap.history()} for n, ap in self.agents.items()}
        for rec in status.get("recent", []):
            state = rec.get("state", "").removeprefix("DEPLOYMENT_STATE_")
            mine = histories.get(rec["agent"], {})
            if mine.get(rec["deployment_id"]) != state:
                self.lies.append(
                    f"{rec['agent']}: deployment {rec['deployment_id']} said {state}, "
                    f"the agent says {mine.get(rec['deployment_id'], 'nothing')}"
                )


def _serving(ap: AgentProc) -> list[str]:
    return [s.spec.precision for s in ap.active()]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["controller.push.deployed", "controller.push.uploaded"])
def test_a_controller_killed_mid_deploy_converges_after_restart(
    point: str, invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    home = tmp_path / "home"
    copy_registry(digits_model.root, home)
    port = free_port()  # pinned: the agents dial this address across the controller's restarts
    ctl = start_controller_process(tmp_path, home, port=port)
    invariants.record("controller started", pid=ctl.pid, port=ctl.port)
    try:
        aps = {name: agents.start(name, controller=ctl.address) for name in NAMES}

        def all_online(since: float = 0.0) -> bool:
            devs = _devices(ctl) or {}
            return set(devs) == set(NAMES) and all(
                d["liveness"] == "online" and float(d["last_seen"]) > since for d in devs.values()
            )

        until(all_online, 30, "every agent online")
        first = cli_json(ctl, "deploy", "--model", "basic_cnn", "--precision", "fp32", "--devices", "all")
        assert first is not None and {v["phase"] for v in first.values()} == {"active"}, first
        assert all(_serving(ap) == ["fp32"] for ap in aps.values())
        invariants.record("fp32 active on every device")

        ctl.stop()
        restarted = time.time()
        ctl = start_controller_process(tmp_path, home, port=port, env=failpoints(tmp_path, f"{point}=sleep(30)"))
        invariants.record("controller restarted with a failpoint", pid=ctl.pid, failpoint=f"{point}=sleep(30)")
        until(lambda: all_online(restarted), 30, "every agent back on the failpointed controller")

        truth = Truth(aps)
        truth.observe()
        deploy = ctl.cli("deploy", "--model", "basic_cnn", "--precision", "int8", "--devices", "all", "--no-wait")
        invariants.record("jetfleet deploy int8 --no-wait", returncode=deploy.returncode, out=deploy.stdout[-300:])
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr

        def stalled() -> bool:
            if (status := cli_json(ctl, "status")) is not None:
                truth.compare(status)
            return ctl.log().count(f"failpoint {point}") >= len(NAMES)

        until(stalled, 60, f"every push stalled at {point}", every=0.3)
        invariants.record("every push stalled at the failpoint", serving={n: _serving(ap) for n, ap in aps.items()})
        code = ctl.kill()
        invariants.record("controller SIGKILLed", returncode=code, serving={n: _serving(ap) for n, ap in aps.items()})
        invariants.expect("the controller died of SIGKILL", code == -9, code)
        left = _integrity(ctl.db)
        invariants.expect("the database the killed controller left passes integrity_check", left == "ok", left)

        restarted = time.time()
        ctl = start_controller_process(tmp_path, home, port=port)
        invariants.record("controller restarted without failpoints", pid=ctl.pid, port=ctl.port)

        def converged() -> bool:
            status = cli_json(ctl, "status")
            if status is None:
                return False
            truth.compare(status)
            served = all(_serving(ap) == ["int8"] for ap in aps.values())
            claimed = {d["name"]: [s["spec"]["precision"] for s in d.get("active", [])] for d in status["devices"]}
            decisions = {d["decision"] for d in status.get("desired", [])}
            back = all(float(d.get("last_seen", 0)) > restarted for d in status["devices"])  # heard since the restart
            return served and claimed == {n: ["int8"] for n in NAMES} and decisions == {"converged"} and back

        started = time.monotonic()
        converged_in: float | None = None
        try:
            until(converged, 60, "every device online and serving int8, as agents and controller say", every=0.3)
            converged_in = round(time.monotonic() - started, 1)
        except AssertionError as exc:
            invariants.record("no convergence", error=str(exc))
        invariants.record("converged", seconds=converged_in)
        invariants.expect("the fleet converged to int8 within 60 s of the restart", converged_in is not None)

        # what each side says, side by side, once the reports are delivered
        until(lambda: all(_outbox_pending(ap) == 0 for ap in aps.values()), 30, "the agents' outboxes drained")
        devices = _devices(ctl) or {}
        for name, ap in aps.items():
            active = ap.active()
            slot = active[0] if len(active) == 1 else None
            view = devices.get(name, {})
            claimed = [_key(s["spec"]["model"], s["spec"]["precision"], s["spec"]["version"], s["activated_at"])
                       for s in view.get("active", [])]  # fmt: skip
            invariants.expect(
                f"{name}: the agent serves int8 and `jetfleet devices list` says the same slot",
                slot is not None and slot.spec == int8.spec and claimed == [_slot_key(slot)],
                f"agent {slot and _slot_key(slot)}, controller {claimed}",
            )
            invariants.expect(f"{name} is online", view.get("liveness") == "online", view.get("liveness"))
            activations = [r.deployment_id for r in ap.history() if r.spec == int8.spec]
            invariants.expect(f"{name} activated int8 exactly once", len(activations) == 1, activations)

        invariants.expect("the controller answered during convergence", truth.comparisons >= 2, truth.comparisons)
        invariants.expect(
            "the controller never claimed a device or deployment state its agent was not in",
            not truth.lies,
            truth.lies[:6],
        )
        with sqlite3.connect(f"file:{ctl.db}?mode=ro", uri=True) as db:
            dupes = db.execute(
                "SELECT agent, deployment_id, count(*) FROM fleet_deployments GROUP BY 1, 2 HAVING count(*) > 1"
            ).fetchall()
            stored = {(a, d): s for a, d, s in db.execute("SELECT agent, deployment_id, state FROM fleet_deployments")}
        invariants.expect("each deployment is stored once per (agent, deployment id)", not dupes, dupes)
        on_agents = {(n, r.deployment_id): r.state.name for n, ap in aps.items() for r in ap.history()}
        finished = {k: s for k, s in on_agents.items() if s != DeploymentState.RUNNING.name}
        invariants.expect(
            "the controller stores every finished deployment of every agent, in the agent's state",
            stored == finished,
            f"controller {stored}, agents {finished}",
        )
        for ap in aps.values():
            check_invariants(invariants, ap, deployed=[fp32.spec, int8.spec], when="after convergence")
        invariants.expect("every agent ran throughout", all(ap.returncode is None for ap in aps.values()))
    finally:
        agents.close()  # the agents first: they report to the controller until they stop
        ctl.stop()
    final = _integrity(ctl.db)
    invariants.expect("the controller's database passes integrity_check at the end", final == "ok", final)
    invariants.check()


def _outbox_pending(ap: AgentProc) -> int:
    """Reports the agent has not delivered yet (its durable outbox, read-only)."""
    path = ap.data_dir / "outbox.db"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
