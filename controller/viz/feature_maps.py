"""What a trained model's conv blocks see in one image.

The image goes through exactly the preprocessing recorded in the checkpoint
(the same recipe an agent applies on a device), forward hooks capture each
feature block's output, and the first channels of each are drawn as a grid
under the input and the model's prediction.

Which modules count as "feature blocks": a model's own ``feature_blocks()``
when it has one (basic_cnn, custom_resnet); otherwise torchvision's ResNet
stages ``layer1..layer4``; otherwise the children of a ``features``
Sequential (MobileNet, VGG, EfficientNet); otherwise the top-level children.
Only blocks whose output is a 4-D map are plotted, at most ``max_blocks`` of
them, evenly spaced so the first and last are always shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.data.splits import load_image
from jetfleet.controller.training.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_of


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class FeatureMapResult:
    """The figure's path, each plotted block's activation shape (N, C, H, W), and the top-1 prediction."""

    out_path: Path
    shapes: dict[str, tuple[int, ...]]
    prediction: Prediction


def preprocess_image(image_path: str | Path, spec: PreprocessSpec) -> torch.Tensor:
    """Decode ``image_path`` into a (1, C, H, W) float tensor the way the model was trained.

    load_image resizes the shorter side and centre-crops to a square, so
    ``input_size[0]`` is the side; then pixels go to [0, 1] and are
    normalized per channel with the checkpoint's mean and std.
    """
    path = Path(image_path)
    if not path.is_file():
        raise JetfleetError(f"image {path} does not exist")
    pixels = load_image(path, spec.input_size[0], spec.channels).astype(np.float32) / 255.0
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return torch.from_numpy((pixels - mean) / std)[None]


def candidate_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are worth looking at, by the rules in the module docstring."""
    own = getattr(model, "feature_blocks", None)
    if callable(own):
        return list(own())
    stages = [(f"layer{i}", getattr(model, f"layer{i}", None)) for i in range(1, 5)]
    if all(isinstance(m, nn.Module) for _, m in stages):
        return [(name, m) for name, m in stages if isinstance(m, nn.Module)]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return [(f"features.{name}", m) for name, m in features.named_children()]
    return list(model.named_children())


