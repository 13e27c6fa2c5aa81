"""Registry contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.registry.store import Lineage, MetricInfo, NewArtifact, Registry

SPEC = {"input_size": [8, 8], "channels": 1, "mean": [0.3], "std": [0.4], "labels": list("0123456789")}


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _register(registry: Registry, tmp_path: Path, content: bytes = b"weights", name: str = "basic_cnn", **kw):
    ckpt = _file(tmp_path, f"ckpt-{len(content)}-{content[:8].hex()}.pt", content)
    return registry.register_version(
        name, [NewArtifact("checkpoint", ckpt, {"format": "torch"})], SPEC, "basic_cnn", **kw
    )


def test_versions_number_from_one_and_latest_resolves(registry: Registry, tmp_path: Path) -> None:
    v1 = _register(registry, tmp_path, b"a")
    v2 = _register(registry, tmp_path, b"b")
    assert (v1.version, v2.version) == (1, 2)
    assert registry.get("basic_cnn").version == 2
    assert registry.get("basic_cnn:1").artifact("checkpoint").sha256 == v1.artifacts[0].sha256
    assert registry.get("basic_cnn:1").preprocess == SPEC
    [summary] = registry.list_models()
    assert (summary.name, summary.versions, summary.latest) == ("basic_cnn", 2, 2)


def test_aliases_point_and_move(registry: Registry, tmp_path: Path) -> None:
    _register(registry, tmp_path, b"a")
    _register(registry, tmp_path, b"b")
    registry.set_alias("basic_cnn", "production", 1)
    assert registry.get("basic_cnn@production").version == 1
    registry.set_alias("basic_cnn", "production", 2)
    assert registry.get("basic_cnn@production").version == 2
    assert registry.get("basic_cnn:2").aliases == ("production",)
    assert registry.list_models()[0].aliases == {"production": 2}
    with pytest.raises(JetfleetError, match="no alias 'staging'"):
        registry.get("basic_cnn@staging")
    with pytest.raises(JetfleetError, match=r"basic_cnn:9 does not exist"):
        registry.set_alias("basic_cnn", "staging", 9)
    registry.remove_alias("basic_cnn", "production")
    with pytest.raises(JetfleetError, match="no alias"):
        registry.get("basic_cnn@production")


def test_metrics_lineage_and_tags(registry: Registry, tmp_path: Path) -> None:
    _register(registry, tmp_path, b"a")
    lineage = Lineage("digits", "f" * 64, {"epochs": 10}, parent="basic_cnn:1", code_version="0.1.0")
    metrics = [MetricInfo("accuracy", 0.98, "checkpoint", {"split": "test"})]
    v = _register(registry, tmp_path, b"b", lineage=lineage, metrics=metrics, tags={"team": "edge"})
    got = registry.get(v.ref)
    assert got.parent == "basic_cnn:1" and got.dataset == "digits" and got.config == {"epochs": 10}
    assert got.metrics == tuple(metrics) and got.tags == {"team": "edge"} and got.code_version == "0.1.0"


def test_add_artifact_replaces_same_kind(registry: Registry, tmp_path: Path) -> None:
    v = _register(registry, tmp_path, b"a")
    onnx1 = _file(tmp_path, "m1.onnx", b"onnx one")
    onnx2 = _file(tmp_path, "m2.onnx", b"onnx two")
    registry.add_artifact(v.ref, NewArtifact("onnx-fp32", onnx1), [MetricInfo("accuracy", 0.9)])
    got = registry.add_artifact(v.ref, NewArtifact("onnx-fp32", onnx2), [MetricInfo("accuracy", 0.95)])
    assert [a.kind for a in got.artifacts] == ["checkpoint", "onnx-fp32"]
    assert got.artifact("onnx-fp32").size == len(b"onnx two")
    assert got.metrics == (MetricInfo("accuracy", 0.95, "onnx-fp32"),)


def test_blobs_are_shared_and_collected(registry: Registry, tmp_path: Path) -> None:
    v1 = _register(registry, tmp_path, b"same")
    v2 = _register(registry, tmp_path, b"same")
    v3 = _register(registry, tmp_path, b"only v3")
    assert v1.artifacts[0].sha256 == v2.artifacts[0].sha256 and len(list(registry.blobs)) == 2
    registry.delete_version("basic_cnn:1")
    registry.delete_version(v3.ref)
    assert registry.gc() == [v3.artifacts[0].sha256]
    assert registry.blobs.verify(v2.artifacts[0].sha256).size == 4
    assert [v.version for v in registry.list_versions("basic_cnn")] == [2]


def test_bad_input_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    good = _file(tmp_path, "good.pt", b"weights")
    cases = [
        ([NewArtifact("pickle", good)], "unknown artifact kind"),
        ([NewArtifact("checkpoint", tmp_path / "missing.pt")], "does not exist"),
        ([NewArtifact("checkpoint", good), NewArtifact("checkpoint", good)], "repeat"),
    ]
    for artifacts, message in cases:
        with pytest.raises(JetfleetError, match=message):
            registry.register_version("basic_cnn", artifacts, SPEC)
    with pytest.raises(JetfleetError, match="bad model name"):
        registry.register_version("../etc", [NewArtifact("checkpoint", good)], SPEC)
    with pytest.raises(JetfleetError, match="no model named"):
        registry.register_version("m", [NewArtifact("checkpoint", good)], SPEC, lineage=Lineage(parent="nope:1"))
    assert registry.list_models() == [] and list(registry.blobs) == []


@pytest.mark.parametrize("ref", ["", "a b", "x:y", "x@", "x:1@y"])
def test_malformed_references(registry: Registry, ref: str) -> None:
    with pytest.raises(JetfleetError, match="bad model reference"):
        registry.get(ref)


WRITER = """
import sys
from pathlib import Path
from jetfleet.controller.registry.db import make_engine
from jetfleet.controller.registry.blobs import BlobStore
from jetfleet.controller.registry.store import NewArtifact, Registry
url, blobs, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
registry = Registry(make_engine(url), BlobStore(blobs))
for i in range(8):
    f = blobs.parent / f"{tag}-{i}.bin"
    f.write_bytes(f"{tag} {i}".encode())
    registry.register_version("racer", [NewArtifact("checkpoint", f)], {})
"""


def test_concurrent_writers_neither_lose_nor_duplicate_versions(
    registry: Registry, db_url: str, tmp_path: Path
) -> None:
    blobs = registry.blobs.root
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(blobs), tag], stderr=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    versions = registry.list_versions("racer")
    assert [v.version for v in versions] == list(range(1, 17))
    assert len({v.artifacts[0].sha256 for v in versions}) == 16


def test_tags_and_status(registry: Registry, tmp_path: Path) -> None:
    v = _register(registry, tmp_path, b"a", tags={"team": "edge", "old": "x"})
    got = registry.update_version(v.ref, {"stage": "canary", "old": None}, status="archived")
    assert got.tags == {"team": "edge", "stage": "canary"} and got.status == "archived"
    assert registry.get(v.ref).status == "archived"
    with pytest.raises(JetfleetError, match="bad status name"):
        registry.update_version(v.ref, {}, status="not ok!")
