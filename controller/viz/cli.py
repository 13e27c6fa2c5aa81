"""``jetfleet viz``: figures that explain what a CNN computes.

The commands are thin: parse options, call one function of the sibling
modules, print the paths written. Bad input (an unknown model, a missing
image, a corrupt checkpoint) surfaces as :class:`JetfleetError`, which the
main ``jetfleet`` entry point prints as one ``error: ...`` line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from rich.console import Console
from rich.markup import escape

from jetfleet.common.files import atomic_write_text

if TYPE_CHECKING:
    from jetfleet.controller.viz.conv_demo import Padding

# The plotting modules import torch and matplotlib; each command imports its
# module itself so ``jetfleet --help`` and unrelated commands stay fast.

DEFAULT_OUT = Path("viz")
"""Relative to where the command runs, like ``reports/``: figures land next to the user's work."""

_out_option = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder for the figures (created if missing).",
)


def _console() -> Console:
    # Created per call so it writes to whatever sys.stdout is now (CliRunner swaps it).
    return Console(soft_wrap=True)


def _wrote(*paths: Path) -> None:
    console = _console()
    for path in paths:
        console.print(f"wrote [bold]{escape(str(path))}[/bold]")


@click.group("viz")
def viz() -> None:
    """Visualize convolutions, activations, feature maps and architectures."""


@viz.command("conv-demo")
@_out_option
@click.option("--image", type=click.Choice(["china.jpg", "flower.jpg"]), default="china.jpg", show_default=True)
@click.option("--height", type=click.IntRange(min=8, max=512), default=128, show_default=True)
@click.option("--padding", type=click.Choice(["same", "valid"]), default="same", show_default=True)
def conv_demo_cmd(out_dir: Path, image: str, height: int, padding: str) -> None:
    """A 2-D convolution by hand (numpy loops) next to torch's, on a sample photo."""
    from jetfleet.controller.viz.conv_demo import run_conv_demo

    result = run_conv_demo(out_dir / "conv_demo.png", image=image, height=height, padding=cast("Padding", padding))
    worst = max(result.max_abs_diff.values())
    _console().print(f"naive loop vs F.conv2d: max abs difference {worst:.1e} over {len(result.max_abs_diff)} kernels")
    _wrote(result.out_path)


@viz.command("activations")
@_out_option
def activations_cmd(out_dir: Path) -> None:
    """ReLU, Leaky ReLU, ELU, GELU, sigmoid, tanh and their autograd derivatives."""
    from jetfleet.controller.viz.activations import plot_activations

    _wrote(plot_activations(out_dir / "activations.png"))


@viz.command("feature-maps")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--image", "image", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--max-channels", type=click.IntRange(min=1), default=16, show_default=True)
@_out_option
def feature_maps_cmd(checkpoint: Path, image: Path, max_channels: int, out_dir: Path) -> None:
    """Feature maps of CHECKPOINT's conv blocks for one image, with its prediction."""
    from jetfleet.controller.viz.feature_maps import plot_feature_maps

    out = out_dir / f"feature_maps_{checkpoint.stem}_{image.stem}.png"
    result = plot_feature_maps(checkpoint, image, out, max_channels=max_channels)
    p = result.prediction
    _console().print(f"predicted {escape(p.label)} (class {p.index}, p = {p.probability:.1%})")
    _wrote(result.out_path)


@viz.command("architecture")
@click.argument("model")
@click.option("--input-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--channels", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True)
@_out_option
def architecture_cmd(model: str, input_size: int, channels: int, num_classes: int, out_dir: Path) -> None:
    """Layer table (shapes, parameters, MACs) and block diagram of MODEL."""
    from jetfleet.controller.models import create_model, resolve_model_name
    from jetfleet.controller.viz.architecture import plot_architecture, render_table, summarize, totals

    name = resolve_model_name(model)
    net = create_model(name, num_classes=num_classes, in_channels=channels)
    rows = summarize(net, (channels, input_size, input_size))
    title = f"{name} ({channels}×{input_size}×{input_size}, {num_classes} classes)"
    _console().print(render_table(rows, title=title))
    png = plot_architecture(rows, out_dir / f"architecture_{name}.png", title=title)
    total = totals(rows)
    doc = {
        "model": name,
        "input_shape": [1, channels, input_size, input_size],
        "num_classes": num_classes,
        "total_params": total.params,
        "total_macs": total.macs,
        "layers": [r.to_dict() for r in rows],
    }
    summary = out_dir / f"architecture_{name}.json"
    atomic_write_text(summary, json.dumps(doc, indent=2) + "\n")
    _wrote(png, summary)
