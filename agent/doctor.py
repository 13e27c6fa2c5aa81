"""``jetfleet-agent doctor``: is this device ready to enroll and serve, and if not, what to do about it.

One command a person runs on a fresh device before enrolling it, and again
when something is wrong. Each check is a small pure function from facts to a
:class:`Check` (ok / warn / fail / skip, a one-line detail, and the fix), so
tests feed them recorded inputs from real boards
(``tests/agent/data/jetson/``); :func:`run_doctor` is the thin layer that
gathers the facts on this machine, through the parsers that already exist
(``telemetry`` for the device, ``identity`` for the certificate and the
controller's clock, ``engines`` for the backends, ``systemd`` for the unit).

Rules worth knowing:

* **warn** is "works, but you will be surprised" (clocks not locked, not
  enrolled yet, a certificate that expires within 30 days); **fail** is
  "will not work" (TensorRT asked for and unusable, an expired certificate, a
  clock off far enough that manifests are refused, a controller that does not
  answer). The exit status is 1 when any check fails.
* The TensorRT a Jetson must have is fixed by its L4T release (table below);
  a different one imported from a venv is a PyPI wheel that does not match
  JetPack's libnvinfer, and fails.
* Before enrollment, controller-facing checks are warnings that say to enroll,
  never failures; with no controller configured they are skipped.
* Clock skew is asked from the controller's unauthenticated
  ``EnrollmentService.Clock`` (needs only the fleet ``ca.pem``): skew is the
  controller's time minus the midpoint of our send and receive times.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jetfleet.agent.config import AgentConfig, format_size, split_address
from jetfleet.agent.telemetry import ClockState, PythonEnv, TensorRTBindings, bindings_blocker, bindings_fix
from jetfleet.common.device import DeviceInfo
from jetfleet.common.errors import JetfleetError

if TYPE_CHECKING:  # grpc-backed modules load lazily: doctor must run, and say so, where grpc does not import
    from jetfleet.agent.engines.choose import ModuleReport
    from jetfleet.agent.identity import ClockReading

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STATUSES = (OK, WARN, FAIL, SKIP)

NEAR_EXPIRY_S = 30 * 86400.0  # a month: enough notice to re-enroll a device that sits in a field
SKEW_WARN_S = 5.0  # NTP keeps a networked device within milliseconds; seconds mean it is not running
SKEW_FAIL_FRACTION = 0.5  # failing at half the tolerance leaves room for a drifting clock until someone looks
PROBE_TIMEOUT_S = 5.0  # a controller that needs longer to answer a health check is not "answering"
DEFAULT_ENROLL_PORT = 50049  # `jetfleet controller serve --enroll-listen`'s default port (controller/fleet/cli.py)
# The agent's runtime dependencies, by import name: a Python or platform without their wheels fails here.
REQUIRED_MODULES = ("grpc", "grpc_health.v1", "google.protobuf", "numpy", "PIL", "psutil", "cryptography")
SUPPORTED_MACHINES = ("aarch64", "arm64", "x86_64", "amd64")


def _manifest_windows() -> tuple[float, float]:
    """(lifetime, allowed not-yet-valid skew) of a manifest: ``common.manifest``'s defaults, read, not copied."""
    from jetfleet.common import manifest

    return float(manifest.issue.__kwdefaults__["ttl_s"]), float(manifest.verify.__kwdefaults__["skew_s"])


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is ok, warn, fail or skip; ``fix`` says what to run (empty if ok)."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# --------------------------------------------------------------------------- what each JetPack ships


@dataclass(frozen=True)
class Release:
    """What one L4T release line ships: its JetPack major, its TensorRT, its system Python.

    The exact JetPack of each L4T release is ``telemetry.jetpack_for_l4t``'s
    table; this one only needs the line (``R36.4``) and says what it ships.
    """

    l4t: str  # "R36.4": matches R36.4.0, R36.4.3, R36.4.4
    jetpack: int  # the major: 5, 6, 7
    tensorrt: str  # major.minor of python3-libnvinfer
    python: str  # the system Python the bindings are built for


