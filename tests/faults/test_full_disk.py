"""Scenario 10: the agent's disk is full, or fills up, while an artifact uploads.

The agent (enrolled: mutual TLS, signed manifests) keeps its data folder
on a real 40 MiB tmpfs. The digits FP32 model is deployed first (it fits);
then a ballast file, standing for another writer (logs, a core dump),
takes the space while the controller pushes a 24 MiB artifact. Expected
outcome, in both ways a disk can be full:

- **known in advance**: an upload that cannot fit is refused before a
  single byte is written: RESOURCE_EXHAUSTED "not enough disk …", nothing
  staged, the free space exactly as it was;
- **discovered mid-write**: the disk fills after the agent's free-space
  check passed, so a write meets a real ENOSPC. The client gets
  RESOURCE_EXHAUSTED "disk full while receiving …", and the staged prefix is
  deleted, giving back every byte it took (a full disk must not stay full
  because of our leftovers). Three points where the disk runs out are
  covered: on a chunk boundary, mid-chunk, and mid-chunk leaving the
  chunk's last 4 KiB in the file object's buffer, where closing the file
  meets ENOSPC a second time (that case used to leak the staged file and
  answer UNKNOWN).

Throughout, the old model serves jobs with its registry accuracy, and once
the ballast is gone the same artifact uploads and verifies.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from agents import DigitsModel, RunningAgent, StartAgent, stop
from faults.harness import Invariants, MiB, fill_disk, free_bytes, small_filesystem

from jetfleet.common.fleet import ArtifactRef
from jetfleet.controller.fleet.agent_client import AgentCallError
from jetfleet.proto.v1 import common_pb2 as cpb

DISK = 40 * MiB
CHUNK = 256 * 1024  # the client's default upload chunk
BLOB = 24 * MiB  # fits the empty disk with room to spare; cannot fit once the ballast is in
MIN_FREE = MiB  # small, so the agent's own check lets the upload start and the real ENOSPC path runs
PAGE = 4096  # tmpfs allocates whole pages; Python's file buffer is 8 KiB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs; request it before ``start_agent`` so the agents stop before it is unmounted."""
    with small_filesystem(tmp_path / "disk", DISK) as root:
        yield root


def _blob(folder: Path, size: int) -> tuple[Path, ArtifactRef]:
    data = os.urandom(size)
    path = folder / "big-artifact.bin"
    path.write_bytes(data)
    return path, ArtifactRef(hashlib.sha256(data).hexdigest(), size)


def _manifest(ra: RunningAgent, digits_model: DigitsModel, ref: ArtifactRef) -> cpb.SignedManifest | None:
    """The signed manifest of "the next version" whose ONNX file is ``ref``: an enrolled agent takes no byte
    without one, so the upload is the controller's push of a new, bigger model."""
    spec = replace(digits_model.fp32.spec, version=digits_model.fp32.spec.version + 1, onnx=ref)
    return ra.client.sign(spec, uuid.uuid4().hex)


def _serving_agent(start_agent: StartAgent, disk: Path, digits_model: DigitsModel, inv: Invariants) -> RunningAgent:
    ra = start_agent("jetson-01", data_dir=disk / "agent", min_free_bytes=MIN_FREE)
    d = digits_model.fp32
    outcome = ra.client.push(d.spec, d.files)
    assert outcome.ok, outcome.details
    inv.record("deployed", spec=d.spec.ref, free_mib=free_bytes(disk) / MiB)
    return ra


def _staging(ra: RunningAgent) -> list[str]:
    return sorted(p.name for p in (ra.agent.data_dir / "artifacts" / "staging").iterdir())


def _old_model_serves(ra: RunningAgent, digits_model: DigitsModel, inv: Invariants, when: str) -> None:
    d = digits_model.fp32
    result = ra.client.run_job(test_set=d.spec.test_set)
    inv.expect(
        f"{when}: the old model serves with its registry accuracy",
        result.model.spec == d.spec and abs(result.top1 - d.spec.reference_accuracy) <= 0.005 and not result.errors,
        (result.model.spec.ref, result.top1),
    )


def _recovers(
    ra: RunningAgent, ballast: Path, path: Path, ref: ArtifactRef, manifest: cpb.SignedManifest | None, inv: Invariants
) -> None:
    ballast.unlink()
    outcome = ra.client.upload(path, ref, manifest=manifest)
    inv.record("uploaded after freeing the disk", offsets=outcome.offsets)
    inv.expect("with space again, the upload starts from 0 and completes", outcome.offsets == (0,), outcome.offsets)
    inv.expect("the stored artifact verifies", ra.agent.store.verify(ref).stat().st_size == ref.size)


def test_an_upload_that_cannot_fit_is_refused_before_any_byte(
    small_disk: Path, start_agent: StartAgent, digits_model: DigitsModel, invariants: Invariants, tmp_path: Path
) -> None:
    inv = invariants
    ra = _serving_agent(start_agent, small_disk, digits_model, inv)
    path, ref = _blob(tmp_path, BLOB)
    manifest = _manifest(ra, digits_model, ref)
    ballast = small_disk / "ballast"
    leave = 8 * MiB
    inv.record("ballast", mib=fill_disk(ballast, leave) / MiB, free_mib=free_bytes(small_disk) / MiB)

    with pytest.raises(AgentCallError) as err:
        ra.client.upload(path, ref, manifest=manifest)
    inv.record("upload refused", code=err.value.code.name, details=err.value.details)
    inv.expect("RESOURCE_EXHAUSTED", err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.code)
    inv.expect(
        "the message says how much is needed and free",
        "not enough disk" in err.value.details and "24.0 MiB needed" in err.value.details,
        err.value.details,
    )
    inv.expect("nothing staged", _staging(ra) == [], _staging(ra))
    inv.expect("not one byte written", free_bytes(small_disk) == leave, free_bytes(small_disk))
    state = ra.client.offset(ref)
    inv.expect("the agent asks for the whole artifact again", not state.present and state.offset == 0, state)
    _old_model_serves(ra, digits_model, inv, "disk full")
    _recovers(ra, ballast, path, ref, manifest, inv)
    _old_model_serves(ra, digits_model, inv, "after recovery")
    stop(ra)
    inv.check()


