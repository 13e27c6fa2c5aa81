"""Importing external ONNX classifiers: good files register, bad ones leave no trace."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from fixtures import tiny_onnx_classifier

from jetfleet.common.errors import JetfleetError
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.registry.importing import import_onnx, validate_onnx_classifier
from jetfleet.controller.registry.store import Registry

SPEC = PreprocessSpec((8, 8), 1, (0.5,), (0.5,), tuple("abc"))


def test_import_registers_an_onnx_classifier(registry: Registry, tmp_path: Path) -> None:
    info = import_onnx(registry, tiny_onnx_classifier(tmp_path / "m.onnx"), "external_net", SPEC, "from a partner")
    assert info.ref == "external_net:1" and info.architecture == "external-onnx"
    assert [a.kind for a in info.artifacts] == ["onnx-fp32"] and info.artifacts[0].details["opset"] == 18
    assert PreprocessSpec.from_dict(info.preprocess) == SPEC
    assert registry.list_models()[0].description == "from a partner"


def _external_data_model(tmp_path: Path) -> Path:
    """A model whose weight claims to live in a file outside its folder (no such file is written)."""
    from onnx.external_data_helper import set_external_data

    path = tiny_onnx_classifier(tmp_path / "ext.onnx")
    model = onnx.load(str(path))
    weight = model.graph.initializer[0]
    set_external_data(weight, location="../outside.bin")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    path.write_bytes(model.SerializeToString())
    return path


def _broken_model(tmp_path: Path) -> Path:
    path = tiny_onnx_classifier(tmp_path / "broken.onnx")
    model = onnx.load(str(path))
    model.graph.node[1].input[1] = "missing_weight"
    onnx.save_model(model, str(path))
    return path


def _garbage_file(tmp_path: Path) -> Path:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x00not protobuf at all\xff" * 10)
    return path


def _torch_file(tmp_path: Path) -> Path:
    """A pickle-based torch checkpoint renamed to .onnx."""
    path = tmp_path / "c.onnx"
    torch.save({"w": torch.zeros(2)}, path)
    return path


def _classifier(tmp_path: Path) -> Path:
    return tiny_onnx_classifier(tmp_path / "m.onnx")


def _absent(tmp_path: Path) -> Path:
    return tmp_path / "absent.onnx"


@pytest.mark.parametrize(
    ("make", "spec", "message"),
    [
        (_garbage_file, SPEC, "not an ONNX model"),
        (_torch_file, SPEC, "not an ONNX model"),
        (_external_data_model, SPEC, "external data"),
        (_broken_model, SPEC, "fails the ONNX checker"),
        (_classifier, PreprocessSpec((8, 8), 3, (0.5,) * 3, (0.5,) * 3), "channels is 1"),
        (_classifier, PreprocessSpec((8, 8), 1, (0.5,), (0.5,), tuple("ab")), "3 classes"),
        (_absent, SPEC, "does not exist"),
    ],
)
def test_bad_imports_write_nothing(registry: Registry, tmp_path: Path, make, spec, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(JetfleetError, match=message):
        import_onnx(registry, path, "bad", spec)
    assert registry.list_models() == [] and list(registry.blobs) == []


def test_size_limit(tmp_path: Path) -> None:
    path = tiny_onnx_classifier(tmp_path / "m.onnx")
    with pytest.raises(JetfleetError, match="over the import limit"):
        validate_onnx_classifier(path, SPEC, max_size=100)