# From NVIDIA's JetPack release notes and the TensorRT support matrix, as far as they could be checked
# when this was written; the JetPack 7 rows (Thor, CUDA 13) are best knowledge, not a checked table.
# An L4T line not listed here is reported as unknown, never guessed.
RELEASES: tuple[Release, ...] = (
    Release("R32.4", 4, "7.1", "3.6"),  # JetPack 4.4
    Release("R32.5", 4, "7.1", "3.6"),  # JetPack 4.5
    Release("R32.6", 4, "8.0", "3.6"),  # JetPack 4.6
    Release("R32.7", 4, "8.2", "3.6"),  # JetPack 4.6.x
    Release("R34.1", 5, "8.4", "3.8"),  # JetPack 5.0 DP
    Release("R35.1", 5, "8.4", "3.8"),  # JetPack 5.0.2
    Release("R35.2", 5, "8.5", "3.8"),  # JetPack 5.1
    Release("R35.3", 5, "8.5", "3.8"),  # JetPack 5.1.1
    Release("R35.4", 5, "8.5", "3.8"),  # JetPack 5.1.2
    Release("R35.5", 5, "8.5", "3.8"),  # JetPack 5.1.3
    Release("R35.6", 5, "8.5", "3.8"),  # JetPack 5.1.4/5.1.5
    Release("R36.2", 6, "8.6", "3.10"),  # JetPack 6.0 DP
    Release("R36.3", 6, "8.6", "3.10"),  # JetPack 6.0
    Release("R36.4", 6, "10.3", "3.10"),  # JetPack 6.1/6.2
    Release("R36.5", 6, "10.3", "3.10"),  # JetPack 6.2.2
    Release("R38.2", 7, "10.13", "3.12"),  # JetPack 7.0
    Release("R38.4", 7, "10.13", "3.12"),  # JetPack 7.1
)


def release_for(l4t_release: str | None) -> Release | None:
    """The table row for ``R36.4.4`` (its ``R36.4`` line), None when the release is unknown or absent."""
    if not l4t_release:
        return None
    line = ".".join(l4t_release.split(".")[:2])
    return next((r for r in RELEASES if r.l4t == line), None)


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def ort_gpu_hint(release: Release | None) -> str:
    """Where ONNX Runtime with CUDA comes from on this JetPack: NVIDIA's Jetson builds, never PyPI.

    The index paths are NVIDIA Jetson AI Lab's (JetPack 6: jp6/cu126; Thor on
    JetPack 7: sbsa/cu130, best knowledge); JetPack 5's wheels are listed on the
    Jetson Zoo page. Uninstall PyPI's ``onnxruntime`` first: both provide the
    same module.
    """
    swap = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
    if release is None:
        return f"{swap} from NVIDIA's Jetson wheel index for your JetPack (https://pypi.jetson-ai-lab.io)"
    if release.jetpack == 5:
        return f"{swap}: the JetPack 5 (Python 3.8) wheel from https://elinux.org/Jetson_Zoo#ONNX_Runtime"
    if release.jetpack == 6:
        return f"{swap} --index-url https://pypi.jetson-ai-lab.io/jp6/cu126"
    if release.jetpack == 7:
        return f"{swap} --index-url https://pypi.jetson-ai-lab.io/sbsa/cu130"
    return "JetPack 4 has no ONNX Runtime GPU wheel for Python 3.8: the CPU build is what runs here"


def _enroll_fix(name: str) -> str:
    return (
        f"on the controller: jetfleet devices enroll --name {name}; then here: jetfleet-agent enroll --name {name} "
        "--token TOKEN --enroll-address CONTROLLER:50049 --ca ca.pem"
    )


# --------------------------------------------------------------------------- pure checks


def check_python(env: PythonEnv, release: Release | None, missing: Mapping[str, str]) -> Check:
    """The interpreter and platform: a Python or machine without wheels fails; an off-JetPack Python warns.

    ``missing`` maps each required module that did not import to its error.
    """
    where = f"Python {env.version} on {env.system} {env.machine} ({env.describe()})"
    minor = tuple(int(p) for p in env.minor.split("."))
    if minor < (3, 8):
        return Check("python", FAIL, f"{where}: the agent needs Python 3.8 or newer", "use python3.8 or newer")
    if env.machine.lower() not in SUPPORTED_MACHINES:
        return Check(
            "python",
            FAIL,
            f"{where}: grpcio and onnxruntime publish no wheels for {env.machine}",
            "run the agent on an aarch64 (Jetson) or x86-64 Linux machine",
        )
    if missing:
        names = ", ".join(sorted(missing))
        first = next(iter(missing.values()))
        return Check(
            "python",
            FAIL,
            f"{where}: {names} do not import ({first})",
            f"{env.prefix}/bin/pip install 'jetfleet[agent]' (wheels exist for CPython 3.8 to 3.12 on aarch64 "
            "and x86-64; a newer Python may have none yet)",
        )
    if release is not None and env.minor != release.python and _version(release.python) >= (3, 8):
        return Check(
            "python",
            WARN,
            f"{where}; JetPack {release.jetpack}'s system Python is {release.python}, the only one its TensorRT "
            "bindings are built for",
            f"make the venv with /usr/bin/python{release.python} -m venv --system-site-packages DIR",
        )
    if env.system != "Linux":
        return Check("python", WARN, f"{where}: the agent is built for Linux (systemd, /proc, Jetson tools)")
    return Check("python", OK, where)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def check_jetpack(device: DeviceInfo, release: Release | None) -> Check:
    """L4T/JetPack and what it ships; JetPack 4 warns (its Python 3.6 cannot run TensorRT for the agent)."""
    if not device.is_jetson:
        return Check("jetpack", SKIP, f"not a Jetson ({device.board}): no L4T release to check")
    l4t = device.l4t_release
    if l4t is None:
        return Check(
            "jetpack",
            WARN,
            "a Jetson without /etc/nv_tegra_release: the L4T release is unknown, so is the TensorRT it should have",
            "reinstall the BSP package: sudo apt install --reinstall nvidia-l4t-core",
        )
    if release is None:
        newest = RELEASES[-1].l4t
        return Check(
            "jetpack",
            WARN,
            f"L4T {l4t} (JetPack {device.jetpack or 'unknown'}) is not in doctor's table (it ends at {newest}): "
            "the TensorRT version is not checked",
            "upgrade jetfleet; if this release is new, its table needs a row",
        )
    jetpack = device.jetpack or f"{release.jetpack}.x"
    ships = f"L4T {l4t} = JetPack {jetpack}: ships TensorRT {release.tensorrt} for Python {release.python}"
    if _version(release.python) < (3, 8):
        return Check(
            "jetpack",
            WARN,
            f"{ships}; the agent needs Python 3.8+, so TensorRT cannot run in it on this release",
            "Xavier and Orin: flash JetPack 5 or newer. Nano, TX1 and TX2 stop at JetPack 4.6: install python3.8 "
            '(sudo apt install python3.8 python3.8-venv) and set backends = ["onnxruntime"]',
        )
    return Check("jetpack", OK, ships)


