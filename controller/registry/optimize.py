"""Optimize a registered version: ONNX FP32, FP16 and INT8-QDQ artifacts, each with measured accuracy.

For every variant we record in the registry: accuracy on the held-out test
split (and the drop against FP32), batch-1 latency p50/p99 with ONNX Runtime
on this machine's CPU, and for FP32 the parity with torch (max abs
difference, top-1 agreement on validation images). The calibration images
and the labelled test set are stored as compact ``.npz`` artifacts too, so
an agent can calibrate and validate on the device without the dataset.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data import DataOptions, load_dataset
from jetfleet.controller.data.splits import TensorSplit
from jetfleet.controller.export.onnx_export import OPSET, export_onnx, ort_logits, ort_session, parity_check
from jetfleet.controller.export.variants import convert_fp16, quantize_int8
from jetfleet.controller.registry.store import MetricInfo, NewArtifact, Registry, VersionInfo
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of

CALIBRATION_IMAGES = 256  # ORT MinMax ranges are stable from ~100 images; more only costs time
PARITY_IMAGES = 256
LATENCY_RUNS = 200  # batch-1 calls per variant for p50/p99
Log = Callable[[str], None]


@dataclass
class EvalData:
    """uint8 images (N, C, H, W) and labels of one split, plus the same normalized for the model."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    normalized: npt.NDArray[np.float32]


def _materialize(split: object, limit: int | None, mean: tuple[float, ...], std: tuple[float, ...]) -> EvalData:
    if isinstance(split, TensorSplit):
        images, labels = split.images, split.targets
    else:
        pairs = [split[i] for i in range(len(split))]  # type: ignore[index, arg-type]
        images = torch.stack([p[0] for p in pairs])
        labels = torch.tensor([p[1] for p in pairs])
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.float() / 255
    norm = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return EvalData(images.numpy(), labels.numpy().astype(np.int64), norm.numpy().astype(np.float32))


def _calibration_split(train: object, n: int) -> object:
    """An evenly spread subset of the training split (covers every class in class-sorted data)."""
    size = len(train)  # type: ignore[arg-type]
    idx = np.linspace(0, size - 1, num=min(n, size)).round().astype(np.int64)
    return train.subset(np.unique(idx))  # type: ignore[attr-defined]


def batch1_latency_ms(path: Path, sample: npt.NDArray[np.float32], runs: int = LATENCY_RUNS) -> tuple[float, float]:
    """(p50, p99) milliseconds of single-image inference, one intra-op thread, after warm-up."""
    session = ort_session(path, threads=1)
    name = session.get_inputs()[0].name
    x = sample[:1]
    for _ in range(10):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, {name: x})
        times.append((time.perf_counter_ns() - start) / 1e6)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _variant_metrics(kind: str, path: Path, test: EvalData, fp32_acc: float | None) -> tuple[float, list[MetricInfo]]:
    acc = float(np.mean(ort_logits(ort_session(path), test.normalized).argmax(1) == test.labels))
    p50, p99 = batch1_latency_ms(path, test.normalized)
    metrics = [
        MetricInfo("accuracy", acc, kind, {"split": "test", "samples": len(test.labels), "runtime": "onnxruntime-cpu"}),
        MetricInfo("latency_p50_ms", p50, kind, {"batch": 1, "runtime": "onnxruntime-cpu", "threads": 1}),
        MetricInfo("latency_p99_ms", p99, kind, {"batch": 1, "runtime": "onnxruntime-cpu", "threads": 1}),
    ]
    if fp32_acc is not None:
        metrics.append(MetricInfo("accuracy_drop", fp32_acc - acc, kind, {"against": "onnx-fp32"}))
    return acc, metrics


def _save_npz(path: Path, data: EvalData, labels: list[str]) -> Path:
    np.savez_compressed(path, images=data.images, labels=data.labels, label_names=np.asarray(labels))
    return path


def optimize_version(registry: Registry, ref: str, data_root: Path = Path("data"), log: Log = print) -> VersionInfo:
    """Export and quantize ``ref``; attach every artifact and metric to the version."""
    info = registry.get(ref)
    ckpt_art = info.artifact("checkpoint")
    if ckpt_art is None:
        raise JetfleetError(f"{info.ref} has no checkpoint artifact to export (was it imported as ONNX?)")
    registry.blobs.verify(ckpt_art.sha256)
    ckpt = load_checkpoint(registry.blob_path(ckpt_art.sha256))
    model, spec = model_from_checkpoint(ckpt), preprocess_of(ckpt)
    bundle = load_dataset(
        info.dataset, DataOptions(root=data_root, image_size=spec.input_size[0], channels=spec.channels)
    )
    if bundle.num_classes != spec.num_classes:
        raise JetfleetError(
            f"dataset {info.dataset} now has {bundle.num_classes} classes, the model {spec.num_classes}"
        )
    test = _materialize(bundle.test, None, spec.mean, spec.std)
    val = _materialize(bundle.val, PARITY_IMAGES, spec.mean, spec.std)
    calib = _materialize(_calibration_split(bundle.train, CALIBRATION_IMAGES), None, spec.mean, spec.std)
    labels = list(spec.labels)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log(f"{info.ref}: exporting ONNX (opset {OPSET}) and checking parity with torch")
        fp32 = export_onnx(model, spec, work / "fp32.onnx", {"jetfleet.model": info.ref})
        parity = parity_check(model, fp32, val.normalized)
        fp32_acc, metrics = _variant_metrics("onnx-fp32", fp32, test, None)
        metrics += [
            MetricInfo("parity_max_abs_diff", parity.max_abs_diff, "onnx-fp32", {"samples": parity.samples}),
            MetricInfo("parity_top1_agreement", parity.top1_agreement, "onnx-fp32", {"samples": parity.samples}),
        ]
        details = {"opset": OPSET, "dynamic_batch": True, "precision": "fp32"}
        registry.add_artifact(info.ref, NewArtifact("onnx-fp32", fp32, details), metrics)
        log(f"{info.ref}: FP16 variant")
        fp16 = convert_fp16(fp32, work / "fp16.onnx")
        _, metrics = _variant_metrics("onnx-fp16", fp16, test, fp32_acc)
        registry.add_artifact(info.ref, NewArtifact("onnx-fp16", fp16, {**details, "precision": "fp16"}), metrics)
        log(f"{info.ref}: INT8 QDQ variant, calibrated on {len(calib.labels)} training images")
        int8 = quantize_int8(fp32, work / "int8.onnx", calib.normalized)
        _, metrics = _variant_metrics("onnx-int8-qdq", int8, test, fp32_acc)
        int8_details = {**details, "precision": "int8", "format": "QDQ", "symmetric": True, "per_channel": True}
        registry.add_artifact(info.ref, NewArtifact("onnx-int8-qdq", int8, int8_details), metrics)
        calib_file = _save_npz(work / "calibration.npz", calib, labels)
        registry.add_artifact(info.ref, NewArtifact("calibration-set", calib_file, {"images": len(calib.labels)}))
        test_file = _save_npz(work / "test.npz", test, labels)
        return registry.add_artifact(info.ref, NewArtifact("test-set", test_file, {"images": len(test.labels)}))
