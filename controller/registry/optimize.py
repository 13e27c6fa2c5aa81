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
from jetfleet.common.metrics import classification_report
from jetfleet.common.preprocess import PreprocessSpec
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


def _materialize(split: TensorSplit, limit: int | None, mean: tuple[float, ...], std: tuple[float, ...]) -> EvalData:
    if limit is not None and limit < len(split):
        first = torch.arange(limit)
        images, labels = split.pixels(first), split.targets[:limit]
    else:
        images, labels = split.pixels(), split.targets
    x = images.float() / 255
    norm = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return EvalData(images.numpy(), labels.numpy().astype(np.int64), norm.numpy().astype(np.float32))


def _calibration_split(train: TensorSplit, n: int) -> TensorSplit:
    """An evenly spread subset of the training split (covers every class in class-sorted data)."""
    size = len(train)
    idx = np.linspace(0, size - 1, num=min(n, size)).round().astype(np.int64)
    return train.subset(np.unique(idx))


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


def _variant_metrics(
    kind: str, path: Path, test: EvalData, fp32_acc: float | None, labels: list[str] | None = None
) -> tuple[float, list[MetricInfo]]:
    """Accuracy (per-class in its details), drop against FP32 and batch-1 latency of one ONNX file."""
    logits = ort_logits(ort_session(path), test.normalized)
    report = classification_report(logits, test.labels, labels or None)
    acc = report.top1
    p50, p99 = batch1_latency_ms(path, test.normalized)
    per_class = [c.__dict__ for c in report.per_class]
    details = {"split": "test", "samples": len(test.labels), "runtime": "onnxruntime-cpu", "per_class": per_class}
    metrics = [
        MetricInfo("accuracy", acc, kind, details),
        MetricInfo("macro_f1", report.macro_f1, kind, {"split": "test"}),
        MetricInfo("latency_p50_ms", p50, kind, {"batch": 1, "runtime": "onnxruntime-cpu", "threads": 1}),
        MetricInfo("latency_p99_ms", p99, kind, {"batch": 1, "runtime": "onnxruntime-cpu", "threads": 1}),
    ]
    if fp32_acc is not None:
        metrics.append(MetricInfo("accuracy_drop", fp32_acc - acc, kind, {"against": "onnx-fp32"}))
    return acc, metrics


def _fp32_accuracy(info: VersionInfo | None, fp32: Path, test: EvalData) -> float:
    """The FP32 reference: the figure export stored on the same data, else one scoring pass (no latency run)."""
    metrics = info.metrics if info is not None else ()
    stored = next((m.value for m in metrics if m.artifact_kind == "onnx-fp32" and m.name == "accuracy"), None)
    if stored is not None:
        return stored
    return float(np.mean(ort_logits(ort_session(fp32), test.normalized).argmax(1) == test.labels))


def _save_npz(path: Path, data: EvalData, labels: list[str]) -> Path:
    np.savez_compressed(path, images=data.images, labels=data.labels, label_names=np.asarray(labels))
    return path


@dataclass
class VersionData:
    """The images a version is exported, calibrated and scored with."""

    test: EvalData
    val: EvalData
    calibration: EvalData
    labels: list[str]


def load_version_data(spec: PreprocessSpec, dataset: str, data_root: Path, log: Log = print) -> VersionData:
    """Load ``dataset`` shaped and normalized the way ``spec`` says."""
    if not dataset:
        raise JetfleetError("this version records no dataset; pass --dataset to score and calibrate it")
    # skip_bad: the training run already refused or skipped unreadable files; scoring uses the rest
    opts = DataOptions(root=data_root, image_size=spec.input_size[0], channels=spec.channels, skip_bad=True, log=log)
    bundle = load_dataset(dataset, opts)
    if spec.num_classes and bundle.num_classes != spec.num_classes:
        raise JetfleetError(f"dataset {dataset} has {bundle.num_classes} classes, the model {spec.num_classes}")
    return VersionData(
        test=_materialize(bundle.test, None, spec.mean, spec.std),
        val=_materialize(bundle.val, PARITY_IMAGES, spec.mean, spec.std),
        calibration=_materialize(_calibration_split(bundle.train, CALIBRATION_IMAGES), None, spec.mean, spec.std),
        labels=list(spec.labels or bundle.labels),
    )


