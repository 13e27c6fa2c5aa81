"""Shared fixtures: run jetfleet as a user would (a subprocess), and tiny datasets."""

from __future__ import annotations

import os
import subprocess
import sys
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


# Agents on loopback and a digits model to deploy to them (tests/agents.py), for the agent and fleet suites.
from agents import digits_model, fleet_pki, start_agent  # noqa: E402, F401
