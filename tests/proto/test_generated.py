"""The committed protobuf/gRPC modules (proto/v1, proto/onnx) are exactly what scripts/gen_proto.py generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_a_fresh_generation() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


def test_every_proto_has_its_generated_modules_and_stubs() -> None:
    sources = sorted(p.stem for p in (REPO / "proto" / "v1").glob("*.proto"))
    assert sources == ["admin", "agent", "common", "controller"]
    for stem in sources:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (REPO / "proto" / "v1" / f"{stem}{suffix}").is_file()


def test_the_onnx_subset_has_messages_and_stubs_but_no_services() -> None:
    folder = REPO / "proto" / "onnx"
    assert sorted(p.stem for p in folder.glob("*.proto")) == ["onnx_subset"]
    assert sorted(p.name for p in folder.glob("onnx_subset_pb2*")) == ["onnx_subset_pb2.py", "onnx_subset_pb2.pyi"]


def test_services_are_in_the_versioned_package() -> None:
    from jetfleet.proto.v1 import agent_pb2, controller_pb2

    assert agent_pb2.DESCRIPTOR.package == "jetfleet.v1"
    assert set(agent_pb2.DESCRIPTOR.services_by_name) == {"AgentService"}
    assert set(controller_pb2.DESCRIPTOR.services_by_name) == {"ControllerService", "EnrollmentService"}


def test_the_onnx_subset_is_not_in_onnxs_package() -> None:
    """The controller imports the real onnx too: one descriptor pool, so no full name may be ONNX's."""
    from jetfleet.proto.onnx import onnx_subset_pb2

    assert onnx_subset_pb2.DESCRIPTOR.package == "jetfleet.onnxsubset"
    assert onnx_subset_pb2.DESCRIPTOR.name == "jetfleet/proto/onnx/onnx_subset.proto"
