"""Artifact uploads to a real agent: chunked, resumable after a cut connection, verified, deduplicated.

These agents run unenrolled (plaintext, no manifests): the transport is what is under test here; that an
enrolled agent accepts no byte without a signed manifest is tested in tests/faults/test_manifests.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
from pathlib import Path

import grpc
import pytest
from agents import CuttingProxy, StartAgent

from jetfleet.common.fleet import ArtifactRef
from jetfleet.controller.fleet.agent_client import AgentCallError, AgentClient
from jetfleet.proto import convert
from jetfleet.proto.v1 import agent_pb2 as apb
from jetfleet.proto.v1 import common_pb2 as cpb

MiB = 1024 * 1024


def _blob(tmp_path: Path, size: int, name: str = "model.onnx") -> tuple[Path, ArtifactRef]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, ArtifactRef(hashlib.sha256(data).hexdigest(), size)


def _raw_upload(client: AgentClient, ref: ArtifactRef, chunks: list[bytes], offset: int = 0) -> apb.UploadResult:
    header = apb.UploadChunk(header=apb.UploadHeader(artifact=convert.artifact_to_pb(ref), offset=offset))
    messages = [header, *(apb.UploadChunk(data=c) for c in chunks)]
    return client.stub.UploadArtifact(iter(messages), timeout=10)


def test_upload_then_dedup(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, 3 * MiB + 17)
    first = ra.client.upload(path, ref, chunk_size=256 * 1024)
    assert not first.deduplicated and first.sent == ref.size and first.offsets == (0,)
    stored = ra.agent.data_dir / "artifacts" / "blobs" / ref.sha256
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == ref.sha256
    assert stored.stat().st_mode & 0o777 == 0o444
    again = ra.client.upload(path, ref)
    assert again.deduplicated and again.sent == 0
    # A sender that streams anyway: accepted without writing anything.
    reply = _raw_upload(ra.client, ref, [path.read_bytes()[:MiB]])
    assert reply.deduplicated and reply.received == 0


def test_upload_resumes_after_the_connection_is_cut(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, 8 * MiB)
    proxy = CuttingProxy(ra.agent.port, cut_after=3 * MiB)
    client = AgentClient(f"127.0.0.1:{proxy.port}", "via-proxy")
    try:
        outcome = client.upload(path, ref, chunk_size=256 * 1024)
    finally:
        client.close()
        proxy.close()
    assert proxy.cuts == 1
    assert len(outcome.offsets) >= 2 and outcome.offsets[0] == 0 and outcome.offsets[-1] > 0
    assert outcome.offsets[-1] <= 3 * MiB  # resumed from what had arrived, not from zero
    assert outcome.sent < 2 * ref.size
    stored = ra.agent.store.verify(ref)
    assert stored.stat().st_size == ref.size
    assert not list((ra.agent.data_dir / "artifacts" / "staging").iterdir())


def test_hash_mismatch_is_refused_and_staging_removed(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, MiB)
    data = bytearray(path.read_bytes())
    data[1234] ^= 0x01  # one flipped bit in transit
    with pytest.raises(grpc.RpcError) as err:
        _raw_upload(ra.client, ref, [bytes(data[:600_000]), bytes(data[600_000:])])
    assert err.value.code() == grpc.StatusCode.DATA_LOSS and "corrupted in transit" in err.value.details()
    assert not ra.agent.store.has(ref)
    assert ra.client.offset(ref).offset == 0
    assert not list((ra.agent.data_dir / "artifacts" / "staging").iterdir())


def test_truncated_upload_is_kept_for_resume_and_never_stored(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, MiB)
    data = path.read_bytes()
    with pytest.raises(grpc.RpcError) as err:
        _raw_upload(ra.client, ref, [data[:400_000]])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "resume from offset 400000" in str(
        err.value.details()
    )
    assert not ra.agent.store.has(ref) and ra.client.offset(ref).offset == 400_000
    with pytest.raises(grpc.RpcError) as wrong:
        _raw_upload(ra.client, ref, [data[100:]], offset=100)
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must resume at byte 400000" in str(
        wrong.value.details()
    )
    reply = _raw_upload(ra.client, ref, [data[400_000:]], offset=400_000)
    assert reply.received == len(data) - 400_000 and ra.agent.store.has(ref)


def test_overrun_and_malformed_streams_are_refused(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, 1000)
    with pytest.raises(grpc.RpcError) as over:
        _raw_upload(ra.client, ref, [path.read_bytes(), b"extra"])
    assert over.value.code() == grpc.StatusCode.DATA_LOSS and "overran its declared size" in over.value.details()
    with pytest.raises(grpc.RpcError) as headless:
        ra.client.stub.UploadArtifact(iter([apb.UploadChunk(data=b"x")]), timeout=5)
    assert headless.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = apb.UploadChunk(header=apb.UploadHeader(artifact=cpb.ArtifactRef(sha256="../../etc/passwd", size=4)))
    with pytest.raises(grpc.RpcError) as traversal:
        ra.client.stub.UploadArtifact(iter([bad]), timeout=5)
    assert traversal.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a sha256" in traversal.value.details()
    assert not ra.agent.store.has(ref)


def test_not_enough_disk_is_refused_before_any_byte(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(min_free_bytes=1 << 60, insecure=True)  # "keep an exabyte free": no disk qualifies
    path, ref = _blob(tmp_path, MiB)
    with pytest.raises(AgentCallError) as err:
        ra.client.upload(path, ref)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "not enough disk" in err.value.details
    assert not list((ra.agent.data_dir / "artifacts" / "staging").iterdir())
    quota = start_agent("jetson-02", max_store_bytes=MiB // 2, insecure=True)
    with pytest.raises(AgentCallError, match="quota exceeded"):
        quota.client.upload(path, ref)


def test_concurrent_uploads_of_one_artifact_do_not_mix(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, 16 * MiB)
    results, errors = [], []

    def send() -> None:
        client = AgentClient(f"127.0.0.1:{ra.agent.port}")
        try:
            results.append(client.upload(path, ref, chunk_size=64 * 1024))
        except Exception as exc:  # recorded and asserted below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert ra.agent.store.verify(ref).stat().st_size == ref.size


def test_upload_memory_stays_within_a_few_chunks(start_agent: StartAgent, tmp_path: Path) -> None:
    ra = start_agent(insecure=True)
    path, ref = _blob(tmp_path, 32 * MiB)
    tracemalloc.start()
    try:
        ra.client.upload(path, ref, chunk_size=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak Python allocation {peak / MiB:.1f} MiB for a 32 MiB upload"
