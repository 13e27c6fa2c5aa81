"""Scenario 7: untrusted files that try to make us read outside them or run code.

**ONNX with external data.** Three copies of the real digits FP32 model,
each with one weight tensor moved to an "external file": ``../../secret.bin``
(which from the agent's blob folder is a file in the agent's data folder),
an absolute path (on a ``Constant`` node's tensor), and the hash-name of
another artifact in the agent's own store ("inside the folder", which ONNX
Runtime would read). Each is pushed, under a valid signed manifest (the
model came through the pipeline; the manifest vouches for its bytes, not
for what they point to), to a real enrolled agent serving the genuine model. Expected: every deployment fails at the VERIFY step,
before any engine is built, with INVALID_ARGUMENT and a reason naming the
tensor and the file; the previous model still serves with its registry
accuracy; no engine was added to the cache; and inotify saw no process
open or read any of the three targets.

(The check is ``jetfleet.agent.onnx_guard.check_onnx_file``, called by the
agent's activation right after the sha256 verification. Until that call is
wired, these deployments fail at BUILD or, for the neighbour artifact, read
it, and this test fails.)

**Pickle offered as a checkpoint.** Real ``torch.save`` archives whose
pickle runs code when loaded (``builtins.exec``, ``os.system``), and a bare
pickle stream. A positive control proves each payload does create its
sentinel file when loaded unsafely. Expected: ``load_checkpoint`` raises
``JetfleetError`` with a one-line reason, ``jetfleet evaluate`` exits 1
with an ``error:`` line and no traceback, and the sentinel never appears.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
import torch
from agents import DigitsModel, StartAgent
from faults.harness import Invariants, OpenWitness
from onnx import helper, numpy_helper

from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ArtifactRef, DeploymentState, Step
from jetfleet.common.hashing import sha256_file
from jetfleet.controller.training.checkpoint import FORMAT, load_checkpoint
from jetfleet.proto import convert

# ----------------------------------------------------------------------------- hostile ONNX files


def _external(tensor: onnx.TensorProto, location: str) -> onnx.TensorProto:
    """A copy of ``tensor`` whose bytes are said to live at ``location``."""
    out = onnx.TensorProto()
    out.CopyFrom(tensor)
    nbytes = numpy_helper.to_array(tensor).nbytes
    out.ClearField("raw_data")
    out.ClearField("float_data")
    out.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(nbytes))):
        entry = out.external_data.add()
        entry.key, entry.value = key, value
    return out


def external_initializer(model: onnx.ModelProto, location: str) -> str:
    """The first conv's weight initializer moved out; returns the tensor's name."""
    weight = model.graph.initializer[0]
    model.graph.initializer[0].CopyFrom(_external(weight, location))
    return weight.name


def external_constant(model: onnx.ModelProto, location: str) -> str:
    """The first conv's weight becomes a ``Constant`` node whose value tensor is external."""
    weight = _external(model.graph.initializer[0], location)
    del model.graph.initializer[0]
    model.graph.node.insert(0, helper.make_node("Constant", [], [weight.name], value=weight, name="weight_const"))
    return weight.name


def hostile_onnx(base: Path, out: Path, move: Callable[[onnx.ModelProto, str], str], location: str) -> str:
    """Write ``base`` with one tensor made external by ``move``; returns the tensor's name."""
    model = onnx.load(base)
    name = move(model, location)
    out.write_bytes(model.SerializeToString())  # not onnx.save: it must not touch external data either
    return name


def _secret(path: Path, size: int = 256 * 1024) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(7).bytes(size))
    return path


def test_onnx_files_with_external_data_are_refused_before_build_and_nothing_is_read(
    start_agent: StartAgent, digits_model: DigitsModel, invariants: Invariants, tmp_path: Path
) -> None:
    inv = invariants
    good = digits_model.fp32
    ra = start_agent()
    assert ra.client.push(good.spec, good.files).ok
    engines = ra.agent.data_dir / "engines"
    engines_before = sorted(p.name for p in engines.iterdir())
    blobs = ra.agent.data_dir / "artifacts" / "blobs"
    # "Another model's weights", stored on the agent like any artifact (uploaded under its own signed manifest).
    neighbour = _secret(tmp_path / "neighbour.bin")
    neighbour_ref = ArtifactRef(*sha256_file(neighbour))
    neighbour_spec = replace(good.spec, model="other_model", onnx=neighbour_ref)
    ra.client.upload(neighbour, neighbour_ref, manifest=ra.client.sign(neighbour_spec, uuid.uuid4().hex))
    escape = _secret(ra.agent.data_dir / "secret.bin")
    assert (blobs / "../../secret.bin").resolve() == escape.resolve()  # where a backend would look
    outside = _secret(tmp_path / "outside" / "secret.bin")
    targets = {
        "escape": (external_initializer, "../../secret.bin", escape),
        "absolute": (external_constant, str(outside), outside),
        "neighbour": (external_initializer, neighbour_ref.sha256, blobs / neighbour_ref.sha256),
    }
    base = good.files[good.spec.onnx.sha256]

    with OpenWitness() as witness:
        for target in targets.values():
            witness.watch(target[2])
        for n, (case, (move, location, target)) in enumerate(targets.items(), start=1):
            path = tmp_path / f"hostile-{case}.onnx"
            tensor = hostile_onnx(base, path, move, location)
            ref = ArtifactRef(*sha256_file(path))
            hostile = replace(good.spec, version=good.spec.version + n, onnx=ref)
            outcome = ra.client.push(hostile, {**good.files, ref.sha256: path})  # signed: the pipeline trusted it
            rec = outcome.record
            inv.record(
                "deployed hostile model", case=case, code=outcome.code.name, step=rec.failed_step, reason=rec.reason
            )
            inv.expect(f"{case}: INVALID_ARGUMENT", outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome.code)
            inv.expect(
                f"{case}: rolled back at VERIFY, before any build",
                rec.state == DeploymentState.ROLLED_BACK and rec.failed_step == Step.VERIFY,
                (rec.state, rec.failed_step),
            )
            inv.expect(
                f"{case}: the reason names the tensor and the file",
                f"stores tensor {tensor!r}" in rec.reason and location in rec.reason and "self-contained" in rec.reason,
                rec.reason,
            )
            inv.expect(f"{case}: the caller is told the old model serves", "still serves" in outcome.details, outcome)
            active = [convert.spec_from_pb(s.spec) for s in ra.client.status().active]
            inv.expect(f"{case}: the genuine model is the active one", active == [good.spec], [a.ref for a in active])
            inv.expect(f"{case}: {target.name} was never opened", witness.events() == [], witness.events())
        inv.expect("the engine cache is unchanged", sorted(p.name for p in engines.iterdir()) == engines_before)
    result = ra.client.run_job(test_set=good.spec.test_set)
    inv.expect(
        "the genuine model serves with its registry accuracy",
        result.model.spec == good.spec and abs(result.top1 - good.spec.reference_accuracy) <= 0.005,
        result.top1,
    )
    inv.check()


