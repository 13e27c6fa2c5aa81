#!/usr/bin/env python3
"""Regenerate the committed protobuf/gRPC modules from proto/v1/*.proto and proto/onnx/*.proto.

    python scripts/gen_proto.py           # rewrite proto/{v1,onnx}/*_pb2*.py(i)
    python scripts/gen_proto.py --check   # exit 1 if the committed files are stale

Two sets of sources (:data:`SOURCE_SETS`): ``proto/v1``, the fleet protocol
(messages, ``.pyi`` stubs and gRPC services), and ``proto/onnx``, the subset
of ONNX's model format the agent's ONNX guard parses (messages and stubs
only: it has no services). Each folder is compiled as ``jetfleet/proto/<folder>/...``
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
GENERATOR = "grpcio-tools==1.70.0"  # protoc 5.29: the newest generated code protobuf 5.29 (Python 3.8) loads
TOOL_VENV = ROOT / "build" / "protoc"


@dataclass(frozen=True)
class SourceSet:
    """One folder of .proto files under proto/, compiled together into that same folder."""

    folder: str  # under proto/; also the last part of the package, jetfleet.proto.<folder>
    grpc: bool  # also generate <name>_pb2_grpc.py (only where the files declare services)

    @property
    def sources(self) -> Path:
        return ROOT / "proto" / self.folder

    @property
    def virtual(self) -> str:
        return f"jetfleet/proto/{self.folder}"


SOURCE_SETS = (SourceSet("v1", grpc=True), SourceSet("onnx", grpc=False))


def generate(source_set: SourceSet, out: Path) -> list[Path]:
    """Compile every .proto of ``source_set`` into ``out``; return the generated files."""
    from grpc_tools import protoc  # only in build/protoc: see the module docstring

    include = str(Path(protoc.__file__).parent / "_proto")
    protos = sorted(source_set.sources.glob("*.proto"))
    args = [
        "protoc",
        f"-I{source_set.virtual}={source_set.sources}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *([f"--grpc_python_out={out}"] if source_set.grpc else []),
        *(f"{source_set.virtual}/{p.name}" for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    gen = out / source_set.virtual
    return sorted(p for p in gen.iterdir() if p.name.endswith(SUFFIXES))


def committed(source_set: SourceSet) -> list[Path]:
    return sorted(p for p in source_set.sources.iterdir() if p.name.endswith(SUFFIXES))


def check(source_set: SourceSet, generated: list[Path]) -> int:
    """Compare fresh output with the committed files; print a diff of any difference; return how many differ."""
    stale = 0
    fresh = {p.name: p for p in generated}
    for name in sorted(set(fresh) | {p.name for p in committed(source_set)}):
        old_path, new_path = source_set.sources / name, fresh.get(name)
        old = old_path.read_text().splitlines(keepends=True) if old_path.exists() else []
        new = new_path.read_text().splitlines(keepends=True) if new_path else []
        if old != new:
            stale += 1
            label = f"{source_set.folder}/{name}"
            sys.stdout.writelines(difflib.unified_diff(old, new, f"committed/{label}", f"generated/{label}"))
    return stale


def report(stale: int) -> int:
    """The exit status of ``--check``, with the hint to regenerate when files differ."""
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
    stale = 0
    for source_set in SOURCE_SETS:
        with tempfile.TemporaryDirectory() as tmp:
            generated = generate(source_set, Path(tmp))
            if opts.check:
                stale += check(source_set, generated)
                continue
            for old in committed(source_set):
                old.unlink()
            for path in generated:
                target = source_set.sources / path.name
                shutil.copyfile(path, target)
                print(f"wrote {target.relative_to(ROOT)}")
    return report(stale) if opts.check else 0


if __name__ == "__main__":
    sys.exit(main())
