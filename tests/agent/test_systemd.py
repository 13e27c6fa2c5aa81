from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from jetfleet.agent import systemd
from jetfleet.agent.config import AgentConfig, load_config
from jetfleet.agent.systemd import UNIT_NAME, find_agent_exe, install_service, render_unit
from jetfleet.common.errors import JetfleetError

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
}


@pytest.fixture
def agent_exe(tmp_path: Path) -> str:
    """A real executable for ExecStart=: systemd-analyze verify checks that it exists and is executable."""
    exe = tmp_path / "bin dir" / "jetfleet-agent"  # a space, to exercise ExecStart= quoting
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return str(exe)


def directives(unit: str) -> dict[str, list[str]]:
    """Key → values of the unit's non-comment lines."""
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def install(tmp_path: Path, exe: str, config: AgentConfig | None = None, **kw: object) -> list[Path]:
    return install_service(
        config or AgentConfig(data_dir=Path("/var/lib/jetfleet-agent")),
        unit_dir=tmp_path / "units",
        config_path=tmp_path / "etc" / "agent.toml",
        exe=exe,
        user="jetfleet",
        **kw,  # type: ignore[arg-type]
    )


def test_unit_has_service_basics_and_hardening(agent_exe: str) -> None:
    unit = render_unit(Path("/etc/jetfleet/agent.toml"), agent_exe, user="edge")
    d = directives(unit)
    assert d["ExecStart"] == [f'"{agent_exe}" serve --config /etc/jetfleet/agent.toml']
    assert d["After"] == ["network-online.target"] and d["Wants"] == ["network-online.target"]
    assert d["Type"] == ["simple"] and d["Restart"] == ["on-failure"] and d["RestartSec"] == ["5"]
    assert d["User"] == ["edge"] and d["Group"] == ["edge"]
    assert d["SupplementaryGroups"] == ["video render"]
    assert d["StateDirectory"] == ["jetfleet-agent"]
    assert d["ReadWritePaths"] == ["/var/lib/jetfleet-agent"]
    assert d["Environment"] == ["PYTHONUNBUFFERED=1"] and d["LimitNOFILE"]
    assert d["WantedBy"] == ["multi-user.target"]
    for key, value in HARDENING.items():
        assert d[key] == [value], key


def test_unit_keeps_gpu_devices_visible_and_says_why(agent_exe: str) -> None:
    unit = render_unit(Path("/etc/jetfleet/agent.toml"), agent_exe)
    d = directives(unit)
    for hiding in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "MemoryDenyWriteExecute"):
        assert hiding not in d
    comment = next(line for line in unit.splitlines() if "PrivateDevices" in line)
    assert comment.startswith("#") and "NOT" in comment
    assert "/dev/nvhost-*" in unit and "/dev/nvidia*" in unit


def test_unit_escapes_specifiers_and_quotes_spaces(agent_exe: str) -> None:
    unit = render_unit(Path("/etc/jet fleet/50%$.toml"), agent_exe, data_dir=Path("/srv/jet fleet"))
    d = directives(unit)
    assert d["ExecStart"] == [f'"{agent_exe}" serve --config "/etc/jet fleet/50%%$$.toml"']
    assert d["ReadWritePaths"] == ['"/srv/jet fleet"']