def test_the_neighbour_artifact_really_would_be_read(digits_model: DigitsModel, tmp_path: Path) -> None:
    """Positive control: ONNX Runtime follows an external location inside the model's folder, and inotify sees it.

    So the agent test above is not vacuous: without the guard, its
    "neighbour" model makes the backend open another artifact of the store.
    """
    import onnxruntime as ort

    good = digits_model.fp32
    folder = tmp_path / "blobs"
    neighbour = _secret(folder / ("ab" * 32))
    model = folder / ("cd" * 32)
    hostile_onnx(good.files[good.spec.onnx.sha256], model, external_initializer, neighbour.name)
    with OpenWitness() as witness:
        witness.watch(neighbour)
        ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])  # builds with the stolen bytes
        assert (neighbour, "open") in witness.events()


# ----------------------------------------------------------------------------- pickle payloads


class _Exec:
    """Unpickling this runs ``code`` through ``builtins.exec``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


class _System:
    """Unpickling this runs a shell command (pickled as ``posix.system``)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def _checkpoint_dict(payload: object) -> dict[str, Any]:
    """A checkpoint with every required key, so only the payload can make loading fail."""
    return {
        "format": FORMAT,
        "model": "basic_cnn",
        "num_classes": 10,
        "in_channels": 1,
        "state_dict": {"features.0.0.weight": torch.zeros(2, 1, 3, 3)},
        "preprocess": {"input_size": [8, 8], "channels": 1},
        "config": {"innocent": payload},
    }


def write_payload(kind: str, path: Path, sentinel: Path) -> Path:
    """A hostile checkpoint at ``path`` that creates ``sentinel`` when unpickled."""
    code = f"open({str(sentinel)!r}, 'w').write('code ran')"
    if kind == "zip-exec":
        torch.save(_checkpoint_dict(_Exec(code)), path)
    elif kind == "zip-os-system":
        torch.save(_checkpoint_dict(_System(f"echo code ran > '{sentinel}'")), path)
    elif kind == "bare-pickle":
        path.write_bytes(pickle.dumps(_checkpoint_dict(_Exec(code))))
    else:
        raise ValueError(kind)
    return path


UNSAFE_LOAD = (
    "import pickle, sys, torch\n"
    "p = sys.argv[1]\n"
    "torch.load(p, weights_only=False) if sys.argv[2] == 'zip' else pickle.load(open(p, 'rb'))\n"
)

KINDS = {
    "zip-exec": "is not a safe jetfleet checkpoint",
    "zip-os-system": "is not a safe jetfleet checkpoint",
    "bare-pickle": "is corrupt or not a checkpoint",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_pickle_payload_offered_as_a_checkpoint_never_runs(
    kind: str, cli: Callable[..., subprocess.CompletedProcess[str]], invariants: Invariants, tmp_path: Path
) -> None:
    inv = invariants
    # Positive control: loaded the unsafe way, in another process, the payload does run.
    control = tmp_path / "control-sentinel"
    live = write_payload(kind, tmp_path / "control.pt", control)
    mode = "zip" if kind.startswith("zip") else "pickle"
    subprocess.run([sys.executable, "-c", UNSAFE_LOAD, str(live), mode], capture_output=True, timeout=120)
    inv.expect("control: the payload runs when unpickled unsafely", control.exists(), "no control sentinel")

    sentinel = tmp_path / "sentinel"
    path = write_payload(kind, tmp_path / "evil.pt", sentinel)
    with pytest.raises(JetfleetError) as err:
        load_checkpoint(path)
    message = str(err.value)
    inv.record("load_checkpoint refused", message=message)
    inv.expect("load_checkpoint gives a one-line reason", KINDS[kind] in message and "\n" not in message, message)
    inv.expect("no code ran in this process", not sentinel.exists())

    proc = cli("evaluate", path, "--out", tmp_path / "eval")
    inv.record("jetfleet evaluate", rc=proc.returncode, stderr=proc.stderr[-500:])
    inv.expect("the CLI exits 1", proc.returncode == 1, proc.returncode)
    inv.expect(
        "the CLI prints one error line and no traceback",
        "error:" in proc.stderr and KINDS[kind] in proc.stderr and "Traceback" not in proc.stderr,
        proc.stderr[-1000:],
    )
    inv.expect("no code ran in the CLI", not sentinel.exists())
    inv.expect("nothing was evaluated", not (tmp_path / "eval").exists())
    inv.check()
