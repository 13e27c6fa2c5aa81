"""Optimizing a registered digits model: the artifacts and numbers `jetfleet models show` lists."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.registry.optimize import optimize_version
from jetfleet.controller.registry.runs import register_run
from jetfleet.controller.registry.store import NewArtifact, Registry
from jetfleet.controller.training.config import TrainConfig
from jetfleet.controller.training.trainer import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("opt") / "run"
    train(TrainConfig(epochs=10), out, Console(file=io.StringIO()))
    return out


def _metrics(info, kind: str) -> dict[str, float]:
    return {m.name: m.value for m in info.metrics if m.artifact_kind == kind}


def test_optimize_attaches_variants_with_measured_accuracy(registry: Registry, trained_run: Path) -> None:
    version = register_run(registry, trained_run)
    info = optimize_version(registry, version.ref, log=lambda _msg: None)
    kinds = [a.kind for a in info.artifacts]
    assert kinds == ["checkpoint", "onnx-fp32", "onnx-fp16", "onnx-int8-qdq", "calibration-set", "test-set"]
    for a in info.artifacts:
        assert registry.blobs.verify(a.sha256).size == a.size
    ckpt_acc = _metrics(info, "checkpoint")["accuracy"]
    fp32, fp16, int8 = (_metrics(info, k) for k in ("onnx-fp32", "onnx-fp16", "onnx-int8-qdq"))
    assert fp32["accuracy"] == pytest.approx(ckpt_acc, abs=1 / 359)  # same weights, same test images
    assert fp32["parity_top1_agreement"] == 1.0 and fp32["parity_max_abs_diff"] < 1e-3
    assert int8["accuracy"] >= fp32["accuracy"] - 0.01 and int8["accuracy_drop"] <= 0.01
    assert abs(fp16["accuracy_drop"]) <= 0.005
    assert all(0 < m["latency_p50_ms"] <= m["latency_p99_ms"] for m in (fp32, fp16, int8))
    int8_acc = next(m for m in info.metrics if m.artifact_kind == "onnx-int8-qdq" and m.name == "accuracy")
    per_class = int8_acc.details["per_class"]
    assert [c["label"] for c in per_class] == [str(i) for i in range(10)] and sum(
        c["support"] for c in per_class
    ) == 359

    test_set = np.load(registry.blob_path(info.artifact("test-set").sha256))
    assert test_set["images"].shape == (359, 1, 8, 8) and test_set["images"].dtype == np.uint8
    assert list(test_set["label_names"]) == [str(i) for i in range(10)]
    calib = np.load(registry.blob_path(info.artifact("calibration-set").sha256))
    assert len(calib["images"]) == 256 and len(set(calib["labels"].tolist())) == 10

    again = optimize_version(registry, version.ref, log=lambda _msg: None)
    assert [a.kind for a in again.artifacts].count("onnx-fp32") == 1  # replaced, not duplicated


def test_version_without_checkpoint_cannot_be_optimized(registry: Registry, tmp_path: Path) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not really onnx")
    info = registry.register_version("imported", [NewArtifact("onnx-fp32", onnx_file)], {})
    with pytest.raises(JetfleetError, match="no checkpoint artifact"):
        optimize_version(registry, info.ref, log=lambda _msg: None)


def test_quantize_an_imported_model_on_a_named_dataset(registry: Registry, tmp_path: Path) -> None:
    from fixtures import tiny_onnx_classifier

    from jetfleet.common.preprocess import PreprocessSpec
    from jetfleet.controller.registry.importing import import_onnx
    from jetfleet.controller.registry.optimize import quantize_version

    spec = PreprocessSpec((8, 8), 1, (0.3,), (0.4,), tuple(str(i) for i in range(10)))
    info = import_onnx(registry, tiny_onnx_classifier(tmp_path / "m.onnx", classes=10), "partner", spec)
    with pytest.raises(JetfleetError, match="records no dataset"):
        quantize_version(registry, info.ref, log=lambda _m: None)
    with pytest.raises(JetfleetError, match="unknown precision"):
        quantize_version(registry, info.ref, ("int4",), dataset="digits", log=lambda _m: None)
    done = quantize_version(registry, info.ref, ("int8",), dataset="digits", log=lambda _m: None)
    assert [a.kind for a in done.artifacts] == ["onnx-fp32", "onnx-int8-qdq", "calibration-set", "test-set"]
    assert {"accuracy", "accuracy_drop", "latency_p50_ms"} <= set(_metrics(done, "onnx-int8-qdq"))
    assert done.artifact("onnx-int8-qdq").details["source"] == info.artifact("onnx-fp32").sha256
