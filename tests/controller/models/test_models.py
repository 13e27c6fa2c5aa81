"""Every registered architecture, at every input size and channel count we promise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jetfleet.controller.models import create_model, list_models
from jetfleet.controller.models.basic_cnn import BasicCNN


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 32, 64])
def test_forward_and_backward(name: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=channels)
    x = torch.randn(2, channels, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_basic_cnn_structure_matches_the_spec() -> None:
    model = create_model("basic_cnn", num_classes=10, in_channels=3)
    assert isinstance(model, BasicCNN)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    mods = list(model.modules())
    for conv in convs:  # BatchNorm directly after each conv
        assert isinstance(mods[mods.index(conv) + 1], nn.BatchNorm2d)
    assert sum(isinstance(m, nn.MaxPool2d) for m in mods) == 3
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in mods)
    assert any(isinstance(m, nn.Dropout) for m in model.classifier)


def test_custom_resnet_depth_controls_block_count() -> None:
    def blocks(depth: int) -> int:
        model = create_model("custom_resnet", depth=depth)
        return sum(1 for m in model.modules() if type(m).__name__ == "BasicBlock")

    assert blocks(20) == 9 and blocks(32) == 15


def test_custom_resnet_rejects_impossible_depth() -> None:
    from jetfleet.common.errors import JetfleetError

    with pytest.raises((ValueError, JetfleetError), match="6n\\+2"):
        create_model("custom_resnet", depth=21)


def test_torchvision_models_are_randomly_initialised_without_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.hub

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a model tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    for name in ("resnet18", "mobilenet_v3_small"):
        create_model(name, num_classes=3, in_channels=1)
