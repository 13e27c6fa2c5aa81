"""ONNX export with the checks that make an artifact trustworthy.

Recipe (torchvision/timm style): ``model.eval()``, fold every BatchNorm
into the convolution before it, export with a dynamic batch dimension, run
``onnx.checker`` with ``full_check`` (shape inference included), then run the
file in ONNX Runtime next to torch on real images and record the largest
absolute difference and the top-1 agreement.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path
from jetfleet.common.preprocess import PreprocessSpec

OPSET = 18  # new enough for every op we emit, old enough for TensorRT 8.6 (JetPack 6.0) to parse
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PREPROCESS_KEY = "jetfleet.preprocess"  # metadata_props key holding the PreprocessSpec as JSON


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with each Conv2d→BatchNorm2d pair fused into one Conv2d.

    Traced with torch.fx so it finds the pairs in any architecture (sequential
    blocks, ResNet attributes), not just in ``nn.Sequential``.
    """
    gm = torch.fx.symbolic_trace(copy.deepcopy(model).eval())
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        prev = node.args[0]
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        conv = modules[prev.target]
        if not isinstance(conv, nn.Conv2d):
            continue
        fused = fuse_conv_bn_eval(conv, modules[node.target])
        parent_name, _, attr = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent_name) if parent_name else gm, attr, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()  # the folded BatchNorms
    gm.recompile()
    return gm.eval()


def export_onnx(model: nn.Module, spec: PreprocessSpec, out_path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export ``model`` to ``out_path`` (atomically) with a dynamic batch and the spec embedded."""
    folded = fold_batchnorm(model)
    h, w = spec.input_size
    example = torch.zeros(2, spec.channels, h, w)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with atomic_path(out_path) as tmp, warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            folded,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=({0: batch},),
            optimize=True,
        )
        proto = program.model_proto
        props = {PREPROCESS_KEY: json.dumps(spec.to_dict()), **(metadata or {})}
        del proto.metadata_props[:]
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = "exported by jetfleet"
        onnx.save_model(proto, str(tmp))
        check_onnx(tmp)
    return out_path


def check_onnx(path: Path) -> onnx.ModelProto:
    """``onnx.checker`` full check (with shape inference); a failure is one clear error."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return onnx.load(str(path), load_external_data=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JetfleetError(f"{path} fails the ONNX checker: {first}") from exc


def read_preprocess(path: Path) -> PreprocessSpec:
    """The preprocessing spec an exported model carries in its metadata."""
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if PREPROCESS_KEY not in props:
        raise JetfleetError(f"{path} carries no {PREPROCESS_KEY} metadata; was it exported by jetfleet?")
    return PreprocessSpec.from_dict(json.loads(props[PREPROCESS_KEY]))


def ort_session(path: Path, threads: int = 0) -> Any:
    """A CPU ONNX Runtime session with full graph optimization."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_logits(session: Any, images: npt.NDArray[np.float32], batch_size: int = 256) -> npt.NDArray[np.float32]:
    """Run normalized (N, C, H, W) float32 images through a session in batches."""
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: images[i : i + batch_size]})[0] for i in range(0, len(images), batch_size)]
    return np.concatenate(outs).astype(np.float32)


@dataclass(frozen=True)
class Parity:
    """How closely the exported model reproduces torch on the same inputs."""

    max_abs_diff: float
    top1_agreement: float
    samples: int


@torch.no_grad()
def parity_check(model: nn.Module, onnx_path: Path, images: npt.NDArray[np.float32]) -> Parity:
    """Compare torch (eval mode) and ONNX Runtime logits on normalized ``images``."""
    expected = model.eval()(torch.from_numpy(images)).numpy()
    actual = ort_logits(ort_session(onnx_path), images)
    return Parity(
        max_abs_diff=float(np.max(np.abs(expected - actual))),
        top1_agreement=float(np.mean(expected.argmax(1) == actual.argmax(1))),
        samples=len(images),
    )
