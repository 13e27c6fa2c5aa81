from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from jetfleet.common.metrics import classification_report, confusion_matrix, topk_accuracy


@pytest.fixture
def scores_targets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 7, 200)
    scores = rng.normal(size=(200, 7))
    scores[np.arange(200), targets] += rng.normal(1.0, 1.0, 200)  # better than chance, not perfect
    return scores, targets


def test_matches_scikit_learn(scores_targets: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = scores_targets
    report = classification_report(scores, targets, k=5)
    preds = scores.argmax(1)
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=range(7), zero_division=0)
    np.testing.assert_allclose([c.precision for c in report.per_class], p)
    np.testing.assert_allclose([c.recall for c in report.per_class], r)
    np.testing.assert_allclose([c.f1 for c in report.per_class], f)
    assert [c.support for c in report.per_class] == list(s)
    np.testing.assert_array_equal(report.confusion, sk_confusion(targets, preds, labels=range(7)))
    assert report.top1 == pytest.approx(np.mean(preds == targets))
    assert report.topk == pytest.approx(top_k_accuracy_score(targets, scores, k=5, labels=range(7)))
    assert report.macro_f1 == pytest.approx(np.mean(f))


def test_k_is_capped_by_class_count() -> None:
    report = classification_report(np.eye(3), [0, 1, 2], k=5)
    assert report.k == 3 and report.topk == 1.0 and report.top1 == 1.0


def test_class_never_predicted_has_zero_precision_not_nan() -> None:
    report = classification_report(np.array([[1.0, 0.0], [1.0, 0.0]]), [0, 1], labels=["a", "b"])
    assert report.per_class[1].precision == 0.0 and report.per_class[1].recall == 0.0
    assert report.to_dict()["per_class"][0]["label"] == "a"


def test_confusion_and_topk_basics() -> None:
    assert confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist() == [[1, 0], [1, 1]]
    assert topk_accuracy(np.array([[0.1, 0.5, 0.4]]), [2], 1) == 0.0
    assert topk_accuracy(np.array([[0.1, 0.5, 0.4]]), [2], 2) == 1.0