def check_tensorrt(
    trt: ModuleReport,
    env: PythonEnv,
    bindings: Sequence[TensorRTBindings],
    release: Release | None,
    device: DeviceInfo | _Device,
    wanted: bool,
) -> Check:
    """``import tensorrt``: present, the version JetPack ships, and if not, why (venv, Python, packages)."""
    if not wanted:
        return Check("tensorrt", SKIP, "not among the configured backends")
    if trt.importable:
        return _tensorrt_version(trt, env, release)
    if not device.is_jetson:
        return Check("tensorrt", SKIP, "not a Jetson and tensorrt does not import: ONNX Runtime runs models here")
    error = trt.error
    if release is not None and _version(release.python) < (3, 8):
        return Check(
            "tensorrt",
            FAIL,
            f"JetPack {release.jetpack}'s TensorRT bindings exist for Python {release.python} only; this agent "
            f"runs Python {env.minor}",
            'set backends = ["onnxruntime"] in the config (TensorRT from Python 3.8+ needs JetPack 5 or newer)',
        )
    blocker = bindings_blocker(env, bindings)
    if blocker is not None:
        return Check("tensorrt", FAIL, blocker, bindings_fix(env, bindings))
    if bindings:
        path = bindings[0].path
        return Check(
            "tensorrt",
            FAIL,
            f"JetPack's tensorrt in {path} is visible but does not import: {error}",
            "reinstall JetPack's TensorRT: sudo apt install --reinstall python3-libnvinfer nvidia-tensorrt",
        )
    return Check(
        "tensorrt",
        FAIL,
        f"JetPack's TensorRT Python bindings are not installed (no tensorrt under /usr/lib/python3*/dist-packages): "
        f"{error}",
        "sudo apt install python3-libnvinfer (part of nvidia-jetpack), then use a venv made with "
        "--system-site-packages",
    )


def _tensorrt_version(trt: ModuleReport, env: PythonEnv, release: Release | None) -> Check:
    version, path = trt.version or "unknown", trt.path or "?"
    if release is None:
        return Check("tensorrt", OK, f"TensorRT {version} from {path}")
    if _major_minor(version) == release.tensorrt:
        return Check("tensorrt", OK, f"TensorRT {version} from {path}, as JetPack {release.jetpack} ships")
    from_venv = env.in_venv and path.startswith(str(env.prefix))
    fix = (
        f"{env.prefix}/bin/pip uninstall -y tensorrt (a PyPI wheel, not built for JetPack); JetPack's own comes "
        "with sudo apt install python3-libnvinfer, seen by a venv made with --system-site-packages"
        if from_venv
        else "reinstall JetPack's TensorRT: sudo apt install --reinstall python3-libnvinfer nvidia-tensorrt"
    )
    return Check(
        "tensorrt",
        FAIL,
        f"TensorRT {version} imports from {path}, but JetPack {release.jetpack} ships {release.tensorrt}: it does "
        "not match the system's libnvinfer and CUDA",
        fix,
    )


