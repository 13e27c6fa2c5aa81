"""Run the agent as a systemd service: render the unit, install it with its config.

A Jetson in a fleet has no one to restart a crashed agent, so the agent runs
under systemd: started once the network is up, restarted on failure, as a
dedicated unprivileged user, with its files in /var/lib/jetfleet-agent.

The unit is hardened as far as GPU access allows. On a Jetson the GPU is a set
of device nodes (/dev/nvhost-*, /dev/nvmap, /dev/nvgpu/*; /dev/nvidia* on
discrete GPUs) owned by group ``video``, so the service joins ``video`` and
``render`` and deliberately leaves out every setting that hides or allowlists
devices: ``PrivateDevices=``, ``DevicePolicy=``, ``DeviceAllow=`` and
``ProtectClock=`` (which implies ``DeviceAllow=char-rtc``, turning /dev into an
allowlist). ``MemoryDenyWriteExecute=`` is left out too: CUDA and TensorRT
JIT-compile kernels into writable+executable memory.

:func:`install_service` writes the unit and the agent's TOML config and, only
when asked, runs ``systemctl daemon-reload`` and ``systemctl enable --now``.
It never silently replaces a file someone may have edited.

Which Python runs the service, and why ``--venv``: on a Jetson, TensorRT's
Python bindings come from JetPack (``python3-libnvinfer``), built for the one
system Python of that release (3.8 on JetPack 5, 3.10 on 6, 3.12 on 7) and
installed in ``/usr/lib/python3.X/dist-packages``. A venv sees them only when
it is made from that interpreter with ``--system-site-packages``; and
``ProtectHome=yes`` hides a venv under ``/home`` from the service altogether.
So the natural set-up, and what ``install-service --venv /opt/jetfleet`` does,
is a venv outside ``/home`` made from the Python the bindings are built for,
with ``--system-site-packages`` when the bindings exist, and this very jetfleet
installed into it (from the local checkout it was installed from, else the
same version from the package index); the unit then runs that venv's
``jetfleet-agent``. Without ``--venv`` the unit runs the installation it was
started from, refused if it lives under ``/home`` or ``/root``, with a note
when it cannot see JetPack's TensorRT. ONNX Runtime with CUDA is NVIDIA's
Jetson build, not PyPI's: install it into the venv afterwards (README; doctor
says which index fits this JetPack).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent.config import DEFAULT_CONFIG_PATH, SYSTEM_DATA_DIR, AgentConfig, to_toml
from jetfleet.agent.telemetry import (
    CommandRunner,
    PythonEnv,
    TensorRTBindings,
    bindings_blocker,
    find_tensorrt_bindings,
    parse_pyvenv_cfg,
    python_env,
    run_command,
)
from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path

UNIT_NAME = "jetfleet-agent.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "jetfleet"
# GPU device nodes on a Jetson (nvhost, nvmap, nvgpu) belong to `video`; DRM render nodes to `render`.
GPU_GROUPS = ("video", "render")
# ProtectHome=yes makes these inaccessible to the service, so a data dir there could never be written.
_HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))
PIP_FLOOR = "pip>=20.3"  # the first pip that understands manylinux_2_x wheel tags
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def find_agent_exe() -> str:
    """The absolute path of the installed ``jetfleet-agent`` script, for the unit's ``ExecStart=``.

    Preference: the script beside the running interpreter (the virtualenv we
    are installed in, even when it is not activated), then the script being
    run, then ``PATH``. systemd needs an absolute path and does not search.
    """
    beside = Path(sys.executable).parent / "jetfleet-agent"
    candidates = [beside]
    if Path(sys.argv[0]).name == "jetfleet-agent":
        candidates.append(Path(sys.argv[0]))
    on_path = shutil.which("jetfleet-agent")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
    raise JetfleetError(
        "cannot find the jetfleet-agent executable",
        hint="install jetfleet[agent] or pass the script's absolute path with --exe",
    )


def _unit_word(text: str, *, exec_line: bool) -> str:
    """Quote one word the way systemd parses unit values: '%' is a specifier everywhere, '$' in Exec lines."""
    if "\n" in text or "\r" in text:
        raise JetfleetError(f"a path in the service unit cannot contain a line break: {text!r}")
    escaped = text.replace("%", "%%")
    if exec_line:
        escaped = escaped.replace("$", "$$")
    if _PLAIN_WORD.fullmatch(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_under(path: Path, folder: Path) -> bool:
    """``path.is_relative_to(folder)``, which Python 3.8 (JetPack 5) lacks."""
    return path == folder or folder in path.parents


def _hidden_by(path: Path) -> Path | None:
    return next((hidden for hidden in _HIDDEN_BY_PROTECT_HOME if _is_under(path, hidden)), None)


def _check_paths(exe: str, data_dir: Path) -> None:
    if not Path(exe).is_absolute():
        raise JetfleetError(f"the agent executable must be an absolute path for systemd, not {exe!r}")
    if not data_dir.is_absolute():
        raise JetfleetError(f"data_dir must be an absolute path, not {data_dir}")
    hidden = _hidden_by(Path(exe))
    if hidden is not None:
        raise JetfleetError(
            f"the agent executable {exe} is under {hidden}, which the service cannot see (ProtectHome=yes)",
            hint="install into a venv outside /home: add --venv /opt/jetfleet (it is created for you)",
        )
    hidden = _hidden_by(data_dir)
    if hidden is not None:
        raise JetfleetError(
            f"data_dir {data_dir} is under {hidden}, which the service cannot see (ProtectHome=yes)",
            hint=f"set data_dir = {str(SYSTEM_DATA_DIR)!r} in the config (the default when installed as root)",
        )


def render_unit(config_path: Path, exe: str, user: str = DEFAULT_USER, data_dir: Path = SYSTEM_DATA_DIR) -> str:
    """The text of ``jetfleet-agent.service`` running ``<exe> serve --config <config_path>`` as ``user``."""
    _check_paths(exe, data_dir)
    exec_start = " ".join(_unit_word(arg, exec_line=True) for arg in (exe, "serve", "--config", str(config_path)))
    return f"""\
