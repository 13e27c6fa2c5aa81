"""``jetfleet evaluate``: score a checkpoint on a dataset split, with the checkpoint's own preprocessing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.data import DataOptions, DatasetBundle, load_dataset, make_loader
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of
from jetfleet.controller.training.config import LossConfig
from jetfleet.controller.training.engine import BatchPrep, evaluate, select_device
from jetfleet.controller.training.losses import build_loss
from jetfleet.controller.training.report import print_report, report_dict, report_of, write_confusion
from jetfleet.controller.training.rundir import write_json


@dataclass
class EvalRequest:
    checkpoint: Path
    dataset: str
    data_root: Path = Path("data")
    split: str = "test"
    batch_size: int = 256  # no gradients: larger batches are free
    device: str = "auto"
    workers: int = 2  # processes decoding an image folder the first time
    expected_model: str | None = None


def default_eval_dir(checkpoint: Path, dataset: str, split: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.replace("folder:", "")).strip("_")[-40:]
    return checkpoint.parent / f"eval-{slug}-{split}"


def _check_compatible(ckpt: dict[str, Any], bundle: DatasetBundle, path: Path) -> None:
    if bundle.num_classes != ckpt["num_classes"]:
        raise JetfleetError(
            f"checkpoint {path} predicts {ckpt['num_classes']} classes but {bundle.name} has {bundle.num_classes}"
        )
    if bundle.channels != ckpt["in_channels"]:
        raise JetfleetError(
            f"checkpoint {path} expects {ckpt['in_channels']}-channel images but {bundle.name} gives {bundle.channels}"
        )


def evaluate_checkpoint(req: EvalRequest, out_dir: Path, console: Console) -> dict[str, Any]:
    """Evaluate, print the report, write evaluation.json and confusion_matrix.png into ``out_dir``."""
    if req.split not in ("test", "val", "train"):
        raise JetfleetError(f"--split must be test, val or train, got {req.split!r}")
    ckpt = load_checkpoint(req.checkpoint)
    spec = preprocess_of(ckpt)
    model = model_from_checkpoint(ckpt, req.expected_model)
    opts = DataOptions(
        root=req.data_root,
        image_size=spec.input_size[0],
        channels=spec.channels,
        workers=req.workers,
        skip_bad=True,  # score what can be read; the files left out are named in the log
        log=console.print,
    )
    bundle = load_dataset(req.dataset, opts)
    _check_compatible(ckpt, bundle, req.checkpoint)
    device = select_device(req.device)
    model.to(device)
    loader = make_loader(getattr(bundle, req.split), req.batch_size, False)
    output = evaluate(model, loader, build_loss(LossConfig()), BatchPrep(device, spec.mean, spec.std))
    labels = spec.labels or bundle.labels
    report = report_of(output, labels)
    print_report(console, report, f"{ckpt['model']} on {bundle.name} ({req.split})")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_confusion(report, out_dir, f"{ckpt['model']} on {bundle.name} ({req.split}): top-1 {report.top1:.2%}")
    result = {
        "checkpoint": str(req.checkpoint),
        "model": ckpt["model"],
        "dataset": bundle.name,
        "split": req.split,
        "accuracy": report.top1,
        **report_dict(report, output.loss),
    }
    write_json(out_dir / "evaluation.json", result)
    console.print(f"evaluation written to {out_dir / 'evaluation.json'}")
    return result
