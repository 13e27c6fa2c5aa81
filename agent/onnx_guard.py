"""Refuse ONNX files that are not self-contained, before any engine backend reads them.

ONNX can keep a tensor's bytes outside the model file (``data_location =
EXTERNAL`` plus a ``location`` relative to the model's folder). A backend
that honours it opens whatever path the file names: ``../../etc/shadow``, an
absolute path, a FIFO that blocks the build forever, or another artifact of
the agent's store. ONNX Runtime (1.17+) refuses locations that leave the
model's folder, but not a neighbour in it, and an agent's blobs all sit in
one folder; TensorRT's ONNX parser and older runtimes check even less. So
"inside the folder" is no safer than outside it.

An agent stores every artifact as one content-addressed blob with no sidecar
files, so a model jetfleet can deploy never has external data. Any tensor
that uses it is refused, naming the tensor and the file it points to, as is
a file that does not parse as an ONNX model at all.

The check parses the protobuf itself, with the subset of ONNX's schema it
needs (``proto/onnx/onnx_subset.proto``, generated into
:mod:`jetfleet.proto.onnx.onnx_subset_pb2`): it reads the model file and
nothing else, so the guard itself never follows a location. It walks every
place a tensor can live: initializers and sparse initializers, node
attributes (``Constant`` values, tensor lists), subgraphs (``If``/``Loop``/
``Scan`` bodies, to any depth), model-local functions and training graphs.

It does not import the ``onnx`` package, which would cost an agent about
10 MiB of resident memory for good (and a second of each first deployment)
on a device whose memory the models need; the subset schema is
wire-compatible, so protobuf decodes every ONNX file with it and keeps the
fields it leaves out as unknown fields. An agent therefore does not need
``onnx`` installed at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Tuple

from google.protobuf.message import DecodeError

from jetfleet.agent.errors import INVALID_ARGUMENT, AgentError
from jetfleet.proto.onnx.onnx_subset_pb2 import (
    GraphProto,
    ModelProto,
    NodeProto,
    SparseTensorProto,
    TensorProto,
)

MAX_NAMED = 3  # offending tensors named in the message; the rest are counted


def check_onnx_file(path: Path) -> None:
    """Raise :class:`AgentError` (INVALID_ARGUMENT) unless ``path`` is a self-contained ONNX model.

    Self-contained: it parses as an ONNX ``ModelProto`` with a graph, and no
    tensor anywhere in it keeps its data in an external file.
    """
    model = _parse(Path(path))
    offenders = [(where, tensor) for where, tensor in _tensors(model) if _is_external(tensor)]
    if not offenders:
        return
    named = "; ".join(_describe(where, tensor) for where, tensor in offenders[:MAX_NAMED])
    more = f" (and {len(offenders) - MAX_NAMED} more tensors)" if len(offenders) > MAX_NAMED else ""
    raise AgentError(
        INVALID_ARGUMENT,
        f"the ONNX model {named}{more}; jetfleet artifacts must be self-contained, "
        "so external tensor data is never read",
        "export the model with its weights inside the file: onnx.save(model, path, save_as_external_data=False)",
    )


def _parse(path: Path) -> ModelProto:
    model = ModelProto()
    data = path.read_bytes()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgentError(INVALID_ARGUMENT, f"the file is not a valid ONNX protobuf ({detail})") from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        # Protobuf decodes many short byte strings as an empty message: that is not a model.
        raise AgentError(INVALID_ARGUMENT, "the file is not an ONNX model (no IR version or no graph)")
    return model


Found = Tuple[str, TensorProto]  # where a tensor sits (for the message), the tensor


def _tensors(model: ModelProto) -> Iterator[Found]:
    """(where, TensorProto) for every tensor the model holds, however deeply nested."""
    yield from _graph_tensors(model.graph, "main graph")
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node, f"function {function.name!r}")
    for i, info in enumerate(model.training_info):
        for label, graph in (("initialization", info.initialization), ("algorithm", info.algorithm)):
            yield from _graph_tensors(graph, f"training_info[{i}].{label}")


def _graph_tensors(graph: GraphProto, where: str) -> Iterator[Found]:
    for tensor in graph.initializer:
        yield where, tensor
    for sparse in graph.sparse_initializer:
        yield from _sparse_tensors(sparse, where)
    for node in graph.node:
        yield from _node_tensors(node, where)


def _node_tensors(node: NodeProto, where: str) -> Iterator[Found]:
    here = f"{where}, node {node.name or node.op_type!r}"
    for attr in node.attribute:
        if attr.HasField("t"):
            yield here, attr.t
        for tensor in attr.tensors:
            yield here, tensor
        if attr.HasField("sparse_tensor"):
            yield from _sparse_tensors(attr.sparse_tensor, here)
        for sparse in attr.sparse_tensors:
            yield from _sparse_tensors(sparse, here)
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g, f"{here} subgraph {attr.name!r}")
        for i, graph in enumerate(attr.graphs):
            yield from _graph_tensors(graph, f"{here} subgraph {attr.name!r}[{i}]")


def _sparse_tensors(sparse: SparseTensorProto, where: str) -> Iterator[Found]:
    yield where, sparse.values
    yield where, sparse.indices


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _describe(where: str, tensor: TensorProto) -> str:
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    return (
        f"stores tensor {tensor.name or '<unnamed>'!r} (in the {where}) in external file {location!r}{_why(location)}"
    )


def _why(location: str) -> str:
    """What makes ``location`` dangerous on top of being external, for the operator reading the reason."""
    if not location:
        return " (no location given)"
    if os.path.isabs(location) or location.startswith(("\\", "/")) or (len(location) > 1 and location[1] == ":"):
        return " (an absolute path)"
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        return " (outside the model's folder)"
    return ""
