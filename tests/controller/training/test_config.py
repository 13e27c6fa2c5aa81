from __future__ import annotations

import json

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.training.config import AugmentOptions, OptimConfig, TrainConfig


def test_round_trips_through_json() -> None:
    cfg = TrainConfig(
        model="custom_resnet",
        model_kwargs={"depth": 32},
        batch_size="auto",
        optim=OptimConfig("sgd", 0.1, nesterov=True),
        augment=AugmentOptions(hflip=False),
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"batch_size": "big"}, "--batch-size"),
        ({"optim": OptimConfig("rmsprop")}, "unknown optimizer"),
        ({"monitor": "train_loss"}, "unknown monitor"),
    ],
)
def test_invalid_settings_name_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(JetfleetError, match=message):
        TrainConfig(**kwargs)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(JetfleetError, match="unknown keys: colour"):
        TrainConfig.from_dict({"colour": "blue"})