# Written by `jetfleet-agent install`. Re-run it to change this file; put local
# changes in a drop-in (`systemctl edit jetfleet-agent`) so they survive.
[Unit]
Description=jetfleet agent: runs the models the jetfleet controller deploys to this device
# The agent dials the controller at start-up, so wait for a configured network.
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
User={user}
Group={user}
# GPU access: on a Jetson /dev/nvhost-*, /dev/nvmap and /dev/nvgpu/* belong to
# group video; DRM render nodes to group render.
SupplementaryGroups={" ".join(GPU_GROUPS)}
# Creates /var/lib/jetfleet-agent owned by {user}, also under ProtectSystem=strict.
StateDirectory=jetfleet-agent
StateDirectoryMode=0750
UMask=0027
Environment=PYTHONUNBUFFERED=1
# glibc makes up to 8 malloc arenas per core for the agent's dozen threads; two hold its heap with about
# 1 MiB less resident memory on a 4 GiB Nano (benchmarks/agent_footprint.py --agent-env MALLOC_ARENA_MAX=2).
Environment=MALLOC_ARENA_MAX=2
# gRPC streams, artifact and engine files: more than the default 1024 descriptors.
LimitNOFILE=65536

# Hardening that still lets the agent use the GPU.
NoNewPrivileges=yes
ProtectSystem=strict
# StateDirectory= is writable already; this covers a data_dir set elsewhere.
ReadWritePaths={_unit_word(str(data_dir), exec_line=False)}
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes
# Deliberately NOT set: PrivateDevices=yes (it gives the service a /dev without
# /dev/nvhost-*, /dev/nvmap and /dev/nvidia*, so CUDA and TensorRT find no GPU);
# nor DevicePolicy=, DeviceAllow= or ProtectClock=yes (the last implies a device
# allowlist); nor MemoryDenyWriteExecute=yes (CUDA JIT needs W+X memory).

