"""The run directory: what a training run leaves behind, and the rules for reusing one.

Layout::

    config.json          the full TrainConfig
    last.pt, best.pt     checkpoints (best by the monitored validation metric)
    history.json/.csv    one row per epoch
    loss.png accuracy.png lr.png   rewritten every epoch
    tensorboard/         event files, when tensorboard is installed
    confusion_matrix.png, summary.json, summary.md   after the final test
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_write_text

RUN_MARKERS = ("config.json", "last.pt")


def is_run_dir(path: Path) -> bool:
    return any((path / m).exists() for m in RUN_MARKERS)


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    """Create ``path`` for a new run; never clobber an existing one silently.

    ``--overwrite`` only ever clears a folder that holds a jetfleet run, so a
    mistyped ``--out ~`` cannot wipe a home directory.
    """
    if path.exists() and not path.is_dir():
        raise JetfleetError(f"--out {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise JetfleetError(
                f"run directory {path} is not empty",
                hint="pass --overwrite to replace it, --resume to continue it, or choose another --out",
            )
        if not is_run_dir(path):
            raise JetfleetError(f"{path} holds files but no jetfleet run; refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_history(out_dir: Path, history: Sequence[dict[str, float]]) -> None:
    """history.json and history.csv with identical content."""
    write_json(out_dir / "history.json", list(history))
    if not history:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "history.csv", buf.getvalue())


def summary_markdown(summary: dict[str, Any]) -> str:
    """A short human summary: headline numbers, then the per-class table."""
    test = summary["test"]
    k = test.get("k", 5)
    lines = [
        f"# {summary['model']} on {summary['dataset']}",
        "",
        f"- test accuracy (top-1): **{summary['test_accuracy']:.2%}**",
        f"- test top-{k} accuracy: {test[f'top{k}_accuracy']:.2%}",
        f"- macro precision / recall / F1: {test['macro_precision']:.3f} / {test['macro_recall']:.3f} / {test['macro_f1']:.3f}",
        f"- epochs run: {summary['epochs_run']} of {summary['epochs']}"
        + (" (stopped early)" if summary["stopped_early"] else ""),
        f"- best epoch: {summary['best_epoch']} ({summary['monitor']} = {summary['best_value']:.4f})",
        f"- parameters: {summary['parameters']:,}; batch size {summary['batch_size']}; device {summary['device']}",
        f"- training time: {summary['train_seconds']:.1f} s",
        f"- data: {summary.get('data', summary['dataset'])}",
        f"- augmentation: {summary.get('augment_reason', 'not recorded')}",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for c in test["per_class"]:
        lines.append(f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    lines += ["", "![loss](loss.png) ![accuracy](accuracy.png) ![confusion matrix](confusion_matrix.png)", ""]
    return "\n".join(lines)
