"""FP16 and INT8 variants of a really trained basic_cnn, scored on the digits test set."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from rich.console import Console

from jetfleet.controller.data import load_dataset
from jetfleet.controller.export.onnx_export import export_onnx
from jetfleet.controller.export.variants import convert_fp16, onnx_accuracy, quantize_int8
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
from jetfleet.controller.training.config import TrainConfig
from jetfleet.controller.training.trainer import train


def _normalized(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = images.float() / 255
    return ((x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("variants")
    train(TrainConfig(epochs=10), root / "run", Console(file=io.StringIO()))
    ckpt = load_checkpoint(root / "run" / "best.pt")
    spec = preprocess_of(ckpt)
    bundle = load_dataset("digits")
    fp32 = export_onnx(model_from_checkpoint(ckpt), spec, root / "fp32.onnx")
    return {
        "root": root,
        "fp32": fp32,
        "test_x": _normalized(bundle.test.images, spec.mean, spec.std),
        "test_y": bundle.test.targets.numpy(),
        "calib": _normalized(bundle.train.images[:256], spec.mean, spec.std),
    }


def test_fp16_keeps_accuracy_and_halves_size(exported: dict) -> None:
    fp16 = convert_fp16(exported["fp32"], exported["root"] / "fp16.onnx")
    model = onnx.load(str(fp16))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O kept
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert fp16.stat().st_size < 0.6 * exported["fp32"].stat().st_size
    a32 = onnx_accuracy(exported["fp32"], exported["test_x"], exported["test_y"]).accuracy
    a16 = onnx_accuracy(fp16, exported["test_x"], exported["test_y"]).accuracy
    assert a32 >= 0.97 and abs(a32 - a16) <= 0.005


def test_int8_qdq_is_within_one_point_of_fp32(exported: dict) -> None:
    int8 = quantize_int8(exported["fp32"], exported["root"] / "int8.onnx", exported["calib"])
    graph = onnx.load(str(int8)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    zero_points = [t for t in graph.initializer if t.name.endswith("zero_point")]
    assert zero_points and all(not onnx.numpy_helper.to_array(t).any() for t in zero_points)  # symmetric: TensorRT
    a32 = onnx_accuracy(exported["fp32"], exported["test_x"], exported["test_y"]).accuracy
    a8 = onnx_accuracy(int8, exported["test_x"], exported["test_y"]).accuracy
    assert a8 >= a32 - 0.01
    assert int8.stat().st_size < 0.5 * exported["fp32"].stat().st_size