def check_cuda(device: DeviceInfo, usable: bool, detail: str, memory: tuple[int, int] | None) -> Check:
    """CUDA visible, compute capability and GPU memory (on a Jetson, the RAM it shares with the CPU)."""
    cc = device.compute_capability
    if usable:
        parts = [detail]
        if cc:
            parts.append(f"compute capability {cc}")
        if memory is not None:
            shared = " (shared with the CPU)" if device.is_jetson else ""
            parts.append(f"{_size(memory[0])} free of {_size(memory[1])} GPU memory{shared}")
        return Check("cuda", OK, "; ".join(parts))
    if device.is_jetson:
        return Check(
            "cuda",
            FAIL,
            f"CUDA is not usable: {detail}",
            "the agent's user must be in groups video and render (sudo usermod -aG video,render $USER, then log in "
            "again); check that nvidia-l4t-cuda is installed and /dev/nvgpu or /dev/nvhost-* exist",
        )
    if device.gpu_name:
        return Check(
            "cuda",
            WARN,
            f"{device.gpu_name} is present but CUDA is not usable: {detail}",
            "install the CUDA runtime (libcudart), or point JETFLEET_CUDART at it",
        )
    return Check("cuda", SKIP, "no NVIDIA GPU: models run on the CPU with ONNX Runtime")


