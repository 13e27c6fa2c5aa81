"""Shared fixtures: run jetfleet as a user would (a subprocess), and tiny datasets.

The device-side tests (tests/agent, tests/common, tests/proto) also run where
only ``jetfleet[agent]`` is installed, on an older Python than the
controller's (scripts/test-old-python.sh runs them on 3.8, JetPack 5's). There
the tests that need the controller, to train a model or to act as its client,
are left out, by what they import and which fixtures they take, and counted.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # tests/fixtures.py


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    entry: str = "jetfleet",
    timeout: int = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run an installed entry point in a subprocess and capture its output."""
    exe = Path(sys.executable).parent / entry
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture(autouse=True)
def _private_jetfleet_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every process it starts) gets its own registry, never the user's."""
    home = tmp_path_factory.mktemp("jetfleet-home")
    monkeypatch.setenv("JETFLEET_HOME", str(home))
    monkeypatch.delenv("JETFLEET_DB", raising=False)
    return home


@pytest.fixture
def cli(tmp_path: Path):
    """``cli("train", ...)`` runs ``jetfleet`` inside ``tmp_path``."""

    def _run(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, **kw)  # type: ignore[arg-type]

    return _run


# Only the controller's environment has torch; without it this is a device-only run.
DEVICE_ONLY = importlib.util.find_spec("torch") is None
CONTROLLER_MODULES = ("jetfleet.controller", "torch", "torchvision", "sklearn", "agents", "faults")
CONTROLLER_FIXTURES = {"digits_model", "fleet_pki", "start_agent"}  # tests/agents.py: the controller's PKI and client

if not DEVICE_ONLY:
    # Agents on loopback and a digits model to deploy to them (tests/agents.py), for the agent and fleet suites.
    from agents import digits_model, fleet_pki, start_agent  # noqa: F401


@lru_cache(maxsize=None)
def imports_controller(path: Path) -> bool:
    """True when the test module imports the controller's side anywhere (at the top or inside a test)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n == m or n.startswith(m + ".") for n in names for m in CONTROLLER_MODULES):
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In a device-only run, test modules that import the controller are not collected."""
    if DEVICE_ONLY and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return imports_controller(collection_path) or None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a device-only run, tests marked ``controller`` or taking its fixtures are skipped with the reason."""
    if not DEVICE_ONLY:
        return
    skip = pytest.mark.skip(reason="needs the controller (a device-only run: jetfleet[agent] without torch)")
    for item in items:
        if item.get_closest_marker("controller") or CONTROLLER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)
