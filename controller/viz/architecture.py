"""Layer-by-layer summary of a model: output shapes, parameters, multiply-accumulates.

The summary comes from one forward pass at batch size 1 with hooks on every
leaf module, so it reports what the network really does (including modules
called more than once, like torchvision's shared ReLU) rather than what the
constructor declared. Parameters are counted on a module's first call only,
so the total always equals ``sum(p.numel() for p in model.parameters())``;
MACs are counted on every call because every call costs compute.

MACs follow the usual convention for CNN cost tables: convolutions and
fully-connected layers only (normalization, activations and pooling are
memory-bound and cheap by comparison), FLOPs ≈ 2 × MACs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from rich.table import Table
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path


@dataclass(frozen=True)
class LayerRow:
    """One call of one leaf module (batch size 1); ``output_shape`` is () for a module never called."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        return d


class Totals(NamedTuple):
    params: int
    macs: int


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call at batch size 1 (the caller runs batch 1).

    Conv2d: each output element is a dot product over ``in/groups × kh × kw``
    inputs. Linear: ``in × out`` per item, times any extra leading positions.
    """
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _first_tensor(output: Any) -> torch.Tensor | None:
    """Modules may return tuples or dicts; the first tensor is the one shapes are reported for."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        return _first_tensor(list(output.values()))
    return None


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Run one ``(1, *input_shape)`` forward pass in eval mode and describe every leaf call.

    ``input_shape`` is (channels, height, width). The model's train/eval
    mode is restored afterwards; a model that cannot take this input is a
    :class:`JetfleetError` (the user chose the size or channel count).
    """
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise JetfleetError(f"input shape must be (channels, height, width) with positive sizes, got {input_shape}")
    rows: list[LayerRow] = []
    counted: set[int] = set()

    def hook(name: str) -> Any:
        def record(module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            params = 0
            if id(module) not in counted:
                counted.add(id(module))
                params = sum(p.numel() for p in module.parameters(recurse=False))
            shape = tuple(tensor.shape) if tensor is not None else ()
            macs = layer_macs(module, tensor) if tensor is not None else 0
            rows.append(LayerRow(name, type(module).__name__, shape, params, macs))

        return record

    leaves = _leaves(model)
    handles = [m.register_forward_hook(hook(name)) for name, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JetfleetError(
            f"{type(model).__name__} cannot take input of shape {tuple(input_shape)}: {detail}",
            hint="check --channels and --input-size against the model",
        ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows + _uncalled(model, leaves, counted)


def _uncalled(model: nn.Module, leaves: list[tuple[str, nn.Module]], counted: set[int]) -> list[LayerRow]:
    """Rows for parameters no hook saw (unused leaves, parameters held by containers).

    Without them the parameter total would silently disagree with the model.
    """
    rows = [
        LayerRow(name, type(m).__name__, (), sum(p.numel() for p in m.parameters(recurse=False)), 0)
        for name, m in leaves
        if id(m) not in counted and any(True for _ in m.parameters(recurse=False))
    ]
    leaf_ids = {id(m) for _, m in leaves}
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own and id(m) not in leaf_ids:
            rows.append(LayerRow(name or "(model)", f"{type(m).__name__} (own parameters)", (), own, 0))
    return rows


def totals(rows: Iterable[LayerRow]) -> Totals:
    rows = list(rows)
    return Totals(params=sum(r.params for r in rows), macs=sum(r.macs for r in rows))


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) if shape else "-"


def render_table(rows: list[LayerRow], title: str | None = None) -> Table:
    """A rich table of every row with a totals footer, for the terminal."""
    table = Table(title=title, show_footer=True)
    total = totals(rows)
    table.add_column("layer", footer="total")
    table.add_column("type")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right", footer=f"{total.params:,}")
    table.add_column("MACs", justify="right", footer=f"{total.macs:,}")
    for r in rows:
        table.add_row(r.name, r.type, _shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
    return table


@dataclass(frozen=True)
class Box:
    """One box of the block diagram: a leaf layer, or consecutive leaves sharing a name prefix.

    A group's ``output_shape`` is that of its last layer call, which for a
    residual block is the block's output (the final ReLU after the add).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def _kind_summary(types: list[str]) -> str:
    """'Conv2d ×2, BatchNorm2d ×2, ReLU ×2' in order of first appearance."""
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return ", ".join(t if n == 1 else f"{t} ×{n}" for t, n in counts.items())


