"""``check_onnx_file``: self-contained ONNX models pass; external tensor data anywhere, or a non-model, is refused.

Every model here is a real ONNX file written with ``onnx.helper``. The
"outside" file a hostile model points to is a FIFO: a guard that opened it
would block (and a non-blocking writer would then find a reader), so the
tests prove the guard parses the model without ever following a location.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures import tiny_onnx_classifier
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from onnx import TensorProto, helper, numpy_helper

from jetfleet.agent.errors import INVALID_ARGUMENT, AgentError
from jetfleet.agent.onnx_guard import check_onnx_file

OPSET = [helper.make_opsetid("", 18)]
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])


def _tensor(name: str, location: str | None) -> onnx.TensorProto:
    """A 4-float tensor, its bytes moved to ``location`` (None: kept inside the file)."""
    tensor = numpy_helper.from_array(np.ones(4, np.float32), name)
    if location is not None:
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "16")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return tensor


def _model(graph: onnx.GraphProto, **kw: object) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=OPSET, **kw)


def initializer(location: str | None) -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    return _model(helper.make_graph(nodes, "g", [X], [Y], [_tensor("w", location)]))


def constant_attribute(location: str | None) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Constant", [], ["w"], value=_tensor("w", location), name="const_w"),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    return _model(helper.make_graph(nodes, "g", [X], [Y]))


def sparse_initializer(location: str | None) -> onnx.ModelProto:
    values = _tensor("w", location)
    indices = numpy_helper.from_array(np.arange(4, dtype=np.int64), "w_idx")
    sparse = helper.make_sparse_tensor(values, indices, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [X], [Y], sparse_initializer=[sparse])
    return _model(graph)


def nested_subgraph(location: str | None) -> onnx.ModelProto:
    """The tensor sits two levels down: an ``If`` whose then-branch holds another ``If``."""
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [4])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])

    def branch(name: str, tensor: onnx.TensorProto) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Identity", [tensor.name], ["o"])], name, [], [out], [tensor])

    inner = helper.make_node(
        "If",
        ["c"],
        ["o"],
        then_branch=branch("t2", _tensor("deep_w", location)),
        else_branch=branch("e2", _tensor("z2", None)),
    )
    then = helper.make_graph([inner], "t1", [], [out])
    node = helper.make_node(
        "If", ["c"], ["y"], then_branch=then, else_branch=branch("e1", _tensor("z1", None)), name="outer"
    )
    return _model(helper.make_graph([node], "g", [cond], [Y]))


def local_function(location: str | None) -> onnx.ModelProto:
    """A model-local function whose body has a ``Constant`` with external data."""
    body = [
        helper.make_node("Constant", [], ["w"], value=_tensor("fn_w", location)),
        helper.make_node("Add", ["a", "w"], ["b"]),
    ]
    fn = helper.make_function("local", "AddW", ["a"], ["b"], body, OPSET)
    graph = helper.make_graph([helper.make_node("AddW", ["x"], ["y"], domain="local")], "g", [X], [Y])
    return helper.make_model(graph, opset_imports=[*OPSET, helper.make_opsetid("local", 1)], functions=[fn])


PLACES: dict[str, Callable[[str | None], onnx.ModelProto]] = {
    "initializer": initializer,
    "constant_attribute": constant_attribute,
    "sparse_initializer": sparse_initializer,
    "nested_subgraph": nested_subgraph,
    "local_function": local_function,
}
TENSOR_OF = {
    "initializer": "w",
    "constant_attribute": "w",
    "sparse_initializer": "w",
    "nested_subgraph": "deep_w",
    "local_function": "fn_w",
}


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def _check_in_thread(path: Path, timeout: float = 10.0) -> BaseException | None:
    """Run the guard in a thread: if it opened a FIFO it would block, and the join would time out."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            check_onnx_file(path)
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "check_onnx_file blocked: it opened the external data location"
    return outcome[0]


