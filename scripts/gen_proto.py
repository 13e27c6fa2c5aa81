#!/usr/bin/env python3
"""Regenerate the committed protobuf/gRPC modules from proto/v1/*.proto.

    python scripts/gen_proto.py           # rewrite proto/v1/*_pb2*.py(i)
    python scripts/gen_proto.py --check   # exit 1 if the committed files are stale

The sources live in proto/v1 but are compiled as ``jetfleet/proto/v1/...``
(protoc's virtual include path) so the generated imports read
``from jetfleet.proto.v1 import common_pb2``, the installed package path.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "proto" / "v1"
VIRTUAL = "jetfleet/proto/v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Compile every .proto into ``out``; return the generated files."""
    from grpc_tools import protoc  # dev dependency (grpcio-tools)

    include = str(Path(protoc.__file__).parent / "_proto")
    protos = sorted(SOURCES.glob("*.proto"))
    args = [
        "protoc",
        f"-I{VIRTUAL}={SOURCES}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(f"{VIRTUAL}/{p.name}" for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    gen = out / VIRTUAL
    return sorted(p for p in gen.iterdir() if p.name.endswith(SUFFIXES))


def committed() -> list[Path]:
    return sorted(p for p in SOURCES.iterdir() if p.name.endswith(SUFFIXES))


def check(generated: list[Path]) -> int:
    """Compare fresh output with the committed files; print a diff of any difference."""
    stale = 0
    fresh = {p.name: p for p in generated}
    for name in sorted(set(fresh) | {p.name for p in committed()}):
        old_path, new_path = SOURCES / name, fresh.get(name)
        old = old_path.read_text().splitlines(keepends=True) if old_path.exists() else []
        new = new_path.read_text().splitlines(keepends=True) if new_path else []
        if old != new:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(old, new, f"committed/{name}", f"generated/{name}"))
    if stale:
        print(f"\n{stale} generated file(s) differ: run `python scripts/gen_proto.py` and commit", file=sys.stderr)
    return 1 if stale else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed files differ from a fresh generation"
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        if opts.check:
            return check(generated)
        for old in committed():
            old.unlink()
        for path in generated:
            shutil.copyfile(path, SOURCES / path.name)
            print(f"wrote {(SOURCES / path.name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
