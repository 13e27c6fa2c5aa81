"""``jetfleet train`` registering its result, and ``jetfleet models ...``, as subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fixtures import pg_url_or_skip, tiny_onnx_classifier


def _json(result) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_train_registers_and_models_commands_work(cli, tmp_path: Path) -> None:
    first = cli("train", "--epochs", "1", "--out", "r1")  # registers and optimizes, as users run it
    assert first.returncode == 0, first.stderr
    second = cli("train", "--epochs", "1", "--seed", "3", "--out", "r2", "--no-optimize")
    assert "registered as basic_cnn:2" in second.stdout

    [listing] = _json(cli("models", "list", "--json"))
    assert listing["name"] == "basic_cnn" and listing["versions"] == 2 and listing["latest"] == 2

    shown = _json(cli("models", "show", "basic_cnn:1", "--json"))
    kinds = [a["kind"] for a in shown["artifacts"]]
    assert kinds == ["checkpoint", "onnx-fp32", "onnx-fp16", "onnx-int8-qdq", "calibration-set", "test-set"]
    ckpt = shown["artifacts"][0]
    assert ckpt["size"] > 1000
    for kind in ("onnx-fp32", "onnx-fp16", "onnx-int8-qdq"):
        names = {m["name"] for m in shown["metrics"] if m["artifact_kind"] == kind}
        assert {"accuracy", "latency_p50_ms", "latency_p99_ms"} <= names, kind
    blob = Path(os.environ["JETFLEET_HOME"]) / "blobs" / "sha256" / ckpt["sha256"][:2] / ckpt["sha256"]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == ckpt["sha256"]
    accuracy = next(m for m in shown["metrics"] if m["name"] == "accuracy" and m["artifact_kind"] == "checkpoint")
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert accuracy["value"] == summary["test_accuracy"]
    assert shown["dataset"] == "digits" and len(shown["dataset_fingerprint"]) == 64
    assert shown["preprocess"]["labels"] == [str(i) for i in range(10)]

    assert _json(cli("models", "alias", "basic_cnn", "production", "1", "--json"))["aliases"] == ["production"]
    tagged = _json(cli("models", "tag", "basic_cnn:2", "owner=edge-team", "--status", "staging", "--json"))
    assert tagged["tags"] == {"owner": "edge-team"} and tagged["status"] == "staging"
    assert _json(cli("models", "show", "basic_cnn@production", "--json"))["version"] == 1
    human = cli("models", "show", "basic_cnn:1")
    assert "onnx-int8-qdq" in human.stdout and "ONNX vs torch" in human.stdout
    assert [a["kind"] for a in _json(cli("models", "show", "basic_cnn", "--json"))["artifacts"]] == ["checkpoint"]

    assert _json(cli("models", "delete", "basic_cnn:1", "--json"))["version"] == 1
    assert sorted(_json(cli("models", "gc", "--json"))["removed"]) == sorted(a["sha256"] for a in shown["artifacts"])
    assert not blob.exists()
    missing = cli("models", "show", "basic_cnn@production")
    assert missing.returncode == 1 and "no alias 'production'" in missing.stderr


def test_no_register_leaves_the_registry_empty(cli) -> None:
    assert cli("train", "--epochs", "1", "--no-register", "--out", "r").returncode == 0
    assert _json(cli("models", "list", "--json")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "show", "basic_cnn:x"], "bad model reference"),
        (["models", "show", "nothing"], "no model named 'nothing'"),
        (["models", "alias", "nothing", "production", "1"], "no model named"),
        (["models", "list", "--db", "postgresql+psycopg://u:pw@127.0.0.1:1/db"], "cannot open registry database"),
    ],
)
def test_bad_registry_input_is_one_line(cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


def test_registering_on_postgresql(cli) -> None:
    url = pg_url_or_skip()
    assert cli("train", "--epochs", "1", "--out", "r", "--db", url, "--no-optimize").returncode == 0
    names = [m["name"] for m in _json(cli("models", "list", "--json", "--db", url))]
    assert "basic_cnn" in names


def test_import_external_onnx(cli, tmp_path: Path) -> None:
    tiny_onnx_classifier(tmp_path / "m.onnx", classes=2)
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    ok = cli("models", "import", "m.onnx", "--name", "partner", "--input-size", "8", "--channels", "1",
             "--labels-file", "labels.txt")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    shown = _json(cli("models", "show", "partner", "--json"))
    assert shown["preprocess"]["labels"] == ["cat", "dog"] and shown["preprocess"]["mean"] == [0.5]
    (tmp_path / "junk.onnx").write_bytes(b"junk" * 50)
    bad = cli("models", "import", "junk.onnx", "--name", "junk", "--input-size", "8")
    assert bad.returncode == 1 and "not an ONNX model" in bad.stderr and "Traceback" not in bad.stderr
    assert [m["name"] for m in _json(cli("models", "list", "--json"))] == ["partner"]
    mismatch = cli("models", "quantize", "partner", "--dataset", "digits")
    assert mismatch.returncode == 1 and "has 10 classes, the model 2" in mismatch.stderr