def _nobody_reads(fifo: Path) -> bool:
    """True when no process has ``fifo`` open for reading (a non-blocking writer then gets ENXIO)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno == 6  # ENXIO
    os.close(fd)
    return False


@pytest.mark.parametrize("place", sorted(PLACES))
def test_self_contained_models_pass(place: str, tmp_path: Path) -> None:
    model = PLACES[place](None)
    onnx.checker.check_model(model)  # they are valid models, so a refusal below would be the guard's doing
    check_onnx_file(_save(model, tmp_path / "m.onnx"))


def test_a_real_classifier_passes(tmp_path: Path) -> None:
    check_onnx_file(tiny_onnx_classifier(tmp_path / "tiny.onnx"))


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../../secret.bin", "(outside the model's folder)"),
        ("ABSOLUTE", "(an absolute path)"),
        ("weights.bin", ""),  # beside the model: still refused, blobs share one folder on an agent
        ("sub/../../x.bin", "(outside the model's folder)"),
    ],
)
def test_external_data_anywhere_is_refused_without_being_opened(
    place: str, location: str, why: str, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.bin"
    os.mkfifo(outside)  # reading it would block: the guard must never open it
    models = tmp_path / "store" / "blobs"
    if location == "ABSOLUTE":
        location = str(outside)
    elif location == "weights.bin":  # a FIFO beside the model, where ONNX Runtime itself would read
        models.mkdir(parents=True)
        outside = models / "weights.bin"
        os.mkfifo(outside)
    path = _save(PLACES[place](location), models / ("ab" * 32))
    exc = _check_in_thread(path)
    assert isinstance(exc, AgentError), exc
    assert exc.code == INVALID_ARGUMENT
    message = str(exc)
    assert f"stores tensor {TENSOR_OF[place]!r}" in message and f"in external file {location!r}" in message
    assert "self-contained" in message and why in message
    assert _nobody_reads(outside)


def test_several_offenders_are_named_then_counted(tmp_path: Path) -> None:
    tensors = [_tensor(f"w{i}", f"w{i}.bin") for i in range(5)]
    nodes = [helper.make_node("Sum", ["x", *(t.name for t in tensors)], ["y"])]
    path = _save(_model(helper.make_graph(nodes, "g", [X], [Y], tensors)), tmp_path / "m.onnx")
    with pytest.raises(AgentError) as err:
        check_onnx_file(path)
    message = str(err.value)
    assert all(f"'w{i}'" in message for i in range(3)) and "'w3'" not in message
    assert "(and 2 more tensors)" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a protobuf" * 100, "not a valid ONNX protobuf"),
        (bytes(range(256)) * 40, "not a valid ONNX protobuf"),
        (b"", "not an ONNX model"),
        (b"\x08\x07", "not an ONNX model"),  # a valid ModelProto with only ir_version: no graph
        ("TRUNCATED", "not a valid ONNX protobuf"),
    ],
    ids=["text", "bytes", "empty", "no-graph", "truncated"],
)
def test_files_that_are_not_onnx_models_are_refused(content: bytes | str, expected: str, tmp_path: Path) -> None:
    if content == "TRUNCATED":
        whole = tiny_onnx_classifier(tmp_path / "tiny.onnx").read_bytes()
        content = whole[: len(whole) - 7]  # cut inside the weight tensor's bytes
    path = tmp_path / "m.onnx"
    path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(AgentError) as err:
        check_onnx_file(path)
    assert err.value.code == INVALID_ARGUMENT and expected in str(err.value)


def test_an_agent_without_onnx_still_checks_models(tmp_path: Path) -> None:
    """The guard needs no ``onnx`` package: with it missing, a good model passes and a hostile one is refused."""
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        from pathlib import Path

        class NoOnnx(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "onnx":
                    raise ImportError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoOnnx())
        import jetfleet.agent.activation, jetfleet.agent.daemon, jetfleet.agent.onnx_guard as guard
        guard.check_onnx_file(Path(sys.argv[1]))
        print("good: passed")
        try:
            guard.check_onnx_file(Path(sys.argv[2]))
        except guard.AgentError as exc:
            print("hostile:", exc.code, "|", exc)
        """
    )
    good = tiny_onnx_classifier(tmp_path / "tiny.onnx")
    hostile = _save(initializer("../../secret.bin"), tmp_path / "hostile.onnx")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(good), str(hostile)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "good: passed", proc.stdout
    code, _, message = lines[1].partition(" | ")
    assert code == f"hostile: {INVALID_ARGUMENT}" and "in external file '../../secret.bin'" in message, proc.stdout


