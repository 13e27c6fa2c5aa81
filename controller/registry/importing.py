"""``jetfleet models import``: register a classifier trained elsewhere, as ONNX.

Everything is checked before a byte is written to the registry or the blob
store: size, that it parses as ONNX, that no tensor points at external data
files (which could reach outside the model's folder), ``onnx.checker``, and
that its input/output shapes agree with the preprocessing spec given on the
command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.export.onnx_export import check_onnx
from jetfleet.controller.registry.store import MAX_ARTIFACT_BYTES, NewArtifact, Registry, VersionInfo


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in ``graph``: initializers, sparse initializers, constant attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _static_dims(value: onnx.ValueInfoProto) -> list[int | None]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def validate_onnx_classifier(path: Path, spec: PreprocessSpec, max_size: int = MAX_ARTIFACT_BYTES) -> onnx.ModelProto:
    """All the checks, in order of cost; the first failure is one clear error."""
    if not path.is_file():
        raise JetfleetError(f"{path} does not exist")
    size = path.stat().st_size
    if size > max_size:
        raise JetfleetError(f"{path} is {size:,} bytes, over the import limit of {max_size:,}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise JetfleetError(f"{path} is not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise JetfleetError(f"{path} is not an ONNX model (it has no graph)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise JetfleetError(f"{path} refers to external data files; import a single self-contained .onnx file")
    check_onnx(path)
    _check_io(path, model, spec)
    return model


def _check_io(path: Path, model: onnx.ModelProto, spec: PreprocessSpec) -> None:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise JetfleetError(
            f"{path} must have one image input and one output, has {len(inputs)} and {len(model.graph.output)}"
        )
    in_dims, out_dims = _static_dims(inputs[0]), _static_dims(model.graph.output[0])
    if len(in_dims) != 4:
        raise JetfleetError(f"{path}: input must be (batch, channels, height, width), got rank {len(in_dims)}")
    expected = [spec.channels, *spec.input_size]
    for got, want, what in zip(in_dims[1:], expected, ("channels", "height", "width"), strict=True):
        if got is not None and got != want:
            raise JetfleetError(f"{path}: input {what} is {got} but the spec says {want}")
    if len(out_dims) != 2:
        raise JetfleetError(f"{path}: output must be (batch, classes), got rank {len(out_dims)}")
    if spec.labels and out_dims[1] is not None and out_dims[1] != len(spec.labels):
        raise JetfleetError(f"{path}: the model has {out_dims[1]} classes but {len(spec.labels)} labels were given")


def import_onnx(registry: Registry, path: Path, name: str, spec: PreprocessSpec, description: str = "") -> VersionInfo:
    """Validate, then register ``path`` as the ``onnx-fp32`` artifact of a new version of ``name``."""
    model = validate_onnx_classifier(path, spec)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    details = {"opset": opset, "imported_from": path.name, "producer": model.producer_name, "precision": "fp32"}
    return registry.register_version(
        name,
        [NewArtifact("onnx-fp32", path, details)],
        preprocess=spec.to_dict(),
        architecture="external-onnx",
        description=description,
        labels=list(spec.labels),
    )