def _evenly(items: list[str], limit: int) -> list[str]:
    """At most ``limit`` items spread over the list, keeping the first and the last."""
    if len(items) <= limit:
        return items
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def capture_activations(
    model: nn.Module, x: torch.Tensor, blocks: list[tuple[str, nn.Module]]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model(x)`` once and return its logits and every block's output.

    Outputs are cloned inside the hook because a later in-place op (ReLU
    with ``inplace=True``) could otherwise overwrite what we captured.
    """
    captured: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[[nn.Module, object, object], None]:
        def record(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                captured[name] = output.detach().clone()

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in blocks]
    try:
        with torch.no_grad():
            logits = model(x)
    except RuntimeError as exc:
        raise JetfleetError(f"the model cannot run on this input: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        for h in handles:
            h.remove()
    return logits, captured


def predict(logits: torch.Tensor, labels: tuple[str, ...]) -> Prediction:
    """Top-1 class with its softmax probability; unnamed classes read 'class N'."""
    probs = torch.softmax(logits.reshape(-1).double(), dim=0)
    index = int(torch.argmax(probs))
    label = labels[index] if index < len(labels) else f"class {index}"
    return Prediction(index=index, label=label, probability=float(probs[index]))


def _input_for_display(x: torch.Tensor, spec: PreprocessSpec) -> np.ndarray:
    """Undo the normalization so the input panel shows the image as the model's crop of it."""
    mean = np.asarray(spec.mean)[:, None, None]
    std = np.asarray(spec.std)[:, None, None]
    img = np.clip(x[0].numpy() * std + mean, 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def montage(maps: np.ndarray) -> np.ndarray:
    """Tile (C, H, W) maps left to right, each scaled to [0, 1] on its own, NaN gaps between.

    Per-channel scaling is deliberate: the pattern a channel responds to is
    the point, and one strong channel would otherwise flatten all others.
    One image per block (rather than one axes per channel) also keeps the
    figure fast to draw.
    """
    c, h, w = maps.shape
    gap = max(1, h // 8)
    out = np.full((h, c * w + (c - 1) * gap), np.nan)
    for i, fmap in enumerate(maps):
        lo, hi = float(fmap.min()), float(fmap.max())
        out[:, i * (w + gap) : i * (w + gap) + w] = (fmap - lo) / (hi - lo) if hi > lo else 0.0
    return out


def _draw(
    maps: dict[str, torch.Tensor],
    x: torch.Tensor,
    spec: PreprocessSpec,
    prediction: Prediction,
    title: str,
    max_channels: int,
) -> Figure:
    """Input + prediction on top, then one strip per block with its first ``max_channels`` channels."""
    cols = max(2, min(max_channels, max(t.shape[1] for t in maps.values())))
    width = max(7.0, 1.1 * cols + 1.6)  # ~1.1 inch per map; never so narrow the titles collapse
    fig = Figure(figsize=(width, 1.9 + 1.4 * len(maps)), layout="constrained")
    grid = fig.add_gridspec(len(maps) + 1, 2, width_ratios=[1, cols - 1], height_ratios=[1.5] + [1] * len(maps))
    top = fig.add_subplot(grid[0, 0])
    top.imshow(_input_for_display(x, spec), cmap="gray" if spec.channels == 1 else None)
    top.set_xticks([])
    top.set_yticks([])
    top.set_title(f"input {x.shape[2]}×{x.shape[3]}", fontsize=9)
    text = fig.add_subplot(grid[0, 1])
    text.axis("off")
    text.text(
        0.0,
        0.5,
        f"predicted: {prediction.label}  (class {prediction.index}, p = {prediction.probability:.1%})\n"
        "each map is scaled to its own range (viridis: dark = low, yellow = high)",
        ha="left",
        va="center",
        fontsize=11,
        transform=text.transAxes,
    )
    cmap = colormaps["viridis"].with_extremes(bad="white")
    for row, (name, act) in enumerate(maps.items(), start=1):
        channels = act[0, :max_channels].numpy()
        ax = fig.add_subplot(grid[row, :])
        ax.imshow(montage(channels), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        step = channels.shape[2] + max(1, channels.shape[1] // 8)
        ax.set_xticks([i * step + (channels.shape[2] - 1) / 2 for i in range(len(channels))])
        ax.set_xticklabels([f"ch {i}" for i in range(len(channels))], fontsize=7)
        ax.set_yticks([])
        ax.tick_params(length=0)
        ax.set_frame_on(False)
        shape = "×".join(str(s) for s in act.shape[1:])
        shown = f"\nfirst {len(channels)} ch" if len(channels) < act.shape[1] else ""
        ax.set_ylabel(f"{name}\n{shape}{shown}", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_feature_maps(
    checkpoint_path: str | Path,
    image_path: str | Path,
    out_path: str | Path,
    max_channels: int = 16,
    max_blocks: int = 8,
) -> FeatureMapResult:
    """Load a checkpoint, run one image through it, and save a grid of its feature maps."""
    if max_channels < 1 or max_blocks < 1:
        raise JetfleetError(f"max_channels and max_blocks must be positive, got {max_channels} and {max_blocks}")
    ckpt = load_checkpoint(checkpoint_path)
    spec = preprocess_of(ckpt)
    model = model_from_checkpoint(ckpt)
    x = preprocess_image(image_path, spec)
    blocks = candidate_blocks(model)
    logits, captured = capture_activations(model, x, blocks)
    spatial = [name for name, _ in blocks if name in captured and captured[name].dim() == 4]
    if not spatial:
        raise JetfleetError(f"model {ckpt['model']} exposes no 4-D feature maps to plot")
    maps = {name: captured[name] for name in _evenly(spatial, max_blocks)}
    prediction = predict(logits, spec.labels)
    title = f"{ckpt['model']} feature maps · {Path(checkpoint_path).name} · {Path(image_path).name}"
    fig = _draw(maps, x, spec, prediction, title, max_channels)
    target = Path(out_path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=100)
    shapes = {name: tuple(t.shape) for name, t in maps.items()}
    return FeatureMapResult(out_path=target, shapes=shapes, prediction=prediction)