def test_the_guard_never_imports_onnx(tmp_path: Path) -> None:
    """Checking models, good and hostile, leaves ``onnx`` out of the process (it costs a device ~10 MiB)."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from jetfleet.agent.onnx_guard import AgentError, check_onnx_file

        check_onnx_file(Path(sys.argv[1]))
        try:
            check_onnx_file(Path(sys.argv[2]))
        except AgentError:
            pass
        else:
            sys.exit("the hostile model passed")
        print(sorted(m for m in sys.modules if m == "onnx" or m.startswith("onnx.")))
        """
    )
    good = tiny_onnx_classifier(tmp_path / "tiny.onnx")
    hostile = _save(local_function("w.bin"), tmp_path / "hostile.onnx")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(good), str(hostile)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def _subset_fields(message: Descriptor) -> dict[str, tuple[int, int, bool, str]]:
    """name: (number, type, repeated, message or enum type) of each field of ``message``."""

    def repeated(f: FieldDescriptor) -> bool:  # ``label`` is gone in protobuf 7, ``is_repeated`` new in 6
        return f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED

    def of(f: FieldDescriptor) -> str:
        return (f.message_type or f.enum_type).name if f.message_type or f.enum_type else ""

    return {f.name: (f.number, f.type, repeated(f), of(f)) for f in message.fields}


def test_the_subset_schema_matches_onnx() -> None:
    """Every message, field (name, number, type, label) and enum value of the guard's schema is ONNX's own."""
    from onnx import onnx_ml_pb2

    from jetfleet.proto.onnx import onnx_subset_pb2

    assert onnx_subset_pb2.DESCRIPTOR.package != onnx_ml_pb2.DESCRIPTOR.package  # both live in one descriptor pool
    for name, ours in onnx_subset_pb2.DESCRIPTOR.message_types_by_name.items():
        theirs = onnx_ml_pb2.DESCRIPTOR.message_types_by_name[name]
        mine, real = _subset_fields(ours), _subset_fields(theirs)
        assert mine == {field: real[field] for field in mine}, name
        for enum in ours.enum_types:
            assert enum.values_by_name.keys() <= theirs.enum_types_by_name[enum.name].values_by_name.keys()
            assert all(
                v.number == theirs.enum_types_by_name[enum.name].values_by_name[v.name].number for v in enum.values
            )


def _walk(model: object) -> list[tuple[str, str, int, list[tuple[str, str]]]]:
    """What the guard sees of ``model`` (real onnx or the subset: the walk is the same code)."""
    from jetfleet.agent.onnx_guard import _tensors

    return [
        (where, t.name, int(t.data_location), [(e.key, e.value) for e in t.external_data])
        for where, t in _tensors(model)  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(
    ("place", "location"),
    [("tiny_classifier", None)] + [(place, loc) for place in sorted(PLACES) for loc in (None, "weights.bin")],
    ids=lambda v: {None: "inside", "weights.bin": "external"}.get(v, v),
)
def test_onnx_files_parse_identically_with_the_subset(place: str, location: str | None, tmp_path: Path) -> None:
    """Real files written by onnx: the subset sees the same tensors, and keeps every other field byte for byte."""
    from jetfleet.agent.onnx_guard import _parse

    if place == "tiny_classifier":
        path = tiny_onnx_classifier(tmp_path / "tiny.onnx")
    else:
        path = tmp_path / "m.onnx"
        onnx.save_model(PLACES[place](location), str(path))
    real = onnx.load(str(path), load_external_data=False)
    subset = _parse(path)
    assert subset.ir_version == real.ir_version and subset.HasField("graph")
    assert _walk(subset) == _walk(real)
    assert len(_walk(real)) > 0
    assert onnx.ModelProto.FromString(subset.SerializeToString()) == real  # unknown fields kept: nothing lost