def test_unit_rejects_paths_systemd_cannot_use(agent_exe: str) -> None:
    with pytest.raises(JetfleetError, match="absolute path"):
        render_unit(Path("/etc/a.toml"), "jetfleet-agent")
    with pytest.raises(JetfleetError, match=r"under /home.*ProtectHome"):
        render_unit(Path("/etc/a.toml"), agent_exe, data_dir=Path("/home/me/.local/share/jetfleet-agent"))
    with pytest.raises(JetfleetError, match="line break"):
        render_unit(Path("/etc/a\n.toml"), agent_exe)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, agent_exe: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd); cannot verify the unit")
    install(tmp_path, agent_exe, AgentConfig(data_dir=tmp_path / "data dir"))
    unit_file = tmp_path / "units" / UNIT_NAME
    result = subprocess.run([analyze, "verify", str(unit_file)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    # verify exits 0 even for unknown keys, and only prints them: require silence about our unit too.
    ours = [line for line in output.splitlines() if UNIT_NAME in line or str(unit_file) in line]
    assert result.returncode == 0, output
    assert ours == [], output


def test_systemd_analyze_verify_catches_what_we_rely_on_it_for(tmp_path: Path, agent_exe: str) -> None:
    """Guard the test above: verify must complain about a bad ExecStart= and an unknown key here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd); cannot verify the unit")
    unit = render_unit(Path("/etc/a.toml"), agent_exe).replace("Type=simple", "Type=simple\nBogusKey=1")
    unit_file = tmp_path / UNIT_NAME
    unit_file.write_text(unit.replace(f'"{agent_exe}"', agent_exe))  # unquoted: the path splits at the space
    result = subprocess.run([analyze, "verify", str(unit_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "BogusKey" in result.stderr and "not executable" in result.stderr


def test_install_writes_unit_and_config(tmp_path: Path, agent_exe: str) -> None:
    config = AgentConfig(name="orin-1", controller="ws:50050", tags={"site": "lab"}, data_dir=tmp_path / "data")
    written = install(tmp_path, agent_exe, config)
    unit_file, config_file = tmp_path / "units" / UNIT_NAME, tmp_path / "etc" / "agent.toml"
    assert written == [unit_file, config_file]
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640
    assert stat.S_IMODE(unit_file.stat().st_mode) == 0o644
    assert load_config(config_file, {}) == config
    assert f"--config {config_file}" in unit_file.read_text()
    assert (tmp_path / "data").is_dir()  # ReadWritePaths= of a missing directory would stop the unit
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["agent.toml"]  # no temporary files left


def test_install_is_idempotent_but_refuses_to_overwrite_a_different_file(tmp_path: Path, agent_exe: str) -> None:
    install(tmp_path, agent_exe)
    install(tmp_path, agent_exe)  # same content: fine
    config_file = tmp_path / "etc" / "agent.toml"
    config_file.write_text(config_file.read_text() + "# edited by hand\n")
    unit_before = (tmp_path / "units" / UNIT_NAME).read_text()
    with pytest.raises(JetfleetError, match=f"{config_file} already exists with different content") as excinfo:
        install(tmp_path, agent_exe, AgentConfig(data_dir=Path("/var/lib/jetfleet-agent"), log_level="debug"))
    assert "--force" in str(excinfo.value)
    assert config_file.read_text().endswith("# edited by hand\n")
    assert (tmp_path / "units" / UNIT_NAME).read_text() == unit_before


def test_refusal_writes_nothing(tmp_path: Path, agent_exe: str) -> None:
    """The unit is checked before the config is written, so a refusal never leaves half an install."""
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / UNIT_NAME).write_text("[Service]\nExecStart=/bin/true\n")
    with pytest.raises(JetfleetError, match=UNIT_NAME):
        install(tmp_path, agent_exe)
    assert not (tmp_path / "etc" / "agent.toml").exists()


def test_force_overwrites(tmp_path: Path, agent_exe: str) -> None:
    install(tmp_path, agent_exe)
    config = AgentConfig(data_dir=Path("/var/lib/jetfleet-agent"), log_level="debug")
    install(tmp_path, agent_exe, config, force=True)
    assert load_config(tmp_path / "etc" / "agent.toml", {}).log_level == "debug"


def test_enable_runs_systemctl_only_when_asked(tmp_path: Path, agent_exe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(systemd, "_systemctl", lambda *args: calls.append(args))
    monkeypatch.setattr(systemd, "check_accounts", lambda user: None)
    install(tmp_path, agent_exe)
    assert calls == []
    install(tmp_path, agent_exe, enable=True)
    assert calls == [("daemon-reload",), ("enable", "--now", UNIT_NAME)]


def test_enable_checks_the_service_account_first(
    tmp_path: Path, agent_exe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd, "_systemctl", lambda *args: pytest.fail("systemctl must not run"))
    with pytest.raises(JetfleetError, match="no-such-user-xyz") as excinfo:
        install_service(
            AgentConfig(data_dir=Path("/var/lib/jetfleet-agent")),
            unit_dir=tmp_path / "units",
            config_path=tmp_path / "agent.toml",
            exe=agent_exe,
            user="no-such-user-xyz",
            enable=True,
        )
    assert "useradd" in str(excinfo.value)
    assert not (tmp_path / "units").exists()


def test_find_agent_exe_prefers_the_script_beside_the_interpreter(
    tmp_path: Path, agent_exe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd.sys, "executable", str(Path(agent_exe).parent / "python"))
    assert find_agent_exe() == agent_exe
    monkeypatch.setattr(systemd.sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setattr(systemd.sys, "argv", [agent_exe])
    assert find_agent_exe() == agent_exe
    monkeypatch.setattr(systemd.sys, "argv", ["pytest"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(JetfleetError, match="cannot find the jetfleet-agent executable"):
        find_agent_exe()
