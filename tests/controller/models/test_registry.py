from __future__ import annotations

import pytest
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.models import create_model, list_models, register_model, resolve_model_name
from jetfleet.controller.models.registry import _REGISTRY


def test_builtin_models_are_listed() -> None:
    assert {"basic_cnn", "custom_resnet", "resnet18", "mobilenet_v3_small"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_duplicate_registration_raises() -> None:
    def basic_cnn(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(basic_cnn)


def test_new_model_can_be_registered_and_created() -> None:
    @register_model
    def tiny_linear_for_test(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    try:
        assert "tiny_linear_for_test" in list_models()
        assert isinstance(create_model("tiny_linear_for_test", num_classes=4), nn.Sequential)
    finally:
        del _REGISTRY["tiny_linear_for_test"]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("BasicCNN", "basic_cnn"), ("CustomResNet", "custom_resnet"), ("basiccnn", "basic_cnn"), ("RESNET18", "resnet18")],
)
def test_seed_names_resolve(name: str, canonical: str) -> None:
    assert resolve_model_name(name) == canonical


def test_unknown_model_lists_the_choices() -> None:
    with pytest.raises(JetfleetError, match=r"unknown model 'lenet'.*basic_cnn"):
        create_model("lenet")


def test_bad_kwargs_name_the_model() -> None:
    with pytest.raises(JetfleetError, match="bad options for model 'basic_cnn'"):
        create_model("basic_cnn", no_such_option=1)
