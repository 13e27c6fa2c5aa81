"""FP16 and INT8 (QDQ) variants of an exported FP32 model, and their measured accuracy.

INT8 uses ONNX Runtime static quantization in the QDQ format with
symmetric, per-channel weights and symmetric activations: QDQ is what
TensorRT builds INT8 engines from (it requires zero points of 0), and what
ONNX Runtime runs on a CPU. Calibration images come from the training set.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx

from jetfleet.common.files import atomic_path
from jetfleet.controller.export.onnx_export import check_onnx, ort_logits, ort_session

CALIBRATION_BATCH = 32  # images per calibration step: bounded memory, enough for stable ranges


def convert_fp16(fp32_path: Path, out_path: Path) -> Path:
    """Weights and activations in float16; inputs and outputs stay float32 so callers need not care."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    half = convert_float_to_float16(model, keep_io_types=True)
    _topological_sort(half.graph)  # the converter appends its input Casts at the end of the node list
    with atomic_path(out_path) as tmp:
        onnx.save_model(half, str(tmp))
        check_onnx(tmp)
    return out_path


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (in place)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        blocked = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                blocked.append(node)
        if len(blocked) == len(pending):
            raise ValueError("graph has a cycle or an input nobody produces")
        pending = blocked
    del graph.node[:]
    graph.node.extend(ordered)


class _CalibrationReader:
    """Feeds normalized calibration images to ORT's calibrator in fixed-size batches."""

    def __init__(self, input_name: str, images: npt.NDArray[np.float32]) -> None:
        self.input_name = input_name
        self.images = images
        self._batches: Iterator[dict[str, npt.NDArray[np.float32]]] | None = None
        self.rewind()

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        assert self._batches is not None
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = iter(
            {self.input_name: self.images[i : i + CALIBRATION_BATCH]}
            for i in range(0, len(self.images), CALIBRATION_BATCH)
        )


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ORT's calibrator logs every tensor at WARNING on the root logger: silence it, then restore the level."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: npt.NDArray[np.float32]) -> Path:
    """Static INT8 quantization in QDQ form, calibrated on ``calibration`` (normalized images)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    with _quiet_root_logger(), tempfile.TemporaryDirectory() as work, atomic_path(out_path) as tmp:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(tmp),
            _CalibrationReader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            # Biases stay float: TensorRT's ONNX parser dequantizes INT8 only (no INT32 bias DQ), and
            # the agent builds INT8 engines from exactly this file. On ORT's CPU provider it costs ~nothing.
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        check_onnx(tmp)
    return out_path


@dataclass(frozen=True)
class OnnxAccuracy:
    accuracy: float
    samples: int


def onnx_accuracy(path: Path, images: npt.NDArray[np.float32], targets: npt.NDArray[np.int64]) -> OnnxAccuracy:
    """Top-1 accuracy of an ONNX model on normalized images, with ONNX Runtime on the CPU."""
    logits = ort_logits(ort_session(path), images)
    return OnnxAccuracy(float(np.mean(logits.argmax(1) == targets)), len(targets))
