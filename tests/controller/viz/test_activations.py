from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.viz.activations import (
    ACTIVATIONS,
    ELU_ALPHA,
    LEAKY_SLOPE,
    plot_activations,
    value_and_derivative,
)

POINTS = [-2.5, -0.5, 0.3, 1.7]  # away from 0, where ReLU-like functions have a kink


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


CLOSED_FORMS: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "ReLU": (lambda x: max(0.0, x), lambda x: 1.0 if x > 0 else 0.0),
    "Leaky ReLU": (lambda x: x if x > 0 else LEAKY_SLOPE * x, lambda x: 1.0 if x > 0 else LEAKY_SLOPE),
    "ELU": (
        lambda x: x if x > 0 else ELU_ALPHA * (math.exp(x) - 1),
        lambda x: 1.0 if x > 0 else ELU_ALPHA * math.exp(x),
    ),
    "GELU": (lambda x: x * _cdf(x), lambda x: _cdf(x) + x * _phi(x)),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
}


def test_every_activation_has_a_closed_form_check() -> None:
    assert set(CLOSED_FORMS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_autograd_derivative_matches_closed_form(name: str) -> None:
    f, df = CLOSED_FORMS[name]
    y, dy = value_and_derivative(name, torch.tensor(POINTS, dtype=torch.float64))
    for x, got_y, got_dy in zip(POINTS, y.tolist(), dy.tolist(), strict=True):
        assert got_y == pytest.approx(f(x), abs=1e-9), f"{name}({x})"
        assert got_dy == pytest.approx(df(x), abs=1e-9), f"{name}'({x})"


def test_derivatives_at_zero_follow_autograd_conventions() -> None:
    zero = torch.zeros(1)
    assert value_and_derivative("ReLU", zero)[1].item() == 0.0
    assert value_and_derivative("sigmoid", zero)[1].item() == pytest.approx(0.25)
    assert value_and_derivative("tanh", zero)[1].item() == pytest.approx(1.0)
    assert value_and_derivative("GELU", zero)[1].item() == pytest.approx(0.5)


def test_lookup_is_case_insensitive_and_rejects_unknown_names() -> None:
    assert value_and_derivative("relu", torch.tensor([2.0]))[0].item() == 2.0
    with pytest.raises(JetfleetError, match="unknown activation 'swishy'"):
        value_and_derivative("swishy", torch.tensor([1.0]))


def test_input_tensor_is_left_alone() -> None:
    x = torch.tensor([1.0, -1.0])
    value_and_derivative("tanh", x)
    assert not x.requires_grad
    assert x.grad is None


def test_plot_activations_writes_png(tmp_path: Path, assert_png) -> None:
    out = plot_activations(tmp_path / "a" / "activations.png")
    assert out == tmp_path / "a" / "activations.png"
    assert assert_png(out, min_size=(1000, 600)) == (1300, 750)


def test_plot_activations_rejects_an_empty_range(tmp_path: Path) -> None:
    with pytest.raises(JetfleetError, match="bad plot range"):
        plot_activations(tmp_path / "x.png", x_min=1.0, x_max=1.0)
    assert not (tmp_path / "x.png").exists()
