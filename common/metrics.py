"""Classification metrics over numpy arrays.

Lives in ``common`` because the controller (after training) and the agent
(after an on-device job) must report the same numbers computed the same way,
and the agent has numpy but no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall, F1 and support of one class."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    """Everything a practitioner reads after an evaluation."""

    top1: float
    topk: float
    k: int
    num_samples: int
    per_class: tuple[ClassMetrics, ...]
    confusion: npt.NDArray[np.int64]

    @property
    def macro_precision(self) -> float:
        return float(np.mean([c.precision for c in self.per_class]))

    @property
    def macro_recall(self) -> float:
        return float(np.mean([c.recall for c in self.per_class]))

    @property
    def macro_f1(self) -> float:
        return float(np.mean([c.f1 for c in self.per_class]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "top1_accuracy": self.top1,
            f"top{self.k}_accuracy": self.topk,
            "num_samples": self.num_samples,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "per_class": [c.__dict__ for c in self.per_class],
            "confusion_matrix": self.confusion.tolist(),
        }


def confusion_matrix(targets: npt.ArrayLike, predictions: npt.ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
    """Rows are true classes, columns predicted classes."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def topk_accuracy(scores: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> float:
    """Fraction of rows whose target is among the ``k`` highest scores."""
    s = np.asarray(scores)
    t = np.asarray(targets, dtype=np.int64)
    if len(t) == 0:
        return float("nan")
    k = min(k, s.shape[1])
    top = np.argpartition(-s, kth=k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == t[:, None], axis=1)))


def _safe_ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """num/den with 0 where den is 0 (the scikit-learn 'zero_division=0' convention)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_metrics(cm: npt.NDArray[np.int64], names: list[str] | tuple[str, ...]) -> tuple[ClassMetrics, ...]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows = truth).

    Separate from :func:`classification_report` so a streaming evaluator (an
    agent classifying a folder batch by batch) can accumulate only the matrix.
    """
    tp = np.diag(cm).astype(np.float64)
    precision = _safe_ratio(tp, cm.sum(axis=0).astype(np.float64))
    recall = _safe_ratio(tp, cm.sum(axis=1).astype(np.float64))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return tuple(
        ClassMetrics(names[i], float(precision[i]), float(recall[i]), float(f1[i]), int(cm[i].sum()))
        for i in range(cm.shape[0])
    )


def classification_report(
    scores: npt.ArrayLike,
    targets: npt.ArrayLike,
    labels: list[str] | tuple[str, ...] | None = None,
    k: int = 5,
) -> ClassificationReport:
    """Top-1/top-k accuracy, per-class precision/recall/F1 and the confusion matrix.

    ``scores`` is (N, C) logits or probabilities; ``targets`` is (N,) class ids.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=np.int64)
    num_classes = s.shape[1]
    names = list(labels) if labels else [str(i) for i in range(num_classes)]
    preds = s.argmax(axis=1)
    cm = confusion_matrix(t, preds, num_classes)
    per_class = per_class_metrics(cm, names)
    k_eff = min(k, num_classes)
    return ClassificationReport(
        top1=float(np.mean(preds == t)) if len(t) else float("nan"),
        topk=topk_accuracy(s, t, k_eff),
        k=k_eff,
        num_samples=len(t),
        per_class=per_class,
        confusion=cm,
    )
