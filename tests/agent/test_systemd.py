from __future__ import annotations

import shutil
import stat
import subprocess
from importlib.metadata import version
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
    assert d["Environment"] == ["PYTHONUNBUFFERED=1", "MALLOC_ARENA_MAX=2"] and d["LimitNOFILE"]
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


# --------------------------------------------------------------------------- the service's venv


def jetpack_root(tmp_path: Path, python: str, interpreter: bool = True) -> Path:
    """A system root with JetPack's tensorrt for ``python`` (and that interpreter), as python3-libnvinfer lays it out."""
    root = tmp_path / "root"
    (root / f"usr/lib/python{python}/dist-packages/tensorrt").mkdir(parents=True)
    if interpreter:
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / f"usr/bin/python{python}").write_text("")
    return root


def test_venv_plan_uses_jetpacks_python_with_system_site_packages(tmp_path: Path) -> None:
    plan = systemd.plan_venv(
        tmp_path / "opt" / "jetfleet", root=jetpack_root(tmp_path, "3.10"), requirement="jetfleet[agent]==0.1.0"
    )
    target = str(tmp_path / "opt" / "jetfleet")
    assert (plan.python, plan.system_site_packages, plan.reuse) == ("/usr/bin/python3.10", True, False)
    assert plan.commands() == [
        ["/usr/bin/python3.10", "-m", "venv", "--system-site-packages", target],
        [f"{target}/bin/python", "-m", "pip", "install", "--upgrade", "pip>=20.3"],
        [f"{target}/bin/python", "-m", "pip", "install", "jetfleet[agent]==0.1.0"],
    ]
    assert plan.exe == f"{target}/bin/jetfleet-agent" and "/usr/lib/python3.10/dist-packages/tensorrt" in plan.reason


def test_venv_plan_without_jetpack_uses_the_running_python(tmp_path: Path) -> None:
    import sys

    plan = systemd.plan_venv(tmp_path / "venv", root=tmp_path / "empty-root", requirement="x")
    assert (plan.python, plan.system_site_packages) == (sys.executable, False)
    assert "--system-site-packages" not in plan.commands()[0]


def test_venv_plan_names_a_missing_system_python(tmp_path: Path) -> None:
    with pytest.raises(JetfleetError, match=r"built for Python 3\.12, but /usr/bin/python3\.12 is missing") as excinfo:
        systemd.plan_venv(tmp_path / "venv", root=jetpack_root(tmp_path, "3.12", interpreter=False), requirement="x")
    assert "sudo apt install python3.12 python3.12-venv" in str(excinfo.value)


def test_venv_plan_refuses_home_and_what_is_not_a_venv(tmp_path: Path) -> None:
    with pytest.raises(JetfleetError, match="ProtectHome"):
        systemd.plan_venv(Path("/home/nvidia/jetfleet"), root=tmp_path, requirement="x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(JetfleetError, match="not a venv"):
        systemd.plan_venv(tmp_path / "busy", root=tmp_path, requirement="x", force=True)


def test_an_existing_venv_is_reused_only_when_it_fits(tmp_path: Path) -> None:
    root = jetpack_root(tmp_path, "3.10")
    target = tmp_path / "opt" / "jetfleet"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "jetfleet-agent").write_text("")
    (target / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    with pytest.raises(JetfleetError, match="does not see the system's packages") as excinfo:
        systemd.plan_venv(target, root=root, requirement="x")
    assert "--force" in str(excinfo.value)
    forced = systemd.plan_venv(target, root=root, requirement="x", force=True)
    assert "--clear" in forced.commands()[0] and "--system-site-packages" in forced.commands()[0]
    (target / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\n")
    reused = systemd.plan_venv(target, root=root, requirement="x")
    assert reused.reuse and reused.commands() == []


def test_python_env_reads_what_venv_writes(tmp_path: Path) -> None:
    """The --system-site-packages verdict comes from the pyvenv.cfg that the venv module itself wrote."""
    import sys

    from jetfleet.agent.telemetry import TensorRTBindings, bindings_blocker, python_env

    for name, flags in (("shared", ["--system-site-packages"]), ("isolated", [])):
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", *flags, str(tmp_path / name)])
        assert made.returncode == 0
    shared = python_env(prefix=str(tmp_path / "shared"), base_prefix=sys.base_prefix)
    isolated = python_env(prefix=str(tmp_path / "isolated"), base_prefix=sys.base_prefix)
    assert (shared.system_site_packages, isolated.system_site_packages) == (True, False)
    jetpack = [TensorRTBindings("/usr/lib/python3.10/dist-packages/tensorrt", shared.minor)]
    assert bindings_blocker(shared, jetpack) is None
    assert "created without --system-site-packages" in (bindings_blocker(isolated, jetpack) or "")


def test_running_requirement_reinstalls_this_checkout() -> None:
    requirement = systemd.running_requirement()
    if requirement.startswith("jetfleet"):  # found through metadata without a direct URL: the index, pinned
        assert requirement == f"jetfleet[agent]=={version('jetfleet')}"
    else:  # installed from a checkout or a wheel file: that, with the extra
        assert requirement.endswith("[agent]")
        source = Path(requirement[: -len("[agent]")])
        assert (source / "pyproject.toml").is_file() if source.is_dir() else source.suffix == ".whl"


def test_install_without_venv_warns_when_jetpacks_tensorrt_is_out_of_reach(tmp_path: Path) -> None:
    from jetfleet.agent.telemetry import python_env

    root = jetpack_root(tmp_path, "3.10")
    other = python_env(version="3.11.7")
    note = systemd.installation_note(("tensorrt", "onnxruntime"), root=root, running=other)
    assert note is not None and "built for Python 3.10" in note and "--venv /opt/jetfleet" in note
    assert systemd.installation_note(("onnxruntime",), root=root, running=other) is None
    assert systemd.installation_note(("tensorrt",), root=tmp_path / "empty-root", running=other) is None


def test_unit_refuses_an_executable_the_service_cannot_see(tmp_path: Path) -> None:
    with pytest.raises(JetfleetError, match="ProtectHome") as excinfo:
        render_unit(tmp_path / "agent.toml", "/home/nvidia/.venv/bin/jetfleet-agent")
    assert "--venv /opt/jetfleet" in str(excinfo.value)


def test_install_with_a_venv_plan_runs_its_agent(tmp_path: Path) -> None:
    target = tmp_path / "opt" / "jetfleet"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "jetfleet-agent").write_text("")
    (target / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    plan = systemd.plan_venv(target, root=tmp_path / "empty-root", requirement="x")
    install(tmp_path, exe=None, venv=plan)  # type: ignore[arg-type]
    unit = (tmp_path / "units" / UNIT_NAME).read_text()
    assert f"ExecStart={target}/bin/jetfleet-agent serve" in unit
    with pytest.raises(JetfleetError, match="exclude each other"):
        install(tmp_path, "/usr/bin/jetfleet-agent", venv=plan, force=True)


def test_a_failed_venv_install_writes_no_unit(tmp_path: Path) -> None:
    """The plan runs for real: venv made, pip asked for something that is not there, nothing installed."""
    plan = systemd.plan_venv(tmp_path / "venv", root=tmp_path / "empty-root", requirement=str(tmp_path / "nowhere"))
    with pytest.raises(JetfleetError, match=r"pip install .*nowhere` failed with exit status") as excinfo:
        install(tmp_path, exe=None, venv=plan)  # type: ignore[arg-type]
    assert "no unit or config file was written" in str(excinfo.value)
    assert (tmp_path / "venv" / "pyvenv.cfg").is_file() and not (tmp_path / "units" / UNIT_NAME).exists()
