"""Training-curve and confusion-matrix PNGs.

Curves are rewritten after every epoch (atomically) so someone can keep the
PNG open in a viewer and watch a run converge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from jetfleet.common.files import atomic_path


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _curve(
    history: Sequence[dict[str, float]], keys: dict[str, str], ylabel: str, path: Path, log: bool = False
) -> None:
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in keys.items():
        ax.plot(epochs, [h[key] for h in history], marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_curves(history: Sequence[dict[str, float]], out_dir: Path) -> list[Path]:
    """loss.png, accuracy.png and lr.png from the per-epoch history."""
    paths = [out_dir / "loss.png", out_dir / "accuracy.png", out_dir / "lr.png"]
    _curve(history, {"train_loss": "train", "val_loss": "validation"}, "loss", paths[0])
    _curve(history, {"train_accuracy": "train", "val_accuracy": "validation"}, "accuracy", paths[1])
    _curve(history, {"lr": "learning rate"}, "learning rate", paths[2], log=min(h["lr"] for h in history) > 0)
    return paths


def plot_confusion(confusion: npt.NDArray[np.int64], labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Row-normalized confusion matrix with counts in the cells (readable up to ~30 classes)."""
    n = len(labels)
    size = max(4.0, min(16.0, 0.5 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right")
        ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    _save(fig, path)
    return path