[Install]
WantedBy=multi-user.target
"""


def install_service(
    config: AgentConfig,
    unit_dir: Path = DEFAULT_UNIT_DIR,
    config_path: Path = DEFAULT_CONFIG_PATH,
    exe: str | None = None,
    user: str = DEFAULT_USER,
    enable: bool = False,
    force: bool = False,
    venv: VenvPlan | None = None,
) -> list[Path]:
    """Write the unit file and the config file; with ``enable``, start the service now and at boot.

    Both files are checked before either is written, so a refusal leaves
    nothing half-installed. An existing file with the same content is fine
    (re-running install is harmless); a different one is replaced only with
    ``force``. The config file is mode 0640, group ``user`` where that group
    exists and we may change it, because it is the service's and may hold
    addresses an operator considers private. A ``data_dir`` other than
    /var/lib/jetfleet-agent is created if missing. With ``venv`` (see
    :func:`plan_venv`) the unit runs that venv's ``jetfleet-agent``, and the venv
    is made only after every file check passed. Returns the files written.
    """
    if venv is not None:
        if exe:
            raise JetfleetError("--exe and --venv exclude each other", hint="--venv runs <venv>/bin/jetfleet-agent")
        exe = venv.exe
    exe = exe or find_agent_exe()
    unit_path = Path(unit_dir) / UNIT_NAME
    config_path = Path(config_path)
    planned = [
        (unit_path, render_unit(config_path, exe, user=user, data_dir=config.data_dir), 0o644, None),
        (config_path, to_toml(config), 0o640, _group_id(user)),
    ]
    if enable:
        check_accounts(user)
    for path, text, _, _ in planned:
        _refuse_overwrite(path, text, force)
    if venv is not None:
        create_venv(venv)
    for path, text, mode, gid in planned:
        _write(path, text, mode, gid)
    _ensure_data_dir(config.data_dir, user)
    if enable:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT_NAME)
    return [path for path, _, _, _ in planned]


def _ensure_data_dir(data_dir: Path, user: str) -> None:
    """Create a data dir other than the StateDirectory one: ReadWritePaths= of a missing path stops the unit.

    systemd creates /var/lib/jetfleet-agent itself (StateDirectory=); any
    other data_dir must exist, owned by the service user, before it starts.
    """
    if data_dir == SYSTEM_DATA_DIR or data_dir.exists():
        return
    data_dir.mkdir(mode=0o750, parents=True)
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            return
        os.chown(data_dir, account.pw_uid, account.pw_gid)


def _refuse_overwrite(path: Path, text: str, force: bool) -> None:
    if force or not path.exists():
        return
    try:
        same = path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        raise JetfleetError(
            f"{path} already exists with different content; not overwriting it",
            hint="compare it with what install would write, then re-run with --force to replace it",
        )


def _group_id(group: str) -> int | None:
    """The group's id when it exists and we may hand files to it (root); otherwise None."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _write(path: Path, text: str, mode: int, gid: int | None) -> None:
    """Write atomically, with mode and group set before the rename so the file is never briefly wider open."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, mode)
            if gid is not None:
                os.chown(tmp, -1, gid)
    except PermissionError as exc:
        raise JetfleetError(f"cannot write {path}: permission denied", hint="run install as root (sudo)") from exc


def check_accounts(user: str) -> None:
    """Fail early, with the fix, when the service's user or GPU groups are missing.

    Otherwise systemd starts the unit and it dies with a bare ``status=217/USER``
    or ``216/GROUP`` in the journal.
    """
    try:
        pwd.getpwnam(user)
        grp.getgrnam(user)
    except KeyError:
        raise JetfleetError(
            f"user or group {user!r} does not exist",
            hint=(
                f"create it: useradd --system --user-group --groups {','.join(GPU_GROUPS)} "
                f"--home-dir {SYSTEM_DATA_DIR} --shell /usr/sbin/nologin {user}"
            ),
        ) from None
    for group in GPU_GROUPS:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise JetfleetError(
                f"group {group!r} does not exist; the service joins it for GPU access",
                hint=f"create it with: groupadd --system {group}",
            ) from None


def _systemctl(*args: str) -> None:
    try:
        result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise JetfleetError("systemctl not found: this machine does not run systemd") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise JetfleetError(f"systemctl {' '.join(args)} failed: {detail}")


# --------------------------------------------------------------------------- the service's virtualenv


@dataclass(frozen=True)
class VenvPlan:
    """How ``install-service --venv`` makes the service's venv, and why (printed before it runs)."""

    target: Path
    python: str  # the interpreter the venv is made from
    system_site_packages: bool  # True when JetPack's tensorrt exists for that Python
    requirement: str  # what pip installs: this checkout with [agent], or jetfleet[agent]==<this version>
    reuse: bool  # a healthy venv is already there: nothing to run
    reason: str

    @property
    def exe(self) -> str:
        return str(self.target / "bin" / "jetfleet-agent")

    def commands(self) -> list[list[str]]:
        """The commands :func:`create_venv` runs, in order (none when the venv is reused)."""
        if self.reuse:
            return []
        make = [self.python, "-m", "venv"]
        if self.system_site_packages:
            make.append("--system-site-packages")
        if self.target.exists():
            make.append("--clear")  # only reached with force: plan_venv refuses otherwise
        make.append(str(self.target))
        pip = [str(self.target / "bin" / "python"), "-m", "pip"]
        # JetPack 5's venv brings Ubuntu 20.04's pip 20.0, which predates manylinux_2_x tags (pip 20.3)
        # and so cannot see onnxruntime's aarch64 wheels: upgrade pip before anything else.
        return [make, [*pip, "install", "--upgrade", PIP_FLOOR], [*pip, "install", self.requirement]]


def running_requirement() -> str:
    """What pip should install to reproduce this jetfleet in another venv (PEP 610's direct_url.json).

    An editable or local-folder install (a checkout on the device) installs
    that folder again; an index install pins the running version.
    """
    import json
    from importlib import metadata

    try:
        dist = metadata.distribution("jetfleet")
    except metadata.PackageNotFoundError:
        return "jetfleet[agent]"
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if url.startswith("file://"):
        return f"{url[len('file://') :]}[agent]"
    return f"jetfleet[agent]=={dist.version}"


