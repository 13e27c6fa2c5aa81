"""Fault scenario 1: an upload cut half way resumes, the partial file is never activated, the old model serves.

A real agent process serves the digits model in FP32. The INT8 artifact is
uploaded to it through a TCP proxy that resets the connection after about
half the file. Expected:

- the agent keeps the received prefix in staging (and nowhere else: it is not
  a stored artifact);
- deploying the INT8 spec meanwhile fails at the stage step ("not on this
  device"), is recorded as rolled back, and FP32 keeps serving jobs;
- the next upload call asks the agent where it stands and resumes from that
  non-zero offset: only the missing bytes are sent again (< 1.5× the size
  over the wire in all), the blob is verified and staging is empty;
- INT8 then deploys and serves with the registry's accuracy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from agents import CuttingProxy, DigitsModel
from faults.harness import Invariants
from faults.procs_agent import AgentProcs, agent_processes, check_invariants, until

from jetfleet.common.fleet import DeploymentState, Step
from jetfleet.controller.fleet.agent_client import RESUMABLE, AgentCallError

CHUNK = 8 * 1024  # ~19 chunks for the 150 KiB INT8 file: the cut lands between many whole messages


@pytest.fixture
def agents(tmp_path: Path, invariants: Invariants) -> Iterator[AgentProcs]:
    with agent_processes(tmp_path, invariants.record) as procs:
        yield procs


def test_an_upload_cut_half_way_resumes_and_is_never_activated(
    invariants: Invariants, agents: AgentProcs, digits_model: DigitsModel
) -> None:
    fp32, int8 = digits_model.fp32, digits_model.int8
    ap = agents.start("jetson-01")
    assert ap.client.push(fp32.spec, fp32.files, deployment_id="fp32").ok
    ref, path = int8.spec.onnx, int8.files[int8.spec.onnx.sha256]
    data = path.read_bytes()

    # 1. The link drops half way: one attempt only, so the cut state can be inspected before resuming.
    proxy = CuttingProxy(ap.port, cut_after=ref.size // 2)
    try:
        via_proxy = ap.connect(proxy.port)
        with pytest.raises(AgentCallError) as cut:
            via_proxy.upload(path, ref, chunk_size=CHUNK, attempts=1, manifest=via_proxy.sign(int8.spec, "int8"))
        invariants.record("upload cut", cut_after=proxy.cut_after, size=ref.size, code=cut.value.code.name)
        assert proxy.cuts == 1 and cut.value.code in RESUMABLE, cut.value

        # The agent keeps exactly the prefix it received, in staging only.
        offsets: list[int] = []

        def settled() -> bool:  # the stream's end is noticed and the part file closed
            offsets.append(ap.client.offset(ref).offset)
            return len(offsets) >= 3 and offsets[-1] == offsets[-2] == offsets[-3] > 0

        until(settled, 10, "the agent to keep the staged prefix", every=0.2)
        staged = offsets[-1]
        invariants.record("prefix staged", offset=staged)
        assert 0 < staged < ref.size // 2, staged  # whole chunks that crossed before the reset
        part = ap.staging / f"{ref.sha256}.part"
        assert ap.staged() == [part.name] and part.read_bytes() == data[:staged]
        assert not (ap.blobs / ref.sha256).exists()
        assert ref.sha256 not in {a.artifact.sha256 for a in ap.client.status().artifacts}
        assert not ap.client.offset(ref).present

        # 2. A deployment of the half-sent model is refused before anything is built; FP32 still serves.
        # (staging holds a prefix here, so the staging invariant is judged at the end only)
        check_invariants(invariants, ap, deployed=[fp32.spec], staging_empty=False, when="while cut")
        early = ap.client.deploy(int8.spec, deployment_id="int8-early")
        assert early.code == grpc.StatusCode.NOT_FOUND, early
        assert early.record.failed_step == Step.STAGE and early.record.state == DeploymentState.ROLLED_BACK
        assert "is not on this device" in early.details and f"{fp32.spec.ref} still serves" in early.details
        assert ap.record("int8-early").reason == early.record.reason  # recorded on the agent
        assert [s.spec for s in ap.active()] == [fp32.spec]
        job = ap.client.run_job(test_set=fp32.spec.test_set)
        assert job.model.spec == fp32.spec and job.top1 == pytest.approx(fp32.spec.reference_accuracy, abs=0.005)
        assert ap.engine_entries() == [ap.active()[0].engine_fingerprint]  # nothing was built for INT8

        # 3. Resume over the same (reconnected) link: from the agent's offset, not from zero.
        resumed = via_proxy.upload(path, ref, chunk_size=CHUNK, manifest=via_proxy.sign(int8.spec, "int8"))
        invariants.record("upload resumed", offsets=resumed.offsets, sent=resumed.sent)
    finally:
        proxy.close()
    assert resumed.offsets == (staged,) and not resumed.deduplicated
    assert resumed.sent == ref.size - staged
    wire = proxy.cut_after + resumed.sent  # the first attempt put at most cut_after bytes on the wire
    assert wire < 1.5 * ref.size, (wire, ref.size)
    blob = ap.blobs / ref.sha256
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == ref.sha256 and not ap.staged()

    # 4. Now the new model deploys and serves.
    done = ap.client.deploy(int8.spec, deployment_id="int8")
    assert done.ok and done.record.state == DeploymentState.ACTIVE, done
    job = ap.client.run_job(test_set=int8.spec.test_set)
    assert job.model.spec == int8.spec and job.top1 == pytest.approx(int8.spec.reference_accuracy, abs=0.005)
    assert [r.deployment_id for r in ap.history()] == ["fp32", "int8-early", "int8"]
    check_invariants(invariants, ap, deployed=[fp32.spec, int8.spec])
    invariants.check()
