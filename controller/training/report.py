"""Turn an evaluation into what people read: a terminal table, JSON, a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jetfleet.common.metrics import ClassificationReport, classification_report
from jetfleet.controller.training.engine import EvalOutput
from jetfleet.controller.training.plots import plot_confusion


def report_of(output: EvalOutput, labels: tuple[str, ...]) -> ClassificationReport:
    return classification_report(output.scores, output.targets, labels, k=5)


def report_dict(report: ClassificationReport, loss: float) -> dict[str, Any]:
    return {**report.to_dict(), "k": report.k, "loss": loss}


def print_report(console: Console, report: ClassificationReport, title: str) -> None:
    """Headline accuracies, then per-class precision/recall/F1 (first 30 classes)."""
    console.print(
        f"[bold]{title}[/]: top-1 [bold green]{report.top1:.2%}[/]  top-{report.k} {report.topk:.2%}  "
        f"macro F1 {report.macro_f1:.3f}  ({report.num_samples} images)"
    )
    table = Table("class", "precision", "recall", "F1", "support", title=None, show_edge=False)
    for c in report.per_class[:30]:
        table.add_row(c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support))
    if len(report.per_class) > 30:
        table.add_row("…", "", "", "", f"{len(report.per_class) - 30} more in the JSON")
    console.print(table)


def write_confusion(report: ClassificationReport, out_dir: Path, title: str) -> Path:
    labels = [c.label for c in report.per_class]
    return plot_confusion(report.confusion, labels, out_dir / "confusion_matrix.png", title)