def check_onnxruntime(
    ort: ModuleReport, providers: Sequence[str], device: DeviceInfo, release: Release | None, tensorrt_usable: bool
) -> Check:
    """ONNX Runtime and its providers: on a Jetson, the PyPI build has only the CPU provider."""
    if not ort.importable:
        fix = "pip install 'jetfleet[agent]'"
        if device.is_jetson:
            fix += f"; for CUDA on this Jetson: {ort_gpu_hint(release)}"
        return Check("onnxruntime", FAIL, f"onnxruntime does not import: {ort.error}", fix)
    listed = ", ".join(providers) or "none"
    detail = f"onnxruntime {ort.version}, providers: {listed}"
    gpu = any(p in providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
    if device.is_jetson and not gpu:
        if tensorrt_usable:
            return Check("onnxruntime", OK, f"{detail} (the PyPI build; TensorRT runs models, this is the fallback)")
        return Check(
            "onnxruntime",
            WARN,
            f"{detail}: the PyPI build, so models run on this Jetson's CPU",
            ort_gpu_hint(release),
        )
    return Check("onnxruntime", OK, detail)


def check_power_mode(device: DeviceInfo) -> Check:
    """The nvpmodel mode: benchmarks compare only within one mode, so it is printed with every figure."""
    if not device.is_jetson:
        return Check("power mode", SKIP, "not a Jetson")
    if device.power_mode is None:
        return Check(
            "power mode",
            WARN,
            "nvpmodel -q printed no power mode",
            "sudo apt install nvidia-l4t-nvpmodel; the modes are listed by: sudo nvpmodel -p --verbose",
        )
    return Check("power mode", OK, f"{device.power_mode} (nvpmodel -q)")


def check_clocks(device: DeviceInfo, state: ClockState | None) -> Check:
    """Whether ``jetson_clocks`` pinned the clocks: off is fine for serving, noisy for benchmarks."""
    if not device.is_jetson:
        return Check("clocks", SKIP, "not a Jetson")
    if state is None:
        return Check(
            "clocks", SKIP, "cannot tell whether jetson_clocks is on (no GPU clock limits readable); run with sudo"
        )
    if state.locked:
        return Check("clocks", OK, f"locked at maximum, jetson_clocks is on ({state.detail}, {state.source})")
    return Check(
        "clocks",
        WARN,
        f"scaling with load, jetson_clocks is off ({state.detail}, {state.source}): latency varies run to run",
        "sudo jetson_clocks before `jetfleet bench` (it lasts until the next reboot)",
    )


def check_disk(
    data_dir: Path, free: int | None, store_used: int, max_store: int, min_free: int, error: str | None = None
) -> Check:
    """Free disk under the data folder against the free-space floor and the store quota (``[limits]``)."""
    if free is None:
        return Check("disk", FAIL, f"cannot read free space under {data_dir}: {error}", "check that the path exists")
    usable = free - min_free
    detail = (
        f"{_size(free)} free under {data_dir}; store uses {_size(store_used)} of its {_size(max_store)} quota, "
        f"{_size(min_free)} must stay free"
    )
    if usable <= 0:
        return Check(
            "disk",
            FAIL,
            f"{detail}: the agent refuses every upload",
            f'free space on that disk, or move data_dir; [limits] min_free_bytes = "{format_size(min_free)}" is '
            "the floor",
        )
    if usable < max_store - store_used:
        fits = format_size(max(0, store_used + usable) // (1024**2) * 1024**2)
        return Check(
            "disk",
            WARN,
            f"{detail}: the disk fills before the quota does",
            f'free space, or set [limits] max_store_bytes = "{fits}" so the quota is the limit that bites',
        )
    return Check("disk", OK, detail)


@dataclass(frozen=True)
class IdentityFacts:
    """What the identity folder holds, read without trusting it (doctor must report a damaged one)."""

    folder: Path
    enrolled: bool
    error: str | None = None  # the identity is damaged: why
    error_fix: str | None = None
    name: str | None = None
    not_before: float | None = None
    not_after: float | None = None
    chain_error: str | None = None  # the certificate does not verify against the stored CA


def check_identity(facts: IdentityFacts, config_name: str, insecure: bool, now: float) -> Check:
    """The enrolled identity: present, for this name, its certificate valid now and not about to expire."""
    if not facts.enrolled:
        if insecure:
            return Check("identity", WARN, "not enrolled; the config says insecure: plaintext, unsigned manifests")
        return Check(
            "identity",
            WARN,
            f"not enrolled yet (no identity in {facts.folder}): serve refuses to start until it is",
            _enroll_fix(config_name),
        )
    if facts.error is not None:
        return Check("identity", FAIL, facts.error, facts.error_fix or _enroll_fix(config_name))
    if facts.name != config_name:
        return Check(
            "identity",
            FAIL,
            f"enrolled as {facts.name!r}, but this agent is configured as {config_name!r}",
            f"set name = {facts.name!r} in the config (or --name), or enroll again under the new name",
        )
    assert facts.not_before is not None and facts.not_after is not None
    if now < facts.not_before:
        return Check(
            "identity",
            FAIL,
            f"the device certificate is valid only from {_utc(facts.not_before)}: this clock is behind "
            f"({_duration(facts.not_before - now)})",
            "set the clock: sudo timedatectl set-ntp true (a Jetson without an RTC battery boots with a stale one)",
        )
    if now >= facts.not_after:
        return Check(
            "identity",
            FAIL,
            f"the device certificate expired at {_utc(facts.not_after)} ({_duration(now - facts.not_after)} ago)",
            "enroll again: " + _enroll_fix(config_name),
        )
    if facts.chain_error is not None:
        return Check("identity", FAIL, facts.chain_error, "enroll again: " + _enroll_fix(config_name))
    left = facts.not_after - now
    detail = f"enrolled as {facts.name}; certificate valid until {_utc(facts.not_after)}"
    if left < NEAR_EXPIRY_S:
        return Check(
            "identity",
            WARN,
            f"{detail}, {_duration(left)} from now",
            "enroll again before it expires: " + _enroll_fix(config_name),
        )
    return Check("identity", OK, detail)


def check_clock_skew(reading: ClockReading | None, error: str | None = None, skip: str | None = None) -> Check:
    """This clock against the controller's: manifests are refused once the skew eats their validity window.

    A device *behind* the controller refuses a manifest as not yet valid beyond the
    allowed skew; one *ahead* sees it expire early, by the skew. Either way
    the check fails at half the tolerance and warns above a few seconds.
    """
    if skip is not None:
        return Check("clock skew", SKIP, skip)
    if reading is None:
        return Check(
            "clock skew",
            WARN,
            f"could not ask the controller for its time: {error}",
            "pass --enroll-address HOST:PORT (the controller's enrollment port) and --ca ca.pem",
        )
    lifetime, tolerance = _manifest_windows()
    skew = reading.skew_s
    within = f"±{reading.uncertainty_s * 1000:.0f} ms"
    side = "behind" if skew > 0 else "ahead of"
    detail = f"this clock is {abs(skew):.3f} s ({within}) {side} the controller's"
    fix = "turn on NTP: sudo timedatectl set-ntp true (then timedatectl status shows 'synchronized: yes')"
    if skew > tolerance * SKEW_FAIL_FRACTION:
        return Check(
            "clock skew",
            FAIL,
            f"{detail}: manifests are refused as not yet valid beyond {tolerance:.0f} s",
            fix,
        )
    if -skew > lifetime * SKEW_FAIL_FRACTION:
        return Check(
            "clock skew",
            FAIL,
            f"{detail}: a manifest valid {lifetime / 60:.0f} min expires here after {(lifetime + skew) / 60:.0f} min",
            fix,
        )
    if abs(skew) > SKEW_WARN_S:
        return Check("clock skew", WARN, detail, fix)
    return Check("clock skew", OK, detail)


@dataclass(frozen=True)
class Probe:
    """One controller address: what it resolved to and whether it answered, and how we asked."""

    address: str
    resolved: tuple[str, ...] = ()
    resolve_error: str | None = None
    answered: bool = False
    how: str = ""  # "mutual TLS health check", "TCP connect", "plaintext health check"
    error: str | None = None
    latency_ms: float | None = None
    tls: bool = True  # False: only a TCP connect (not enrolled yet)


def check_controller(probes: Sequence[Probe], config_name: str) -> Check:
    """Every configured controller address resolves and answers; before enrollment, TCP is all we can test."""
    if not probes:
        return Check(
            "controller",
            SKIP,
            "no controller configured (standalone)",
            'set controller = "HOST:50050" in the config, or pass --controller',
        )
    for probe in probes:
        host = probe.address.rsplit(":", 1)[0].strip("[]")
        if probe.resolve_error is not None:
            return Check(
                "controller",
                FAIL,
                f"{host} does not resolve: {probe.resolve_error}",
                "check DNS (resolvectl status) or put the address in /etc/hosts, or use an IP address",
            )
        if not probe.answered:
            tls_words = ("certificate", "handshake", "ssl", "tls")
            refused = any(word in (probe.error or "").lower() for word in tls_words)
            fix = (
                "the controller refused this device's certificate or shows another CA's: enroll again"
                if refused
                else "is `jetfleet controller serve` running there, and the port open in its firewall?"
            )
            return Check(
                "controller",
                FAIL,
                f"{probe.address} ({', '.join(probe.resolved)}) does not answer a {probe.how}: {probe.error}",
                fix,
            )
    answered = "; ".join(
        f"{p.address} ({', '.join(p.resolved)}) answers a {p.how} in {p.latency_ms or 0:.0f} ms" for p in probes
    )
    if not all(p.tls for p in probes):
        return Check(
            "controller",
            WARN,
            f"{answered}; not enrolled yet, so mutual TLS is untested",
            _enroll_fix(config_name),
        )
    return Check("controller", OK, answered)


def check_service(state: Mapping[str, str] | None) -> Check:
    """The systemd unit: installed, enabled, running, or failing (with the journal command)."""
    from jetfleet.agent.systemd import UNIT_NAME

    if state is None:
        return Check("service", SKIP, "systemd is not running here (or systemctl is absent)")
    journal = f"journalctl -u {UNIT_NAME} -n 50 --no-pager"
    if state.get("LoadState") == "not-found":
        return Check(
            "service",
            WARN,
            f"{UNIT_NAME} is not installed",
            "sudo jetfleet-agent install-service --controller HOST:50050 --venv /opt/jetfleet",
        )
    active, sub = state.get("ActiveState", "?"), state.get("SubState", "?")
    enabled = state.get("UnitFileState", "?")
    detail = f"{UNIT_NAME} is {active} ({sub}), {enabled} at boot"
    if active == "failed" or (active == "activating" and sub == "auto-restart"):
        result, code = state.get("Result", "?"), state.get("ExecMainStatus", "?")
        return Check("service", FAIL, f"{detail}: last result {result}, exit status {code}", journal)
    if active != "active":
        return Check("service", WARN, detail, f"sudo systemctl enable --now {UNIT_NAME}")
    if enabled != "enabled":
        return Check("service", WARN, detail, f"sudo systemctl enable {UNIT_NAME}")
    return Check("service", OK, detail)


# --------------------------------------------------------------------------- formatting helpers


def _size(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


# --------------------------------------------------------------------------- gathering facts on this machine


@dataclass(frozen=True)
class DoctorOptions:
    """What the command line adds to the config for checks that run before enrollment."""

    ca_pem: bytes | None = None  # the fleet CA, to ask the controller's clock before enrolling
    enroll_address: str | None = None  # default: enrolled.json's, else the controller's host on port 50049
    timeout_s: float = PROBE_TIMEOUT_S


def missing_modules(names: Sequence[str] = REQUIRED_MODULES) -> dict[str, str]:
    """Each required module that does not import, with its error (doctor must run even when some are gone)."""
    missing = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            missing[name] = f"{type(exc).__name__}: {exc}"
    return missing


def identity_facts(data_dir: Path) -> IdentityFacts:
    """Read the identity the way serve would, keeping the reason when it is damaged."""
    from jetfleet.agent.identity import FOLDER, AgentIdentity
    from jetfleet.common import pki

    folder = data_dir / FOLDER
    try:
        identity = AgentIdentity.load(data_dir)
    except JetfleetError as exc:
        return IdentityFacts(folder, True, error=exc.message, error_fix=exc.hint)
    if identity is None:
        return IdentityFacts(folder, False)
    not_before, not_after = identity.validity()
    chain_error = None
    try:
        pki.verify_issued_by(identity.credentials.cert_pem, identity.credentials.ca_pem, now=not_before + 1)
    except JetfleetError as exc:  # PKIError: signature or the CA's own validity
        chain_error = str(exc)
    return IdentityFacts(
        folder, True, name=identity.name, not_before=not_before, not_after=not_after, chain_error=chain_error
    )


def _resolve(host: str, port: int) -> tuple[str, ...]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def probe_controller(address: str, config: AgentConfig, timeout_s: float) -> Probe:
    """Resolve ``address`` and ask it: a health check over the connection serve would make, else TCP."""
    import grpc

    from jetfleet.agent.identity import AgentIdentity
    from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, make_channel

    host, port = split_address(address)
    try:
        resolved = _resolve(host, port)
    except OSError as exc:
        return Probe(address, resolve_error=str(exc))
    identity = AgentIdentity.load(Path(config.data_dir))
    if identity is None and not config.insecure:
        return _tcp_probe(address, resolved, port, timeout_s)
    creds = identity.credentials if identity is not None else None
    how = "mutual TLS health check" if creds else "plaintext health check"
    channel = make_channel(address, credentials=creds, server_name=CONTROLLER_TLS_NAME if creds else None)
    start = time.monotonic()
    try:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="jetfleet.v1.ControllerService"), timeout=timeout_s
        )
    except grpc.RpcError as exc:
        return Probe(address, resolved, how=how, error=exc.details() or exc.code().name)
    finally:
        channel.close()
    latency = (time.monotonic() - start) * 1000
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return Probe(address, resolved, how=how, error=f"health status {reply.status}", latency_ms=latency)
    return Probe(address, resolved, answered=True, how=how, latency_ms=latency)


def _tcp_probe(address: str, resolved: tuple[str, ...], port: int, timeout_s: float) -> Probe:
    start = time.monotonic()
    try:
        with socket.create_connection((resolved[0], port), timeout=timeout_s):
            pass
    except OSError as exc:
        return Probe(address, resolved, how="TCP connect", error=str(exc), tls=False)
    latency = (time.monotonic() - start) * 1000
    return Probe(address, resolved, answered=True, how="TCP connect", latency_ms=latency, tls=False)


def enrollment_address(config: AgentConfig, options: DoctorOptions) -> tuple[str | None, str]:
    """Where the Clock RPC is served, and how we know (for the report)."""
    from jetfleet.agent.identity import enrolled_info

    if options.enroll_address:
        return options.enroll_address, "--enroll-address"
    recorded = enrolled_info(Path(config.data_dir)).get("enroll_address")
    if isinstance(recorded, str) and ":" in recorded:
        return recorded, "enrolled.json"
    if config.controller:
        host = config.controller.rsplit(":", 1)[0]
        return f"{host}:{DEFAULT_ENROLL_PORT}", f"the controller's host on the default port {DEFAULT_ENROLL_PORT}"
    return None, ""


def gather_clock(config: AgentConfig, options: DoctorOptions) -> Check:
    """Ask the controller's clock over server-only TLS (the CA from the identity, else ``--ca``)."""
    from jetfleet.agent.identity import AgentIdentity, read_controller_clock

    if config.insecure and AgentIdentity.load(Path(config.data_dir)) is None:
        return check_clock_skew(None, skip="insecure: the controller runs no enrollment service to ask the time")
    address, source = enrollment_address(config, options)
    if address is None:
        return check_clock_skew(None, skip="no controller configured; pass --controller or --enroll-address")
    identity = AgentIdentity.load(Path(config.data_dir))
    ca_pem = identity.credentials.ca_pem if identity is not None else options.ca_pem
    if ca_pem is None:
        return check_clock_skew(None, skip="not enrolled: pass --ca ca.pem (the fleet CA) to check the clock now")
    try:
        reading = read_controller_clock(address, ca_pem, timeout=options.timeout_s)
    except JetfleetError as exc:
        return check_clock_skew(None, error=f"{exc.message} (address from {source})")
    return check_clock_skew(reading)


def gather_disk(config: AgentConfig) -> Check:
    data_dir = Path(config.data_dir)
    existing = next((p for p in (data_dir, *data_dir.parents) if p.exists()), Path("/"))
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        return check_disk(data_dir, None, 0, config.max_store_bytes, config.min_free_bytes, str(exc))
    used = 0
    if (data_dir / "artifacts").is_dir():
        from jetfleet.agent.store import ArtifactStore

        used = ArtifactStore(data_dir / "artifacts", config.max_store_bytes, config.min_free_bytes).usage()
    return check_disk(data_dir, free, used, config.max_store_bytes, config.min_free_bytes)


def _cuda_facts() -> tuple[bool, str, tuple[int, int] | None]:
    from jetfleet.agent.engines import cuda

    ok, detail = cuda.cuda_available()
    memory = None
    if ok:
        try:
            memory = cuda.load().mem_get_info()
        except Exception:  # reported as "memory unknown", not as a failure of the whole check
            memory = None
    return ok, detail, memory


def run_doctor(config: AgentConfig, options: DoctorOptions | None = None, root: Path = Path("/")) -> list[Check]:
    """Gather this machine's facts and run every check, in the order a person fixes them.

    A fact that cannot be gathered (a module missing, a broken driver) becomes
    a failed check naming the error; doctor itself never stops with a traceback.
    """
    from jetfleet.agent.engines.choose import ModuleReport, import_report, onnxruntime_providers
    from jetfleet.agent.systemd import unit_state
    from jetfleet.agent.telemetry import detect_device, find_tensorrt_bindings, python_env, read_clock_state
    from jetfleet.common.version import __version__

    options = options or DoctorOptions()
    device = detect_device(__version__, root=root)
    release = release_for(device.l4t_release) if device.is_jetson else None
    env = python_env()
    trt = import_report("tensorrt") if "tensorrt" in config.backends else ModuleReport("tensorrt")
    cuda_ok, cuda_detail, memory = _cuda_facts()
    checks: list[Check] = [
        check_python(env, release, missing_modules()),
        check_jetpack(device, release),
        check_tensorrt(trt, env, find_tensorrt_bindings(root), release, device, "tensorrt" in config.backends),
        check_cuda(device, cuda_ok, cuda_detail, memory),
        check_onnxruntime(
            import_report("onnxruntime"),
            onnxruntime_providers(),
            device,
            release,
            "tensorrt" in config.backends and trt.importable and cuda_ok,
        ),
        check_power_mode(device),
        check_clocks(device, read_clock_state(root) if device.is_jetson else None),
    ]
    gathered: list[tuple[str, Callable[[], Check]]] = [
        ("disk", lambda: gather_disk(config)),
        (
            "identity",
            lambda: check_identity(identity_facts(Path(config.data_dir)), config.name, config.insecure, time.time()),
        ),
        ("clock skew", lambda: gather_clock(config, options)),
        ("controller", lambda: check_controller(_probes(config, options), config.name)),
        ("service", lambda: check_service(unit_state())),
    ]
    checks += [_guarded(name, gather) for name, gather in gathered]
    return checks


def _probes(config: AgentConfig, options: DoctorOptions) -> list[Probe]:
    return [probe_controller(config.controller, config, options.timeout_s)] if config.controller else []


def _guarded(name: str, gather: Callable[[], Check]) -> Check:
    try:
        return gather()
    except Exception as exc:  # doctor reports what it could not check instead of dying on it
        return Check(name, FAIL, f"doctor could not check this: {type(exc).__name__}: {exc}")


def report(checks: Sequence[Check]) -> dict[str, object]:
    """The ``--json`` document: every check, the count per status, and ``ok`` (no check failed)."""
    counts = {status: sum(c.status == status for c in checks) for status in STATUSES}
    return {"ok": counts[FAIL] == 0, "counts": counts, "checks": [c.to_dict() for c in checks]}


# --------------------------------------------------------------------------- serve's refusals


def serve_preflight(config: AgentConfig, root: Path = Path("/"), now: float | None = None) -> list[str]:
    """Refuse to start ``serve``, in one line, on what would fail later without saying why; return warnings.

    Refused: an expired, not-yet-valid or damaged certificate (every connection
    would fail its TLS handshake, retried for ever), and a TensorRT-only backend
    preference that cannot work here. An unreachable controller is not a
    refusal: the agent retries with backoff and serves meanwhile. A certificate
    close to expiry is returned as a warning for the journal.
    """
    warnings = []
    facts = identity_facts(Path(config.data_dir))
    if facts.enrolled:  # not enrolled: the daemon refuses by itself unless insecure, with its own message
        check = check_identity(facts, config.name, config.insecure, time.time() if now is None else now)
        if check.status == FAIL:
            raise JetfleetError(check.detail, check.fix)
        if check.status == WARN:
            warnings.append(f"{check.detail} ({check.fix})")
    if tuple(config.backends) == ("tensorrt",):
        refusal = _tensorrt_refusal(root)
        if refusal is not None:
            raise refusal
    return warnings


def _tensorrt_refusal(root: Path) -> JetfleetError | None:
    from jetfleet.agent.engines.choose import import_report
    from jetfleet.agent.engines.tensorrt import tensorrt_available
    from jetfleet.agent.telemetry import find_tensorrt_bindings, is_jetson, python_env, read_l4t_release

    ok, why = tensorrt_available()
    if ok:
        return None
    trt = import_report("tensorrt")
    if trt.importable:  # it imports; CUDA is what is missing
        return JetfleetError(f"backend tensorrt (the only one configured) is unusable: {why}", _CUDA_FIX)
    jetson = is_jetson(root)
    release = release_for(read_l4t_release(root)) if jetson else None
    device = _Device(jetson)
    check = check_tensorrt(trt, python_env(), find_tensorrt_bindings(root), release, device, True)
    if check.status == FAIL:
        return JetfleetError(f"backend tensorrt (the only one configured) is unusable: {check.detail}", check.fix)
    return JetfleetError(
        f"backend tensorrt (the only one configured) is unusable: {why}",
        "add onnxruntime to backends (--backend tensorrt,onnxruntime) on a machine without TensorRT",
    )


_CUDA_FIX = "the agent's user must be in groups video and render (sudo usermod -aG video,render $USER)"


@dataclass(frozen=True)
class _Device:
    """The one device fact the TensorRT check needs when serve asks (detecting everything costs seconds)."""

    is_jetson: bool
    board: str = "this machine"