def plan_venv(
    target: Path,
    root: Path = Path("/"),
    running: PythonEnv | None = None,
    bindings: Sequence[TensorRTBindings] | None = None,
    requirement: str | None = None,
    force: bool = False,
) -> VenvPlan:
    """Decide how to make the service's venv at ``target`` (module docstring: why these choices).

    The interpreter is the system Python JetPack's tensorrt is built for when
    the bindings exist (``/usr/bin/python3.X``), else the one running now. An
    existing venv is reused when it already has jetfleet-agent and sees the
    system's packages as planned; anything else there is refused unless ``force``.
    """
    target = Path(target).absolute()
    hidden = _hidden_by(target)
    if hidden is not None:
        raise JetfleetError(
            f"--venv {target} is under {hidden}, which the service cannot see (ProtectHome=yes)",
            hint="use a folder such as /opt/jetfleet",
        )
    running = running or python_env()
    bindings = find_tensorrt_bindings(root) if bindings is None else bindings
    versions = [b.python for b in bindings if b.python]
    if versions:
        python = f"/usr/bin/python{versions[0]}"
        if not (root / python.lstrip("/")).exists():
            raise JetfleetError(
                f"JetPack's tensorrt ({bindings[0].path}) is built for Python {versions[0]}, but {python} is missing",
                hint=f"sudo apt install python{versions[0]} python{versions[0]}-venv",
            )
        reason = f"{python} with --system-site-packages: JetPack's tensorrt in {bindings[0].path} is built for it"
    elif bindings:  # bindings of unknown version (/usr/lib/python3/dist-packages): the system python3
        python = "/usr/bin/python3"
        reason = f"{python} with --system-site-packages, to see JetPack's tensorrt in {bindings[0].path}"
    else:
        python = running.executable
        reason = f"{python} (the interpreter running now): no JetPack TensorRT bindings on this system"
    plan = VenvPlan(target, python, bool(bindings), requirement or running_requirement(), False, reason)
    return _reuse_or_refuse(plan, force)


def _reuse_or_refuse(plan: VenvPlan, force: bool) -> VenvPlan:
    """An empty or absent target is made; a healthy venv is reused; force recreates a venv; the rest is refused."""
    target = plan.target
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return plan
    cfg_path = target / "pyvenv.cfg"
    if not cfg_path.is_file():
        raise JetfleetError(f"--venv {target} already exists and is not a venv", hint="choose another folder")
    cfg = parse_pyvenv_cfg(cfg_path.read_text(encoding="utf-8"))
    sees_system = cfg.get("include-system-site-packages", "false").lower() == "true"
    if sees_system != plan.system_site_packages:
        problem = "sees the system's packages" if sees_system else "does not see the system's packages"
    elif not Path(plan.exe).is_file():
        problem = "has no jetfleet-agent"
    else:
        problem = ""
    if force:
        return plan
    if not problem:
        return VenvPlan(target, plan.python, plan.system_site_packages, plan.requirement, True, "already set up")
    raise JetfleetError(
        f"--venv {target} already exists and {problem}",
        hint="re-run with --force to recreate it, or choose another folder",
    )


def create_venv(plan: VenvPlan) -> None:
    """Run the plan's commands with their output shown (pip takes minutes on a Nano); stop at the first failure."""
    for cmd in plan.commands():
        try:
            code = subprocess.run(cmd, check=False).returncode
        except OSError as exc:
            raise JetfleetError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
        if code != 0:
            raise JetfleetError(
                f"`{' '.join(cmd)}` failed with exit status {code} (its output is above)",
                hint="fix the cause and re-run; no unit or config file was written",
            )


def installation_note(backends: Sequence[str], root: Path = Path("/"), running: PythonEnv | None = None) -> str | None:
    """A warning for ``install-service`` without ``--venv``: this installation cannot import JetPack's TensorRT."""
    if "tensorrt" not in backends:
        return None
    bindings = find_tensorrt_bindings(root)
    blocker = bindings_blocker(running or python_env(), bindings)
    if blocker is None:
        return None
    return f"note: {blocker}; the service would run ONNX Runtime. Add --venv /opt/jetfleet to make a venv that sees it."


# --------------------------------------------------------------------------- the unit's state, for doctor

UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "Result", "ExecMainStatus")


def parse_unit_state(text: str) -> dict[str, str]:
    """``systemctl show -p ...`` (``Key=value`` lines) as a dict."""
    state = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            state[key.strip()] = value.strip()
    return state


def unit_state(run: CommandRunner = run_command) -> dict[str, str] | None:
    """The service unit's state; None when systemd is not running here (a container) or systemctl is absent."""
    args = ["systemctl", "show", UNIT_NAME, "--no-pager"] + [f"--property={p}" for p in UNIT_PROPERTIES]
    text = run(args)
    state = parse_unit_state(text) if text else {}
    return state or None
