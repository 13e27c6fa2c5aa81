#!/usr/bin/env python3
"""Regenerate the committed protobuf/gRPC modules from proto/v1/*.proto.

    python scripts/gen_proto.py           # rewrite proto/v1/*_pb2*.py(i)
    python scripts/gen_proto.py --check   # exit 1 if the committed files are stale

The sources live in proto/v1 but are compiled as ``jetfleet/proto/v1/...``
(protoc's virtual include path) so the generated imports read
``from jetfleet.proto.v1 import common_pb2``, the installed package path.

The generator is pinned, and it is old on purpose: the modules are imported
on JetPack 5's Python 3.8, whose newest runtimes are protobuf 5.29 and grpcio
1.70. Generated code refuses a runtime older than its generator (protobuf's
``ValidateProtobufRuntimeVersion``, grpc's ``GRPC_GENERATED_VERSION``), while
newer runtimes accept older generated code, so generating with grpcio-tools
1.70 (protoc 5.29) serves every supported Python. That grpcio-tools cannot sit
in the controller's environment (it needs protobuf < 6, onnx needs >= 6.31),
so it lives in its own virtualenv, ``build/protoc``, which this script creates
on first use (``--bootstrap`` only creates it).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "proto" / "v1"
VIRTUAL = "jetfleet/proto/v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
GENERATOR = "grpcio-tools==1.70.0"  # protoc 5.29: the newest generated code protobuf 5.29 (Python 3.8) loads
TOOL_VENV = ROOT / "build" / "protoc"


def generate(out: Path) -> list[Path]:
    """Compile every .proto into ``out``; return the generated files."""
    from grpc_tools import protoc  # only in build/protoc: see the module docstring

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


def tool_python() -> Path:
    """The interpreter of ``build/protoc``, created with the pinned generator if it is missing or stale."""
    python = TOOL_VENV / "bin" / "python"
    stamp = TOOL_VENV / ".generator"
    if python.exists() and stamp.exists() and stamp.read_text() == GENERATOR:
        return python
    print(f"creating {TOOL_VENV.relative_to(ROOT)} with {GENERATOR} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOL_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", GENERATOR]
    subprocess.run(pip, check=True)
    stamp.write_text(GENERATOR)
    return python


def in_tool_venv() -> bool:
    """True when this process already runs on the pinned generator's interpreter."""
    return Path(sys.prefix).resolve() == TOOL_VENV.resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed files differ from a fresh generation"
    )
    parser.add_argument("--bootstrap", action="store_true", help="only create build/protoc (the pinned generator)")
    opts, _ = parser.parse_known_args()
    if not in_tool_venv():
        python = tool_python()
        if opts.bootstrap:
            return 0
        return subprocess.run([str(python), __file__, *sys.argv[1:]]).returncode
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