def export_version(
    registry: Registry, ref: str, data_root: Path = Path("data"), dataset: str | None = None, log: Log = print
) -> VersionInfo:
    """ONNX FP32 from the version's checkpoint, with parity, accuracy, latency, calibration and test sets."""
    info = registry.get(ref)
    ckpt_art = info.artifact("checkpoint")
    if ckpt_art is None:
        raise JetfleetError(f"{info.ref} has no checkpoint artifact to export (was it imported as ONNX?)")
    registry.blobs.verify(ckpt_art.sha256)
    ckpt = load_checkpoint(registry.blob_path(ckpt_art.sha256))
    model, spec = model_from_checkpoint(ckpt), preprocess_of(ckpt)
    data = load_version_data(spec, dataset or info.dataset, data_root, log)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log(f"{info.ref}: exporting ONNX (opset {OPSET}) and checking parity with torch")
        fp32 = export_onnx(model, spec, work / "fp32.onnx", {"jetfleet.model": info.ref})
        parity = parity_check(model, fp32, data.val.normalized)
        _, metrics = _variant_metrics("onnx-fp32", fp32, data.test, None, data.labels)
        metrics += [
            MetricInfo("parity_max_abs_diff", parity.max_abs_diff, "onnx-fp32", {"samples": parity.samples}),
            MetricInfo("parity_top1_agreement", parity.top1_agreement, "onnx-fp32", {"samples": parity.samples}),
        ]
        details = {"opset": OPSET, "dynamic_batch": True, "precision": "fp32"}
        registry.add_artifact(info.ref, NewArtifact("onnx-fp32", fp32, details), metrics)
        _store_sets(registry, info.ref, data, work)
    return registry.get(info.ref)


def _store_sets(registry: Registry, ref: str, data: VersionData, work: Path) -> None:
    calib_file = _save_npz(work / "calibration.npz", data.calibration, data.labels)
    registry.add_artifact(ref, NewArtifact("calibration-set", calib_file, {"images": len(data.calibration.labels)}))
    test_file = _save_npz(work / "test.npz", data.test, data.labels)
    registry.add_artifact(ref, NewArtifact("test-set", test_file, {"images": len(data.test.labels)}))


PRECISIONS = ("fp16", "int8")


def quantize_version(
    registry: Registry,
    ref: str,
    precisions: tuple[str, ...] = PRECISIONS,
    data_root: Path = Path("data"),
    dataset: str | None = None,
    log: Log = print,
) -> VersionInfo:
    """FP16 and/or INT8-QDQ variants of the version's ``onnx-fp32`` artifact, scored against it."""
    info = registry.get(ref)
    fp32_art = info.artifact("onnx-fp32")
    if fp32_art is None:
        raise JetfleetError(f"{info.ref} has no onnx-fp32 artifact", hint=f"run `jetfleet models export {info.ref}`")
    unknown = set(precisions) - set(PRECISIONS)
    if unknown:
        raise JetfleetError(f"unknown precision {', '.join(sorted(unknown))}; choose from {', '.join(PRECISIONS)}")
    registry.blobs.verify(fp32_art.sha256)
    spec = PreprocessSpec.from_dict(info.preprocess)
    data = load_version_data(spec, dataset or info.dataset, data_root, log)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32 = registry.blobs.copy_to(fp32_art.sha256, work / "fp32.onnx")
        same_data = dataset in (None, info.dataset)
        fp32_acc = _fp32_accuracy(info if same_data else None, fp32, data.test)
        details = {"opset": fp32_art.details.get("opset"), "dynamic_batch": True, "source": fp32_art.sha256}
        if "fp16" in precisions:
            log(f"{info.ref}: FP16 variant")
            fp16 = convert_fp16(fp32, work / "fp16.onnx")
            _, metrics = _variant_metrics("onnx-fp16", fp16, data.test, fp32_acc, data.labels)
            registry.add_artifact(info.ref, NewArtifact("onnx-fp16", fp16, {**details, "precision": "fp16"}), metrics)
        if "int8" in precisions:
            log(f"{info.ref}: INT8 QDQ variant, calibrated on {len(data.calibration.labels)} training images")
            int8 = quantize_int8(fp32, work / "int8.onnx", data.calibration.normalized)
            _, metrics = _variant_metrics("onnx-int8-qdq", int8, data.test, fp32_acc, data.labels)
            int8_details = {**details, "precision": "int8", "format": "QDQ", "symmetric": True, "per_channel": True}
            registry.add_artifact(info.ref, NewArtifact("onnx-int8-qdq", int8, int8_details), metrics)
        if info.artifact("test-set") is None:
            _store_sets(registry, info.ref, data, work)
    return registry.get(info.ref)


def optimize_version(
    registry: Registry, ref: str, data_root: Path = Path("data"), dataset: str | None = None, log: Log = print
) -> VersionInfo:
    """Export to ONNX FP32, then derive FP16 and INT8-QDQ: what `jetfleet train` runs after registering."""
    info = export_version(registry, ref, data_root, dataset, log)
    return quantize_version(registry, info.ref, PRECISIONS, data_root, dataset, log)
