"""Activation functions and their slopes, the two things that decide how gradients flow.

Derivatives come from torch autograd rather than hand-written formulas, so
the plot shows what back-propagation actually uses (including the choices a
library makes at kinks, e.g. ReLU'(0) = 0); the tests pin them to the
textbook closed forms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path

LEAKY_SLOPE = 0.1
"""Slope for x < 0; torch's default 0.01 is invisible at plot scale, 0.1 shows the leak."""
ELU_ALPHA = 1.0
"""torch's default; with α = 1 the slope is 1 on both sides of 0, so ELU has no kink."""


@dataclass(frozen=True)
class Activation:
    """A named elementwise function with the formula shown in its panel title."""

    name: str
    formula: str
    fn: Callable[[torch.Tensor], torch.Tensor]


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("ReLU", "max(0, x)", F.relu),
        Activation("Leaky ReLU", f"x if x > 0 else {LEAKY_SLOPE}·x", lambda x: F.leaky_relu(x, LEAKY_SLOPE)),
        Activation("ELU", f"x if x > 0 else {ELU_ALPHA:g}·(eˣ − 1)", lambda x: F.elu(x, ELU_ALPHA)),
        Activation("GELU", "x·Φ(x)", F.gelu),
        Activation("sigmoid", "1 / (1 + e⁻ˣ)", torch.sigmoid),
        Activation("tanh", "tanh(x)", torch.tanh),
    )
}
"""The activations CNNs in this project (and most others) use, in the order they are plotted."""


def activation(name: str) -> Activation:
    """Look up an activation by name, case-insensitively, with a one-line error for typos."""
    by_lower = {k.lower(): v for k, v in ACTIVATIONS.items()}
    try:
        return by_lower[name.lower()]
    except KeyError:
        raise JetfleetError(f"unknown activation {name!r}", hint=f"choose one of: {', '.join(ACTIVATIONS)}") from None


def value_and_derivative(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(x)`` and ``f'(x)`` elementwise, the derivative by autograd.

    Summing the outputs before differentiating gives each element's own
    slope because the functions are elementwise (the Jacobian is diagonal).
    """
    act = activation(name)
    xs = x.detach().to(torch.float64).requires_grad_(True)
    y = act.fn(xs)
    (grad,) = torch.autograd.grad(y.sum(), xs)
    return y.detach(), grad.detach()


def plot_activations(out_path: str | Path, x_min: float = -4.0, x_max: float = 4.0, points: int = 801) -> Path:
    """One panel per activation with f (solid) and f' (dashed) over ``[x_min, x_max]``.

    Per-function panels keep each curve's own scale readable; a shared
    y-range still lets sigmoid's tiny slope (≤ 0.25) be compared with ReLU's 1.
    """
    if not x_min < x_max or points < 2:
        raise JetfleetError(f"bad plot range [{x_min}, {x_max}] with {points} points")
    x = torch.linspace(x_min, x_max, points, dtype=torch.float64)
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True, sharey=True)
    for ax, act in zip(axes.ravel(), ACTIVATIONS.values(), strict=True):
        y, dy = value_and_derivative(act.name, x)
        ax.plot(x.numpy(), y.numpy(), color="tab:blue", lw=2, label="f(x)")
        ax.plot(x.numpy(), dy.numpy(), color="tab:orange", lw=2, ls="--", label="f′(x) (autograd)")
        ax.axhline(0, color="gray", lw=0.6)
        ax.axvline(0, color="gray", lw=0.6)
        ax.grid(alpha=0.3)
        ax.set_title(f"{act.name}: {act.formula}", fontsize=11)
        ax.set_ylim(-1.6, 2.6)
    for ax in axes[-1]:
        ax.set_xlabel("x")
    axes[0, 0].legend(loc="upper left")
    fig.suptitle("Activation functions and their derivatives", fontsize=14)
    target = Path(out_path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=100)
    return target
