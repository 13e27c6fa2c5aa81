from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.export.onnx_export import (
    check_onnx,
    export_onnx,
    fold_batchnorm,
    ort_logits,
    ort_session,
    parity_check,
    read_preprocess,
)
from jetfleet.controller.models import create_model, list_models

SPEC = PreprocessSpec((16, 16), 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), tuple("abcde"))


def _trained_like(name: str) -> torch.nn.Module:
    """A model whose BatchNorm statistics are not the identity (so folding has work to do)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_channels=3)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 16, 16) * 2 + 1)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_export_parity_on_every_architecture(name: str, tmp_path: Path) -> None:
    model = _trained_like(name)
    path = export_onnx(model, SPEC, tmp_path / f"{name}.onnx")
    graph = onnx.load(str(path)).graph
    assert not any(n.op_type == "BatchNormalization" for n in graph.node), "BN was not folded"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    images = np.random.default_rng(0).normal(size=(20, 3, 16, 16)).astype(np.float32)
    parity = parity_check(model, path, images)
    assert parity.max_abs_diff < 1e-3 and parity.top1_agreement == 1.0 and parity.samples == 20
    assert read_preprocess(path) == SPEC


def test_folding_preserves_outputs_and_removes_bn() -> None:
    model = _trained_like("custom_resnet")
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "the original must be untouched"


def test_dynamic_batch_runs_any_size(tmp_path: Path) -> None:
    path = export_onnx(_trained_like("basic_cnn"), SPEC, tmp_path / "m.onnx")
    session = ort_session(path)
    for n in (1, 3, 64):
        assert ort_logits(session, np.zeros((n, 3, 16, 16), np.float32)).shape == (n, 5)


def test_checker_rejects_a_broken_model(tmp_path: Path) -> None:
    path = export_onnx(_trained_like("basic_cnn"), SPEC, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.node[0].input[0] = "no_such_tensor"
    onnx.save_model(model, str(tmp_path / "broken.onnx"))
    with pytest.raises(JetfleetError, match="fails the ONNX checker"):
        check_onnx(tmp_path / "broken.onnx")


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    class NotTraceable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return x
            return -x

    with pytest.raises(Exception):  # noqa: B017 - any failure will do; what matters is what is left behind
        export_onnx(NotTraceable(), SPEC, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
