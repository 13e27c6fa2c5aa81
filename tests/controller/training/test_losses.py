from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.training.config import LossConfig
from jetfleet.controller.training.losses import FocalLoss, build_loss


@pytest.fixture
def logits_targets() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(32, 5), torch.randint(0, 5, (32,))


def test_focal_with_gamma_zero_is_cross_entropy(logits_targets: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, t = logits_targets
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, t), F.cross_entropy(logits, t))


def test_focal_down_weights_easy_examples() -> None:
    easy = torch.tensor([[8.0, 0.0]])
    hard = torch.tensor([[0.5, 0.0]])
    t = torch.tensor([0])
    ce_ratio = F.cross_entropy(hard, t) / F.cross_entropy(easy, t)
    focal_ratio = FocalLoss(2.0)(hard, t) / FocalLoss(2.0)(easy, t)
    assert focal_ratio > ce_ratio * 100


def test_label_smoothing_is_passed_on(logits_targets: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, t = logits_targets
    loss = build_loss(LossConfig("cross_entropy", label_smoothing=0.1))
    torch.testing.assert_close(loss(logits, t), F.cross_entropy(logits, t, label_smoothing=0.1))


def test_user_loss_by_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logits_targets: tuple[torch.Tensor, torch.Tensor]
) -> None:
    (tmp_path / "mylosses.py").write_text(
        "import torch\n"
        "class Doubled(torch.nn.Module):\n"
        "    def forward(self, x, t):\n"
        "        return 2 * torch.nn.functional.cross_entropy(x, t)\n"
        "def halved(x, t):\n"
        "    return 0.5 * torch.nn.functional.cross_entropy(x, t)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    logits, t = logits_targets
    ce = F.cross_entropy(logits, t)
    torch.testing.assert_close(build_loss(LossConfig("mylosses:Doubled"))(logits, t), 2 * ce)
    torch.testing.assert_close(build_loss(LossConfig("mylosses:halved"))(logits, t), 0.5 * ce)
    sys.modules.pop("mylosses", None)


@pytest.mark.parametrize(("name", "message"), [("nope_pkg:Loss", "cannot import"), ("math:no_such", "no attribute")])
def test_bad_user_loss(name: str, message: str) -> None:
    with pytest.raises(JetfleetError, match=message):
        build_loss(LossConfig(name))
