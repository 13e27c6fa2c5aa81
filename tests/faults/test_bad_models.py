"""Fault scenario 3: a model that fails to build or fails its smoke test rolls back by itself, once.

A real agent process serves the digits model in FP32. Expected:

- an ONNX file ONNX Runtime cannot load (an operator that does not exist)
  fails at BUILD with ONNX Runtime's message, is recorded ROLLED_BACK with
  that reason, leaves no engine behind, and FP32 keeps serving;
- the digits model in INT8 with a registry accuracy it cannot reach (1.0,
  margin 0) builds, then fails at SMOKE_TEST ("points below the
  registry"), rolled back, FP32 serves;
- no retry storm: through a real controller (``jetfleet controller serve``,
  the agent registered to it, ``jetfleet deploy``), a deployment that fails
  its smoke test is attempted on the device exactly once in the following
  5 s, and the controller reports it as blocked (a permanent failure)
  rather than retrying it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from agents import DigitsModel
from faults.harness import Invariants
from faults.procs_agent import (
    AgentProcs,
    agent_processes,
    check_invariants,
    copy_registry,
    start_controller_process,
    until,
)

from jetfleet.common.fleet import ArtifactRef, DeploymentState, Step
from jetfleet.common.hashing import sha256_file


@pytest.fixture
def agents(tmp_path: Path, invariants: Invariants) -> Iterator[AgentProcs]:
    with agent_processes(tmp_path, invariants.record) as procs:
        yield procs


def unknown_op_model(path: Path) -> Path:
    """A well-formed ONNX file with the digits model's input and output, whose only node no runtime knows."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["input"], ["logits"])],
        "unknown",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 10])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_model_that_does_not_build_rolls_back(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    fp32 = digits_model.fp32
    ap = agents.start("jetson-01")
    assert ap.client.push(fp32.spec, fp32.files, deployment_id="fp32").ok
    engines = ap.engine_entries()
    bad_file = unknown_op_model(tmp_path / "unknown.onnx")
    bad_ref = ArtifactRef(*sha256_file(bad_file))
    bad = replace(fp32.spec, version=2, onnx=bad_ref)

    invariants.record("deploy", id="bad-build", spec=bad.ref, onnx=bad_ref.short)
    outcome = ap.client.push(bad, {**fp32.files, bad_ref.sha256: bad_file}, deployment_id="bad-build")
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert outcome.record.failed_step == Step.BUILD and outcome.record.state == DeploymentState.ROLLED_BACK
    assert "NoSuchOp" in outcome.record.reason, outcome.record.reason
    assert f"{fp32.spec.ref} still serves" in outcome.details
    rec = ap.record("bad-build")  # the reason is on the agent, for `jetfleet status` and the controller
    assert rec.state == DeploymentState.ROLLED_BACK and rec.failed_step == Step.BUILD
    assert rec.reason == outcome.record.reason and rec.code == "INVALID_ARGUMENT"

    assert [s.spec for s in ap.active()] == [fp32.spec]
    job = ap.client.run_job(test_set=fp32.spec.test_set)
    assert job.model.spec == fp32.spec and job.top1 == pytest.approx(fp32.spec.reference_accuracy, abs=0.005)
    assert ap.engine_entries() == engines  # no engine for the model that did not build
    assert [r.deployment_id for r in ap.history()] == ["fp32", "bad-build"]  # one attempt, no retry by the agent
    check_invariants(invariants, ap, deployed=[fp32.spec])
    invariants.check()


def test_a_model_that_fails_its_smoke_test_rolls_back(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    ap = agents.start("jetson-01")
    assert ap.client.push(fp32.spec, fp32.files, deployment_id="fp32").ok
    unreachable = replace(int8.spec, reference_accuracy=1.0)  # the registry "says" 100 %: the model gets ~98 %

    invariants.record("deploy", id="bad-smoke", spec=unreachable.ref, reference_accuracy=1.0, margin=0)
    outcome = ap.client.push(unreachable, int8.files, deployment_id="bad-smoke", smoke_margin=0.0)
    assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION, outcome
    rec = outcome.record
    assert rec.failed_step == Step.SMOKE_TEST and rec.state == DeploymentState.ROLLED_BACK
    assert "points below the registry" in rec.reason and "allowed: 0 points" in rec.reason, rec.reason
    assert rec.previous is not None and rec.previous.spec == fp32.spec
    assert ap.record("bad-smoke") == rec

    assert [s.spec for s in ap.active()] == [fp32.spec]
    job = ap.client.run_job(test_set=fp32.spec.test_set)
    assert job.model.spec == fp32.spec and job.top1 == pytest.approx(fp32.spec.reference_accuracy, abs=0.005)
    assert [r.deployment_id for r in ap.history()] == ["fp32", "bad-smoke"]
    check_invariants(invariants, ap, deployed=[fp32.spec])
    invariants.check()


def _registry_with_unreachable_int8(digits_model: DigitsModel, home: Path) -> None:
    """A copy of the registry whose INT8 artifact claims 100 % accuracy: every smoke test of it fails."""
    copy_registry(digits_model.root, home)
    with sqlite3.connect(home / "registry.db") as db:
        changed = db.execute(
            "UPDATE metrics SET value = 1.0 WHERE artifact_kind = 'onnx-int8-qdq' AND name = 'accuracy'"
        ).rowcount
    assert changed == 1


@pytest.mark.slow
def test_the_controller_does_not_retry_a_permanent_failure(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel, tmp_path: Path
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    home = tmp_path / "home"
    _registry_with_unreachable_int8(digits_model, home)
    controller = start_controller_process(tmp_path, home)
    try:
        ap = agents.start("jetson-01", controller=controller.address, extra_args=["--smoke-margin", "0"])

        def devices() -> dict[str, dict]:
            out = controller.cli("devices", "list", "--json")
            assert out.returncode == 0, out.stderr
            return {d["name"]: d for d in json.loads(out.stdout)}

        until(lambda: devices().get("jetson-01", {}).get("liveness") == "online", 30, "jetson-01 online")
        first = controller.cli("deploy", "--model", "basic_cnn", "--precision", "fp32", "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        assert json.loads(first.stdout)["jetson-01"]["phase"] == "active"

        failed = controller.cli("deploy", "--model", "basic_cnn", "--precision", "int8", "--json")
        failed_at = time.monotonic()
        invariants.record("jetfleet deploy int8", returncode=failed.returncode, out=failed.stdout)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        outcome = json.loads(failed.stdout)["jetson-01"]
        assert outcome["phase"] in ("failed", "blocked") and "points below the registry" in outcome["message"]

        time.sleep(max(0.0, 5.0 - (time.monotonic() - failed_at)))  # five reconcile ticks at least (1 s each)
        attempts = [r for r in ap.history() if r.spec.precision == "int8"]
        invariants.record("int8 attempts on the agent after 5 s", ids=[r.deployment_id for r in attempts])
        assert len(attempts) == 1, [(r.deployment_id, r.state.name, r.reason) for r in attempts]
        (rec,) = attempts
        assert rec.state == DeploymentState.ROLLED_BACK and rec.failed_step == Step.SMOKE_TEST
        assert [s.spec for s in ap.active()] == [fp32.spec]

        status = controller.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        (desired,) = json.loads(status.stdout)["desired"]
        assert desired["decision"] == "blocked" and "FAILED_PRECONDITION" in desired["reason"], desired
        check_invariants(invariants, ap, deployed=[fp32.spec])
        assert rec.spec == replace(int8.spec, reference_accuracy=1.0)  # what the controller sent: the registry's
        invariants.check()
    finally:
        agents.close()  # the agents first: they report to the controller until they stop
        controller.stop()
