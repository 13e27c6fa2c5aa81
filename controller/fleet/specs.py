"""What a deployment sends: a registry version in one precision as a wire ``ModelSpec``.

The agent needs the ONNX artifact of that precision, the version's
preprocessing spec (imported ONNX files do not embed it), the test set for
its smoke test and the registry's accuracy figure for that artifact, against
which the smoke test is judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import PRECISIONS, ArtifactRef, ModelSpec
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.registry.store import Registry, VersionInfo

ARTIFACT_OF = {"fp32": "onnx-fp32", "fp16": "onnx-fp16", "int8": "onnx-int8-qdq"}


@dataclass(frozen=True)
class Deployable:
    """A spec and where its blobs are on the controller's disk."""

    spec: ModelSpec
    files: dict[str, Path]  # sha256 -> blob path


def deployable(registry: Registry, ref: str, precision: str) -> Deployable:
    """The spec of ``ref`` (``name``, ``name:3``, ``name@alias``) in ``precision``, with its blob paths."""
    if precision not in PRECISIONS:
        raise JetfleetError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    info = registry.get(ref)
    kind = ARTIFACT_OF[precision]
    art = info.artifact(kind)
    if art is None:
        raise JetfleetError(f"{info.ref} has no {kind} artifact", hint=_hint(info, precision))
    onnx = ArtifactRef(art.sha256, art.size)
    test = info.artifact("test-set")
    test_ref = ArtifactRef(test.sha256, test.size) if test else None
    spec = ModelSpec(
        model=info.name,
        version=info.version,
        precision=precision,
        onnx=onnx,
        preprocess=PreprocessSpec.from_dict(info.preprocess),
        test_set=test_ref,
        reference_accuracy=reference_accuracy(info, kind) if test_ref else None,
    )
    files = {r.sha256: registry.blob_path(r.sha256) for r in (onnx, test_ref) if r is not None}
    return Deployable(spec, files)


def reference_accuracy(info: VersionInfo, kind: str) -> float | None:
    """The registry's top-1 accuracy of the ``kind`` artifact on the version's test set."""
    return next((m.value for m in info.metrics if m.artifact_kind == kind and m.name == "accuracy"), None)


def _hint(info: VersionInfo, precision: str) -> str:
    if precision == "fp32":
        return f"run `jetfleet models export {info.ref}`"
    return f"run `jetfleet models quantize {info.ref} --precision {precision}`"


def registered(registry: Registry, spec: ModelSpec) -> Deployable | None:
    """The registry's own copy of ``spec`` when it has exactly that version and precision, else None.

    A spec a device reports is only a claim: the controller signs manifests
    for what its registry holds, so a device cannot get a signature for an
    artifact of its choosing by reporting it as served.
    """
    try:
        known = deployable(registry, f"{spec.model}:{spec.version}", spec.precision)
    except JetfleetError:
        return None
    return known if known.spec == spec else None
