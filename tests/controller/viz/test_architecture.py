from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.models import create_model, list_models
from jetfleet.controller.viz.architecture import (
    LayerRow,
    diagram_boxes,
    group_rows,
    plot_architecture,
    render_table,
    summarize,
    totals,
)


def _row(rows: list[LayerRow], name: str) -> LayerRow:
    matches = [r for r in rows if r.name == name]
    assert len(matches) == 1, f"{name}: {matches}"
    return matches[0]


@pytest.fixture(scope="module")
def basic_rows() -> list[LayerRow]:
    return summarize(create_model("basic_cnn"), (3, 32, 32))


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return create_model("resnet18")  # ~1 s to initialise 11 M weights: build it once


@pytest.fixture(scope="module")
def resnet18_rows(resnet18: nn.Module) -> list[LayerRow]:
    return summarize(resnet18, (3, 32, 32))


@pytest.mark.parametrize("name", list_models())
def test_parameter_total_matches_the_model(name: str) -> None:
    model = create_model(name, num_classes=7, in_channels=1)
    model.train()
    rows = summarize(model, (1, 24, 24))
    assert totals(rows).params == sum(p.numel() for p in model.parameters())
    assert totals(rows).macs > 0
    assert model.training, "summarize must restore train mode"
    assert any(r.type == "Linear" and r.output_shape == (1, 7) for r in rows), "the classifier's row is missing"


def test_basic_cnn_hand_computed_macs(basic_rows: list[LayerRow]) -> None:
    conv1 = _row(basic_rows, "features.0.0")
    assert conv1.type == "Conv2d"
    assert conv1.output_shape == (1, 32, 32, 32)
    assert conv1.params == 32 * 3 * 3 * 3  # bias=False
    assert conv1.macs == 32 * 32 * 32 * 3 * 9
    assert _row(basic_rows, "features.1.0").macs == 16 * 16 * 64 * 32 * 9
    assert _row(basic_rows, "features.2.0").macs == 8 * 8 * 128 * 64 * 9
    fc1 = _row(basic_rows, "classifier.1")
    assert (fc1.params, fc1.macs) == (128 * 256 + 256, 128 * 256)
    assert _row(basic_rows, "classifier.4").macs == 256 * 10
    assert totals(basic_rows).macs == 32 * 32 * 32 * 27 + 16 * 16 * 64 * 288 + 8 * 8 * 128 * 576 + 128 * 256 + 2560


def test_shapes_follow_the_forward_pass(basic_rows: list[LayerRow]) -> None:
    assert [r.name for r in basic_rows][:4] == ["features.0.0", "features.0.1", "features.0.2", "features.0.3"]
    assert _row(basic_rows, "features.0.3").output_shape == (1, 32, 16, 16)
    assert _row(basic_rows, "features.2.3").output_shape == (1, 128, 4, 4)
    assert _row(basic_rows, "classifier.0").output_shape == (1, 128)
    assert all(r.macs == 0 for r in basic_rows if r.type not in ("Conv2d", "Linear"))


def test_grouped_and_strided_convolutions() -> None:
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 1 input channel per output
        nn.Conv2d(8, 4, (1, 3), stride=2, padding=(0, 1)),
    )
    rows = summarize(model, (8, 10, 10))
    assert rows[0].macs == 8 * 10 * 10 * 1 * 9
    assert rows[1].output_shape == (1, 4, 5, 5)
    assert rows[1].macs == 4 * 5 * 5 * 8 * 3


def test_linear_over_extra_positions_counts_each_position() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x.flatten(2).transpose(1, 2))  # (1, 7, 4)

    (row,) = summarize(Tokens(), (4, 7, 1))
    assert row.output_shape == (1, 7, 5)
    assert row.macs == 7 * 4 * 5


def test_shared_modules_count_parameters_once_and_compute_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.scale = nn.Parameter(torch.ones(1))  # held by a container, not a leaf
            self.unused = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x.flatten(1))) * self.scale

    model = Twice()
    rows = summarize(model, (6, 1, 1))
    fc_rows = [r for r in rows if r.name == "fc"]
    assert [r.params for r in fc_rows] == [42, 0]
    assert [r.macs for r in fc_rows] == [36, 36]
    assert totals(rows).params == sum(p.numel() for p in model.parameters()) == 42 + 1 + 8
    assert {r.name for r in rows if r.output_shape == ()} == {"unused", "(model)"}


def test_torchvision_resnet_reuses_its_relu(resnet18_rows: list[LayerRow]) -> None:
    assert len([r for r in resnet18_rows if r.name == "layer1.0.relu"]) == 2
    assert _row(resnet18_rows, "conv1").macs == 32 * 32 * 64 * 3 * 9


def test_wrong_input_is_a_user_error() -> None:
    with pytest.raises(JetfleetError, match=r"cannot take input of shape \(1, 32, 32\)"):
        summarize(create_model("basic_cnn", in_channels=3), (1, 32, 32))
    with pytest.raises(JetfleetError, match="channels, height, width"):
        summarize(create_model("basic_cnn"), (3, 0, 32))


def test_render_table_lists_every_row_with_totals(basic_rows: list[LayerRow]) -> None:
    table = render_table(basic_rows, title="basic_cnn")
    assert table.row_count == len(basic_rows)
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "884,736" in text
    assert f"{totals(basic_rows).params:,}" in text
    assert "1×32×16×16" in text


def test_small_models_get_one_box_per_layer(basic_rows: list[LayerRow]) -> None:
    boxes = diagram_boxes(basic_rows)
    assert [b.name for b in boxes] == [r.name for r in basic_rows]


def test_big_models_are_grouped_into_blocks(resnet18_rows: list[LayerRow]) -> None:
    boxes = diagram_boxes(resnet18_rows, max_boxes=24)
    names = [b.name for b in boxes]
    assert len(resnet18_rows) > 24 >= len(boxes)
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert "layer1.0" in names and "layer4.1" in names
    assert sum(b.params for b in boxes) == totals(resnet18_rows).params
    assert sum(b.macs for b in boxes) == totals(resnet18_rows).macs
    layer4 = boxes[names.index("layer4.1")]
    assert layer4.output_shape == (1, 512, 4, 4)
    assert "Conv2d ×2" in layer4.kind


def test_group_by_top_level_child(resnet18: nn.Module, resnet18_rows: list[LayerRow]) -> None:
    names = [b.name for b in group_rows(resnet18_rows, 1)]
    assert names == [n for n, _ in resnet18.named_children()]


@pytest.mark.parametrize("model", ["basic_cnn", "resnet18"])
def test_plot_architecture_writes_a_legible_png(
    tmp_path: Path,
    model: str,
    basic_rows: list[LayerRow],
    resnet18_rows: list[LayerRow],
    assert_png,
) -> None:
    rows = basic_rows if model == "basic_cnn" else resnet18_rows
    out = plot_architecture(rows, tmp_path / f"{model}.png", title=model)
    _, height = assert_png(out, min_size=(800, 500))
    boxes = len(diagram_boxes(rows))
    assert height == pytest.approx(100 * (1.2 + 0.62 * boxes), abs=2)
    assert height < 2000, "too tall to read"
