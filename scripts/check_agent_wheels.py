#!/usr/bin/env python3
"""Prove that ``pip install 'jetfleet[agent]'`` finds wheels on every supported device.

    python scripts/check_agent_wheels.py                  # build the wheel, resolve the whole matrix
    python scripts/check_agent_wheels.py --wheel W.whl    # resolve an already built wheel

For each supported device Python (3.8 on JetPack 5, 3.10 on JetPack 6, 3.12
on JetPack 7) on aarch64 (the Jetson) and x86-64 (a developer's machine or a
dGPU box), pip resolves ``jetfleet[agent]`` from the package index with
``--only-binary=:all:`` for that interpreter and platform, as
``pip install --dry-run`` does, without installing anything. A row fails when
anything lacks a wheel, or when torch or torchvision would be pulled in (the
agent never imports them, and they are gigabytes on a Nano).

The platform of a row is the glibc of the Ubuntu that JetPack ships (20.04:
2.31, 22.04: 2.35, 24.04: 2.39). pip does not widen a ``--platform`` tag to
older ones, so every manylinux tag from manylinux2014 (glibc 2.17) up to that
glibc is passed: exactly the set pip on that device accepts.

The script also checks the other half of the contract: asking for the
controller on a Python older than 3.11 fails during resolution with a message
that says so (the guard in pyproject.toml's controller extra).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pythons import find_python  # scripts/pythons.py, beside this file

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "torchvision")
CONTROLLER_GUARD = "jetfleet-controller-needs-Python-3.11-or-newer"


@dataclass(frozen=True)
class Target:
    """One device environment: a JetPack's system Python and glibc on one architecture."""

    python: str
    glibc_minor: int
    arch: str
    jetpack: str

    @property
    def platforms(self) -> list[str]:
        """Every manylinux tag this device's pip accepts, oldest first."""
        tags = [f"manylinux2014_{self.arch}"]
        tags += [f"manylinux_2_{minor}_{self.arch}" for minor in range(17, self.glibc_minor + 1)]
        return tags

    def __str__(self) -> str:
        return f"cp{self.python.replace('.', '')} {self.arch:<7} glibc 2.{self.glibc_minor} ({self.jetpack})"


MATRIX = [
    Target(python, glibc, arch, jetpack)
    for python, glibc, jetpack in (("3.8", 31, "JetPack 5"), ("3.10", 35, "JetPack 6"), ("3.12", 39, "JetPack 7"))
    for arch in ("aarch64", "x86_64")
]


def build_wheel(out: Path) -> Path:
    """The jetfleet wheel of this working tree, as a user's ``pip install`` would get it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(out),
        ],
        check=True,
    )
    return next(out.glob("jetfleet-*.whl"))


def resolve(requirement: str, target: Target, scratch: Path) -> tuple[int, dict[str, str], str]:
    """pip's dry-run resolution for ``target``: (exit status, {name: version}, pip's error lines)."""
    report = scratch / f"report-{target.python}-{target.arch}.json"
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check"]
    args += ["--only-binary=:all:", "--python-version", target.python, "--target", str(scratch / "target")]
    for platform in target.platforms:
        args += ["--platform", platform]
    args += ["--report", str(report), requirement]
    proc = subprocess.run(args, capture_output=True, text=True)
    errors = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("ERROR"))
    if proc.returncode != 0 or not report.exists():
        return proc.returncode or 1, {}, errors
    installs = json.loads(report.read_text())["install"]
    return 0, {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}, errors


def check_agent(wheel: Path, target: Target, scratch: Path) -> list[str]:
    """Problems with ``jetfleet[agent]`` on ``target``; prints the versions it resolved to."""
    started = time.monotonic()
    rc, versions, errors = resolve(f"{wheel}[agent]", target, scratch)
    if rc != 0:
        return [f"{target}: no complete set of wheels\n{errors}"]
    pulled = [name for name in FORBIDDEN if name in versions]
    keys = ("numpy", "grpcio", "protobuf", "onnxruntime", "onnx", "pillow", "cryptography")
    shown = " ".join(f"{k}={versions[k]}" for k in keys if k in versions)
    print(f"  ok   {target}  {len(versions)} wheels in {time.monotonic() - started:.0f} s: {shown}")
    return [f"{target}: pulls {', '.join(pulled)}"] if pulled else []


def older_python() -> str | None:
    """An interpreter older than the controller's 3.11 on this machine (pyenv's, say), or None."""
    return next(filter(None, map(find_python, ("3.10", "3.9", "3.8"))), None)


def check_controller_guard(wheel: Path, scratch: Path) -> list[str]:
    """``jetfleet[controller]`` on a Python older than 3.11 must stop at once, naming the Python it needs.

    This needs a real older interpreter: pip evaluates environment markers for
    the Python it runs on, whatever ``--python-version`` says.
    """
    python = older_python()
    if python is None:
        print("  skip jetfleet[controller] on an older Python: no python3.8/3.9/3.10 on this machine")
        return []
    venv = scratch / "old-python"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, f"{wheel}[controller]"], capture_output=True, text=True)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    if proc.returncode != 0 and any(CONTROLLER_GUARD in line for line in errors):
        print(f"  ok   jetfleet[controller] on {Path(python).name} is refused at once: {errors[-1][:160]}")
        return []
    return [f"jetfleet[controller] on {python}: expected a refusal naming {CONTROLLER_GUARD}, got\n{proc.stderr}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="a built jetfleet wheel (default: build one from this tree)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jetfleet-wheels-") as tmp:
        scratch = Path(tmp)
        wheel = opts.wheel or build_wheel(scratch / "dist")
        print(f"resolving {wheel.name}[agent] from wheels only, for every supported device:")
        problems = [p for target in MATRIX for p in check_agent(wheel, target, scratch)]
        problems += check_controller_guard(wheel, scratch)
    for problem in problems:
        print(f"  FAIL {problem}", file=sys.stderr)
    print(f"wheel matrix: {len(MATRIX) + 1 - len(problems)} of {len(MATRIX) + 1} checks hold")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