@pytest.mark.parametrize(
    "leave",
    [0, 25 * PAGE, CHUNK - PAGE],
    ids=["on-a-chunk-boundary", "mid-chunk", "mid-chunk-tail-buffered"],
)
def test_a_disk_that_fills_mid_upload_fails_cleanly_and_gives_the_space_back(
    leave: int,
    small_disk: Path,
    start_agent: StartAgent,
    digits_model: DigitsModel,
    invariants: Invariants,
    tmp_path: Path,
) -> None:
    inv = invariants
    ra = _serving_agent(start_agent, small_disk, digits_model, inv)
    path, ref = _blob(tmp_path, BLOB)
    manifest = _manifest(ra, digits_model, ref)
    part = ra.agent.data_dir / "artifacts" / "staging" / f"{ref.sha256}.part"
    ballast = small_disk / "ballast"
    filled: dict[str, int] = {}

    def fill_after_first_chunk(sent: int, total: int) -> None:
        """Runs in the client's sending thread: the stream waits here while another writer fills the disk.

        The agent has checked the space (the staged file exists) and written
        the first chunk; every later chunk meets the full disk.
        """
        if filled:
            return
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size == CHUNK):
            assert time.monotonic() < deadline, "the agent never staged the first chunk"
            time.sleep(0.005)
        filled["staged"] = part.stat().st_size
        filled["ballast"] = fill_disk(ballast, leave)
        inv.record("disk filled mid-upload", staged=filled["staged"], ballast_mib=filled["ballast"] / MiB, free=leave)

    with pytest.raises(AgentCallError) as err:
        ra.client.upload(path, ref, chunk_size=CHUNK, progress=fill_after_first_chunk, manifest=manifest)
    inv.record("upload failed", code=err.value.code.name, details=err.value.details)

    inv.expect("the disk filled after the agent's check passed", filled.get("staged") == CHUNK, filled)
    inv.expect("RESOURCE_EXHAUSTED", err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.code)
    inv.expect(
        "a clear message naming the artifact",
        f"disk full while receiving {ref.short}" in err.value.details,
        err.value.details,
    )
    inv.expect("the staged prefix is deleted", _staging(ra) == [], _staging(ra))
    inv.expect(
        "every byte the upload took is given back",
        free_bytes(small_disk) == leave + filled.get("staged", -1),
        free_bytes(small_disk),
    )
    state = ra.client.offset(ref)
    inv.expect("the agent asks for the whole artifact again", not state.present and state.offset == 0, state)
    _old_model_serves(ra, digits_model, inv, "disk full")
    _recovers(ra, ballast, path, ref, manifest, inv)
    stop(ra)
    inv.check()


def test_concurrent_uploads_cannot_together_eat_the_reserved_space(
    small_disk: Path, start_agent: StartAgent, digits_model: DigitsModel, invariants: Invariants, tmp_path: Path
) -> None:
    """Two 12 MiB uploads with 28 MiB free and 8 MiB to keep free: each fits alone, both would leave 4 MiB.

    Expected (the check reserves what it admits): one is refused with
    "not enough disk" before writing, the other completes, and at least
    ``min_free_bytes`` stays free. Both streams are held after their first
    chunk until both have been admitted (or one refused), so the outcome
    does not depend on which finishes first.
    """
    inv = invariants
    keep = 8 * MiB
    ra = start_agent("jetson-01", data_dir=small_disk / "agent", min_free_bytes=keep)
    assert ra.client.push(digits_model.fp32.spec, digits_model.fp32.files).ok
    staging = ra.agent.data_dir / "artifacts" / "staging"
    uploads = []
    for i in range(2):
        folder = tmp_path / f"u{i}"
        folder.mkdir()
        path, ref = _blob(folder, 12 * MiB)
        uploads.append((path, ref, _manifest(ra, digits_model, ref)))
    fill_disk(small_disk / "ballast", 28 * MiB)
    admitted, refused = threading.Event(), threading.Event()
    outcomes: dict[int, str] = {}

    def hold_until_both_admitted(sent: int, total: int) -> None:
        deadline = time.monotonic() + 10
        while not (admitted.is_set() or refused.is_set()) and time.monotonic() < deadline:
            if len(list(staging.iterdir())) >= 2:
                admitted.set()
            time.sleep(0.005)

    def send(i: int) -> None:
        path, ref, manifest = uploads[i]
        try:
            ra.client.upload(path, ref, progress=hold_until_both_admitted, manifest=manifest)
            outcomes[i] = "stored"
        except AgentCallError as exc:
            outcomes[i] = exc.details
            refused.set()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    inv.record("concurrent uploads", outcomes=outcomes, free_mib=free_bytes(small_disk) / MiB)
    inv.expect(
        "exactly one upload is refused before writing",
        sorted(o == "stored" for o in outcomes.values()) == [False, True]
        and any("not enough disk" in o for o in outcomes.values()),
        outcomes,
    )
    inv.expect(f"at least {keep // MiB} MiB stays free", free_bytes(small_disk) >= keep, free_bytes(small_disk) / MiB)
    inv.expect("nothing is left in staging", _staging(ra) == [], _staging(ra))
    _old_model_serves(ra, digits_model, inv, "after the concurrent uploads")
    stop(ra)
    inv.check()
