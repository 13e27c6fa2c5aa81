"""Turn a finished training run into a registry version.

The registered checkpoint is the run's ``best.pt`` slimmed to what
inference and export need (weights, architecture, preprocessing spec,
config, test metrics); optimizer and scheduler state stay in the run
directory for ``--resume``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from jetfleet.common.errors import JetfleetError
from jetfleet.common.version import __version__
from jetfleet.controller.registry.store import Lineage, MetricInfo, NewArtifact, Registry, VersionInfo
from jetfleet.controller.training.checkpoint import load_checkpoint, save_checkpoint

INFERENCE_KEYS = (
    "model", "model_kwargs", "num_classes", "in_channels", "state_dict", "preprocess",
    "config", "dataset", "epoch", "test_metrics", "versions",
)  # fmt: skip


def slim_checkpoint(ckpt: dict[str, Any]) -> dict[str, Any]:
    return {k: ckpt[k] for k in INFERENCE_KEYS if k in ckpt}


def test_metrics(test: dict[str, Any], kind: str = "checkpoint") -> list[MetricInfo]:
    """The headline numbers of a classification report as registry metrics (per-class in details)."""
    k = test.get("k", 5)
    return [
        MetricInfo("accuracy", test["top1_accuracy"], kind, {"split": "test", "samples": test["num_samples"]}),
        MetricInfo(f"top{k}_accuracy", test[f"top{k}_accuracy"], kind, {"split": "test"}),
        MetricInfo("macro_f1", test["macro_f1"], kind, {"split": "test", "per_class": test["per_class"]}),
    ]


def register_run(registry: Registry, run_dir: Path, name: str | None = None) -> VersionInfo:
    """Register ``run_dir``'s best checkpoint as the next version of ``name`` (default: the architecture)."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise JetfleetError(f"{run_dir} has no summary.json: the run did not finish, so there is nothing to register")
    summary = json.loads(summary_path.read_text())
    ckpt = load_checkpoint(run_dir / "best.pt")
    with tempfile.TemporaryDirectory() as tmp:
        slim = Path(tmp) / "checkpoint.pt"
        save_checkpoint(slim, slim_checkpoint(ckpt))
        return registry.register_version(
            name or ckpt["model"],
            [NewArtifact("checkpoint", slim, {"format": "jetfleet.checkpoint/1", "run_dir": str(run_dir.resolve())})],
            preprocess=ckpt["preprocess"],
            architecture=ckpt["model"],
            lineage=Lineage(
                dataset=summary["dataset"],
                dataset_fingerprint=summary.get("dataset_fingerprint", ""),
                config=ckpt.get("config", {}),
                code_version=__version__,
            ),
            metrics=test_metrics(summary["test"]),
            labels=list(ckpt["preprocess"].get("labels", [])),
        )
