"""Fault scenario 2: the agent is killed with SIGKILL during the engine build and during the swap.

A real agent process serves the digits model in FP32 and has the INT8
artifact uploaded; it is then restarted with a failpoint armed
(``JETFLEET_FAILPOINTS``, common/failpoints.py) and asked to deploy INT8.
The process dies of SIGKILL (exit status -9) at the armed point, either by
the failpoint itself (``once-kill``) or from the test while it stalls there
(``sleep(5)`` + ``os.kill``). It is restarted without failpoints. Expected:

- killed mid-build or before the commit: FP32 serves after the restart; the
  interrupted deployment's record is finished by the restart (ROLLED_BACK,
  code ABORTED, a reason saying the agent stopped during it), never left
  RUNNING; the unfinished engine folder (``.tmp-*``) is gone;
- killed right after the commit: INT8 serves after the restart with its
  engine loaded from the cache (nothing rebuilt), its record ACTIVE, and
  FP32 is the rollback target;
- deployment ids stay idempotency keys across the crash: a retry with the
  interrupted id returns the stored (interrupted) record and does nothing
  (no second attempt runs under an id whose first attempt ended), while a
  new id deploys INT8 normally. Code ABORTED tells the caller the failure
  was transient: the controller's reconcile loop retries with a new id.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from agents import DigitsModel
from faults.harness import Invariants
from faults.procs_agent import AgentProc, AgentProcs, agent_processes, check_invariants, failpoints, until

from jetfleet.common.fleet import DeploymentRecord, DeploymentState, ModelSpec
from jetfleet.controller.fleet.agent_client import AgentCallError


@pytest.fixture
def agents(tmp_path: Path, invariants: Invariants) -> Iterator[AgentProcs]:
    with agent_processes(tmp_path, invariants.record) as procs:
        yield procs


def _serving_fp32_armed(agents: AgentProcs, model: DigitsModel, tmp_path: Path, armed: str) -> AgentProc:
    """An agent serving FP32 with the INT8 blob uploaded, restarted with failpoint ``armed``.

    FP32 is deployed before the failpoint is armed: its own build must not trip it.
    """
    fp32, int8 = model.fp32, model.int8
    ap = agents.start("jetson-01")
    assert ap.client.push(fp32.spec, fp32.files, deployment_id="fp32").ok
    ap.client.upload(int8.files[int8.spec.onnx.sha256], int8.spec.onnx, manifest=ap.client.sign(int8.spec, "up"))
    ap.restart(env=failpoints(tmp_path, armed))
    assert [s.spec for s in ap.active()] == [fp32.spec]
    return ap


def _deploy_until_killed(ap: AgentProc, spec: ModelSpec, deployment_id: str) -> None:
    ap.note("deploy", id=deployment_id, spec=spec.ref)
    with pytest.raises(AgentCallError) as died:
        ap.client.deploy(spec, deployment_id=deployment_id)
    assert died.value.code == grpc.StatusCode.UNAVAILABLE, died.value  # the server vanished mid-call
    ap.note("deploy call ended", id=deployment_id, code=died.value.code.name)


def _assert_interrupted(rec: DeploymentRecord, model: DigitsModel) -> None:
    """The record a restart leaves for a deployment the kill interrupted before its commit."""
    assert rec.state == DeploymentState.ROLLED_BACK, rec  # FP32 served before: it is "rolled back" to
    assert rec.code == "ABORTED" and rec.finished_at >= rec.started_at > 0
    assert "agent" in rec.reason and any(w in rec.reason for w in ("stopped", "restart", "interrupt")), rec.reason
    assert rec.previous is not None and rec.previous.spec == model.fp32.spec


def _assert_fp32_serves_then_int8_deploys(inv: Invariants, ap: AgentProc, model: DigitsModel, interrupted: str) -> None:
    """After the restart: FP32 serves, the retry of the interrupted id is answered from the record, a new id works."""
    fp32, int8 = model.fp32, model.int8
    assert [s.spec for s in ap.active()] == [fp32.spec]
    job = ap.client.run_job(test_set=fp32.spec.test_set)
    assert job.model.spec == fp32.spec and job.top1 == pytest.approx(fp32.spec.reference_accuracy, abs=0.005)
    rec = ap.record(interrupted)
    _assert_interrupted(rec, model)
    check_invariants(inv, ap, deployed=[fp32.spec, int8.spec], when="after the restart")

    retry = ap.client.deploy(int8.spec, deployment_id=interrupted)
    assert retry.record == rec and retry.code == grpc.StatusCode.ABORTED, retry  # answered, not run again
    assert rec.reason in retry.details and f"{fp32.spec.ref} still serves" in retry.details, retry.details
    assert [s.spec for s in ap.active()] == [fp32.spec]
    ap.note("deploy", id=f"{interrupted}-retry", spec=int8.spec.ref)
    again = ap.client.deploy(int8.spec, deployment_id=f"{interrupted}-retry")
    assert again.ok and again.record.state == DeploymentState.ACTIVE, again
    assert [r.deployment_id for r in ap.history()] == ["fp32", interrupted, f"{interrupted}-retry"]
    job = ap.client.run_job(test_set=int8.spec.test_set)
    assert job.model.spec == int8.spec and job.top1 == pytest.approx(int8.spec.reference_accuracy, abs=0.005)
    check_invariants(inv, ap, deployed=[fp32.spec, int8.spec], when="after a new deployment")


def test_killed_by_the_failpoint_during_the_engine_build(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    ap = _serving_fp32_armed(agents, digits_model, tmp_path, "agent.build=once-kill")
    _deploy_until_killed(ap, digits_model.int8.spec, "int8")
    assert ap.wait_dead() == -signal.SIGKILL
    assert (tmp_path / "failpoints" / "agent.build.fired").exists()
    # What the kill left: a half-finished engine folder and a RUNNING record in the committed state.
    assert len(ap.engine_leftovers()) == 1 and len(ap.engine_entries()) == 1
    (running,) = [r for r in ap.saved_state().history if r.deployment_id == "int8"]
    assert running.state == DeploymentState.RUNNING
    assert [s.spec for s in ap.saved_state().active.values()] == [digits_model.fp32.spec]

    ap.restart()
    assert not ap.engine_leftovers()
    _assert_fp32_serves_then_int8_deploys(invariants, ap, digits_model, "int8")
    assert not ap.record("int8-retry").engine_cached  # the killed build left nothing usable: built again
    invariants.check()


def test_killed_from_outside_while_building(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    ap = _serving_fp32_armed(agents, digits_model, tmp_path, "agent.build=sleep(5)")
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(_deploy_until_killed, ap, digits_model.int8.spec, "int8")
        ap.wait_log("failpoint agent.build: sleep(5)")  # the engine file is written, not yet in the cache
        assert ap.engine_leftovers()
        assert ap.kill() == -signal.SIGKILL  # a real SIGKILL from another process
        call.result(timeout=30)

    ap.restart()
    assert not ap.engine_leftovers()
    _assert_fp32_serves_then_int8_deploys(invariants, ap, digits_model, "int8")
    invariants.check()


def test_killed_before_the_commit(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    ap = _serving_fp32_armed(agents, digits_model, tmp_path, "agent.swap=once-kill")
    _deploy_until_killed(ap, int8.spec, "int8")
    assert ap.wait_dead() == -signal.SIGKILL
    # Built, smoke-tested, in the cache, but not committed: the state file still names FP32.
    assert len(ap.engine_entries()) == 2
    assert [s.spec for s in ap.saved_state().active.values()] == [fp32.spec]

    ap.restart()
    _assert_fp32_serves_then_int8_deploys(invariants, ap, digits_model, "int8")
    assert ap.record("int8-retry").engine_cached  # the engine the killed run built is reused
    invariants.check()


def test_killed_after_the_commit(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    ap = _serving_fp32_armed(agents, digits_model, tmp_path, "agent.swap.committed=once-kill")
    _deploy_until_killed(ap, int8.spec, "int8")
    assert ap.wait_dead() == -signal.SIGKILL
    saved = ap.saved_state()  # the commit point passed: INT8 is the model, FP32 the rollback target
    assert [s.spec for s in saved.active.values()] == [int8.spec]
    assert [s.spec for s in saved.previous["basic_cnn"]] == [fp32.spec]
    engines = ap.engine_entries()

    ap.restart()
    (slot,) = ap.active()
    assert slot.spec == int8.spec and slot.engine_fingerprint in engines
    assert ap.engine_entries() == engines  # loaded from the cache, nothing rebuilt
    rec = ap.record("int8")
    assert rec.state == DeploymentState.ACTIVE and rec.code == "OK" and not rec.reason, rec
    job = ap.client.run_job(test_set=int8.spec.test_set)
    assert job.model.spec == int8.spec and job.top1 == pytest.approx(int8.spec.reference_accuracy, abs=0.005)
    check_invariants(invariants, ap, deployed=[fp32.spec, int8.spec], when="after the restart")

    retry = ap.client.deploy(int8.spec, deployment_id="int8")
    assert retry.ok and retry.record == rec  # the stored outcome, nothing done again
    back = ap.client.rollback("basic_cnn", deployment_id="back")  # the committed rollback target works
    assert back.ok and back.record.spec == fp32.spec and back.record.engine_cached
    until(lambda: [s.spec for s in ap.active()] == [fp32.spec], 5, "FP32 serving again")
    check_invariants(invariants, ap, deployed=[fp32.spec, int8.spec], when="after the rollback")
    invariants.check()