def group_rows(rows: list[LayerRow], depth: int | None) -> list[Box]:
    """Merge consecutive rows whose names share the first ``depth`` dotted parts (None: no merging)."""
    boxes: list[Box] = []
    group: list[LayerRow] = []

    def flush() -> None:
        if not group:
            return
        shaped = [r.output_shape for r in group if r.output_shape]
        kind = group[0].type if len(group) == 1 else _kind_summary([r.type for r in group])
        key = group[0].name if depth is None or len(group) == 1 else ".".join(group[0].name.split(".")[:depth])
        boxes.append(Box(key, kind, shaped[-1] if shaped else (), *totals(group)))
        group.clear()

    def key(row: LayerRow) -> str:
        return row.name if depth is None else ".".join(row.name.split(".")[:depth])

    for row in rows:
        if group and (depth is None or key(group[0]) != key(row)):
            flush()
        group.append(row)
    flush()
    return boxes


def diagram_boxes(rows: list[LayerRow], max_boxes: int = 24) -> list[Box]:
    """One box per leaf when that fits in ``max_boxes``, else group by the deepest name prefix that fits.

    resnet18's ~70 leaf calls become its stem layers plus one box per
    residual block; mobilenet_v3_small's become one box per inverted-residual
    stage; the image stays readable either way.
    """
    if len(rows) <= max_boxes:
        return group_rows(rows, None)
    max_depth = max((len(r.name.split(".")) for r in rows), default=1)
    for depth in range(max_depth - 1, 0, -1):
        boxes = group_rows(rows, depth)
        if len(boxes) <= max_boxes:
            return boxes
    return group_rows(rows, 1)


_COLORS = {
    "Conv": "#9ecae1",
    "Linear": "#bcbddc",
    "Norm": "#d9d9d9",
    "Pool": "#fdd0a2",
    "ReLU": "#c7e9c0",
    "GELU": "#c7e9c0",
    "Hardswish": "#c7e9c0",
    "SiLU": "#c7e9c0",
    "Sigmoid": "#c7e9c0",
    "Dropout": "#f0f0f0",
}


def _color(kind: str) -> str:
    """Colour by what dominates a box (its first type), so conv/linear/pool regions stand out."""
    first = kind.split(",")[0]
    for key, color in _COLORS.items():
        if key in first:
            return color
    return "#fff7bc"


def _draw_box(ax: Axes, y: float, box: Box, width: float) -> None:
    """A rounded box: name and output shape on top, layer types and cost below."""
    ax.add_patch(
        FancyBboxPatch(
            (-width / 2, y - 0.36),
            width,
            0.72,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=_color(box.kind),
            edgecolor="#444444",
            lw=1,
        )
    )
    left, right = -width / 2 + 0.1, width / 2 - 0.1
    # Texts sit inside their box, so the layout engine need not measure them (it is slow per text).
    common = {"va": "center", "in_layout": False}
    ax.text(left, y + 0.12, box.name, ha="left", fontsize=9, fontweight="bold", **common)
    ax.text(right, y + 0.12, f"out {_shape(box.output_shape)}", ha="right", fontsize=9, **common)
    kind = box.kind if len(box.kind) <= 70 else box.kind[:67] + "..."
    ax.text(left, y - 0.16, kind, ha="left", fontsize=8, color="#333333", **common)
    cost = f"{box.params:,} params · {box.macs:,} MACs"
    ax.text(right, y - 0.16, cost, ha="right", fontsize=8, color="#333333", **common)


def plot_architecture(
    rows: list[LayerRow], out_path: str | Path, title: str | None = None, max_boxes: int = 24
) -> Path:
    """A vertical block diagram, input at the top, one box per layer or per group (see :func:`diagram_boxes`)."""
    boxes = diagram_boxes(rows, max_boxes)
    if not boxes:
        raise JetfleetError("nothing to draw: the model has no layers")
    width = 10.0
    fig = Figure(figsize=(9, 1.2 + 0.62 * len(boxes)), layout="constrained")
    ax = fig.add_subplot()
    for i, box in enumerate(boxes):
        y = -float(i)
        _draw_box(ax, y, box, width)
        if i + 1 < len(boxes):
            ax.add_patch(FancyArrowPatch((0, y - 0.38), (0, y - 0.62), arrowstyle="-|>", mutation_scale=10, lw=1))
    ax.set_xlim(-width / 2 - 0.2, width / 2 + 0.2)
    ax.set_ylim(-len(boxes) + 0.5, 0.5)
    ax.axis("off")
    total = totals(rows)
    heading = f"{title}\n" if title else ""
    ax.set_title(f"{heading}{total.params:,} parameters · {total.macs:,} MACs (batch 1)", fontsize=11)
    target = Path(out_path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=100)
    return target
