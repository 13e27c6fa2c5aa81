"""The committed protobuf/gRPC modules are exactly what scripts/gen_proto.py generates."""

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


def test_services_are_in_the_versioned_package() -> None:
    from jetfleet.proto.v1 import agent_pb2, controller_pb2

    assert agent_pb2.DESCRIPTOR.package == "jetfleet.v1"
    assert set(agent_pb2.DESCRIPTOR.services_by_name) == {"AgentService"}
    assert set(controller_pb2.DESCRIPTOR.services_by_name) == {"ControllerService", "EnrollmentService"}
