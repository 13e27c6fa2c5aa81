from __future__ import annotations

from importlib.metadata import version


def test_agent_entry_point_prints_its_version(cli) -> None:
    result = cli(entry="jetfleet-agent")
    assert result.returncode == 0 and result.stdout.strip() == f"jetfleet-agent {version('jetfleet')}"
    assert cli("--version", entry="jetfleet-agent").returncode == 0


def test_agent_does_not_pull_in_torch() -> None:
    import subprocess
    import sys

    code = "import sys, jetfleet.agent.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
