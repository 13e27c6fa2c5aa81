from __future__ import annotations

import json

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec


def test_round_trips_through_json() -> None:
    spec = PreprocessSpec((32, 32), 3, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5), ("a", "b"))
    again = PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.num_classes == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"mean": (0.1,)}, "one value per channel"),
        ({"std": (0.1, 0.0, 0.2)}, "std must be positive"),
    ],
)
def test_rejects_inconsistent_specs(kwargs: dict, message: str) -> None:
    base = {"input_size": (8, 8), "channels": 3, "mean": (0.1, 0.2, 0.3), "std": (0.2, 0.2, 0.2)}
    with pytest.raises(JetfleetError, match=message):
        PreprocessSpec(**{**base, **kwargs})


def test_malformed_dict_names_the_problem() -> None:
    with pytest.raises(JetfleetError, match="malformed"):
        PreprocessSpec.from_dict({"channels": 1})
