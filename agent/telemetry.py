"""What the agent knows about its device: fixed facts once, load samples continuously.

Two halves, both feeding the dataclasses in ``jetfleet.common.device``:

* ``detect_device`` reads the facts that key engine and timing caches (board,
  L4T/JetPack, compute capability, backend versions). On a Jetson they come
  from the device tree, ``/etc/nv_tegra_release``, ``nvpmodel`` and ``dpkg``;
  elsewhere from ``/proc``, ``/etc/os-release`` and, when present,
  ``nvidia-smi``. Every path is read under an injectable ``root`` and every
  command goes through an injectable ``run`` so tests point both at a fake
  device instead of mocking the standard library.
* ``Telemetry`` samples memory, load, temperatures and power on a daemon
  thread: from a long-running ``tegrastats`` on a Jetson (the only source of
  GPU load and rail power there), from ``/proc``/``/sys`` and psutil elsewhere,
  and from ``/proc`` again if ``tegrastats`` dies, so a job report never goes
  blank because a helper process crashed.

Decisions worth knowing when reading a sample:

* ``cpu_core_percent`` lists **online** cores only: tegrastats prints ``off``
  for cores that nvpmodel powered down, and a powered-down core has no load,
  not zero load. ``cpu_percent`` is the mean over those online cores, so a
  4-of-8-core power mode at full load reads 100 %, as the operator expects.
* Temperature keys are lower case with any ``-therm`` suffix removed, so
  tegrastats ``CPU@``, Orin's ``cpu@`` and the thermal zone ``CPU-therm`` all
  become ``"cpu"`` and plot as one series across a mixed fleet. Sensors that
  read -256 °C (powered-off CV/GPU zones on Orin) are dropped, and so is the
  PMIC zone: it is a fixed placeholder (100 °C on JetPack 4, 50 °C later), not
  a measurement, and would trip any overheat alert.
* ``power_mw`` holds the instantaneous (first) value of each rail in mW, keyed
  by the rail name tegrastats prints (``VDD_IN``, ``POM_5V_IN``,
  ``VDD_CPU_GPU_CV``...). The rails differ per module; summing them is wrong
  (``VDD_IN`` already includes the others), so they are reported as they are.
* Timestamps are the agent's ``time.time()`` when a line was read, not
  tegrastats' own date prefix (second resolution, local time, absent before
  JetPack 5), so ``since(job_start)`` lines up with the job's own clock.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Protocol

from jetfleet.common.device import DeviceInfo, TelemetrySample

if TYPE_CHECKING:
    from rich.table import Table

logger = logging.getLogger(__name__)

# Runtime aliases are written with typing's generics: they are evaluated on import, and JetPack 5 is Python 3.8.
CommandRunner = Callable[[List[str]], Optional[str]]
ModuleVersion = Callable[[str], Optional[str]]

COMMAND_TIMEOUT_S = 3.0  # nvpmodel/nvidia-smi answer in well under a second; a wedged driver must not stall start-up
DEFAULT_HISTORY = 600  # ten minutes at the default 1 s interval: enough for a benchmark job's report
DEFAULT_INTERVAL_S = 1.0  # tegrastats' own default; finer sampling costs CPU on a 4-core Nano
OFF_SENSOR_C = -200.0  # Jetson reports -256 °C for powered-down thermal zones; anything below this is "no reading"


# --------------------------------------------------------------------------- small I/O helpers


def run_command(cmd: list[str]) -> str | None:
    """Run ``cmd`` and return its stdout, or None when it is absent, fails or hangs.

    Device facts are optional extras: a missing ``nvpmodel`` or a broken
    driver must degrade a field to None, never stop the agent.
    """
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def imported_version(module: str) -> str | None:
    """``module.__version__`` if it imports, else None (TensorRT is absent off-Jetson, by design)."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # a backend whose CUDA libraries are broken raises OSError, not ImportError
        return None
    version = getattr(mod, "__version__", None)
    return str(version) if version else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def slugify(text: str) -> str:
    """Lower-case, filename-safe form of ``text``: device classes name cache folders and report files.

    Underscores survive so architectures keep their usual spelling (``cpu-x86_64``).
    """
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------- Jetson facts

_DEVICE_TREE_DIRS = ("proc/device-tree", "sys/firmware/devicetree/base")


def _device_tree(root: Path, name: str) -> str | None:
    """A device-tree property; ``/proc/device-tree`` is a symlink that containers may not carry."""
    for folder in _DEVICE_TREE_DIRS:
        text = _read_text(root / folder / name)
        if text is not None:
            return text
    return None


def read_board_model(root: Path = Path("/")) -> str | None:
    """The board name from the device tree (NUL-terminated), e.g. ``NVIDIA Jetson Nano Developer Kit``."""
    text = _device_tree(root, "model")
    return (text.replace("\x00", "").strip() or None) if text else None


def read_compatible(root: Path = Path("/")) -> tuple[str, ...]:
    """The device tree's NUL-separated ``compatible`` list; it names the SoC (``nvidia,tegra234``)."""
    text = _device_tree(root, "compatible")
    return tuple(part.strip() for part in text.split("\x00") if part.strip()) if text else ()


def is_jetson(root: Path = Path("/")) -> bool:
    """True on an NVIDIA Jetson: any of the L4T release file, a Tegra SoC, or "Jetson" in the board name."""
    if (root / "etc/nv_tegra_release").exists():
        return True
    if any(entry.startswith("nvidia,tegra") for entry in read_compatible(root)):
        return True
    return "jetson" in (read_board_model(root) or "").lower()


@dataclass(frozen=True)
class JetsonSoc:
    """What the SoC fixes for every board built on it: the iGPU and its CUDA compute capability."""

    family: str  # device-class fallback for boards the table below does not know
    gpu_name: str
    compute_capability: str


_SOCS = {
    "tegra210": JetsonSoc("jetson-tegra-x1", "Tegra X1 (Maxwell)", "5.3"),
    "tegra186": JetsonSoc("jetson-tx2", "Tegra X2 (Pascal)", "6.2"),
    "tegra194": JetsonSoc("jetson-xavier", "Xavier (Volta)", "7.2"),
    "tegra234": JetsonSoc("jetson-orin", "Orin (Ampere)", "8.7"),
    "tegra264": JetsonSoc("jetson-thor", "Thor (Blackwell)", "11.0"),  # sm_110 since CUDA 13 (sm_101 in 12.8/12.9)
}

# (words that must all appear in the board name, device class, SoC), most specific first:
# "Orin Nano" must win over "Nano", "AGX Orin" over a bare "AGX" (the 2018 AGX Xavier's "Jetson-AGX").
# "Super" devkits keep their class: Super is a power mode on the same silicon, recorded in power_mode.
_BOARDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("agx", "thor"), "jetson-agx-thor", "tegra264"),
    (("thor",), "jetson-thor", "tegra264"),
    (("agx", "orin"), "jetson-agx-orin", "tegra234"),
    (("orin", "nx"), "jetson-orin-nx", "tegra234"),
    (("orin", "nano"), "jetson-orin-nano", "tegra234"),
    (("orin",), "jetson-orin", "tegra234"),
    (("xavier", "nx"), "jetson-xavier-nx", "tegra194"),
    (("agx", "xavier"), "jetson-agx-xavier", "tegra194"),
    (("agx",), "jetson-agx-xavier", "tegra194"),
    (("xavier",), "jetson-xavier", "tegra194"),
    (("tx2", "nx"), "jetson-tx2-nx", "tegra186"),
    (("tx2",), "jetson-tx2", "tegra186"),
    (("quill",), "jetson-tx2", "tegra186"),  # the TX2 devkit's model string on L4T 28
    (("tx1",), "jetson-tx1", "tegra210"),
    (("nano",), "jetson-nano", "tegra210"),
)


@dataclass(frozen=True)
class JetsonBoard:
    """A board's stable class and its SoC's GPU facts (None when the SoC is unknown)."""

    device_class: str
    gpu_name: str | None
    compute_capability: str | None


def classify_jetson(model: str, compatible: Sequence[str] = ()) -> JetsonBoard:
    """Map a device-tree board name (and ``compatible`` list) to a device class and GPU facts.

    The SoC comes from ``compatible`` when present, because carrier boards
    (Seeed, Auvidea...) rename the model freely but never the SoC.
    """
    words = set(re.findall(r"[a-z0-9]+", model.lower()))
    matched = next(((cls, soc) for needed, cls, soc in _BOARDS if words.issuperset(needed)), None)
    soc_key = next((c.split(",", 1)[1] for c in compatible if c.startswith("nvidia,tegra")), None)
    soc = _SOCS.get(soc_key or "") or (_SOCS[matched[1]] if matched else None)
    if matched:
        device_class = matched[0]
    elif soc:
        device_class = soc.family
    else:
        rest = " ".join(w for w in model.lower().split() if w not in {"nvidia", "jetson", "developer", "kit"})
        device_class = "jetson-" + slugify(rest)
    return JetsonBoard(device_class, soc.gpu_name if soc else None, soc.compute_capability if soc else None)


_L4T_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?")


def parse_l4t_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 4.0, ...`` -> ``R36.4.0``."""
    match = _L4T_RE.search(text)
    return f"R{match[1]}.{match[2]}.{match[3] or 0}" if match else None


def _leading_version(text: str | None) -> str | None:
    """``36.4.4-20250616085344`` / ``6.2.1+b38`` / ``4.6.2-b5`` -> the dotted number in front."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return match[1] if match else None


# L4T release -> JetPack, from NVIDIA's release notes; best effort. The L4T release is the
# authoritative field (it keys engine caches); an L4T we do not list reports jetpack None
# rather than a guess, unless the nvidia-jetpack package names it.
_JETPACK = {
    "R32.1.0": "4.2",
    "R32.2.0": "4.2.1",
    "R32.2.1": "4.2.2",
    "R32.2.3": "4.2.3",
    "R32.3.1": "4.3",
    "R32.4.3": "4.4",
    "R32.4.4": "4.4.1",
    "R32.5.0": "4.5",
    "R32.5.1": "4.5.1",
    "R32.6.1": "4.6",
    "R32.7.1": "4.6.1",
    "R32.7.2": "4.6.2",
    "R32.7.3": "4.6.3",
    "R32.7.4": "4.6.4",
    "R32.7.5": "4.6.5",
    "R32.7.6": "4.6.6",
    "R34.1.0": "5.0 DP",
    "R34.1.1": "5.0.1 DP",
    "R35.1.0": "5.0.2",
    "R35.2.1": "5.1",
    "R35.3.1": "5.1.1",
    "R35.4.1": "5.1.2",
    "R35.5.0": "5.1.3",
    "R35.6.0": "5.1.4",
    "R35.6.1": "5.1.5",
    "R36.2.0": "6.0 DP",
    "R36.3.0": "6.0",
    "R36.4.0": "6.1",
    "R36.4.3": "6.2",
    "R36.4.4": "6.2.1",
    "R36.5.0": "6.2.2",
    "R38.2.0": "7.0",
    "R38.2.1": "7.0",  # 38.2.x point releases are updates of JetPack 7.0 (best knowledge)
    "R38.2.2": "7.0",
    "R38.4.0": "7.1",  # as a Thor prints it: L4T_VERSION=38.4.0 JETPACK_VERSION=7.1 CUDA_VERSION=13.0
}


def jetpack_for_l4t(l4t_release: str | None) -> str | None:
    """The JetPack that shipped ``l4t_release`` (``R32.7.1`` -> ``4.6.1``), None when not in the table."""
    return _JETPACK.get(l4t_release or "")


_POWER_MODE_RE = re.compile(r"NV Power Mode:\s*(.+?)\s*$", re.MULTILINE)


def parse_power_mode(text: str) -> str | None:
    """``nvpmodel -q`` (``NV Power Mode: MAXN`` then the mode id) -> ``MAXN``; also its ``--verbose`` form."""
    match = _POWER_MODE_RE.search(text)
    return match[1] if match else None


def _dpkg_version(package: str, run: CommandRunner) -> str | None:
    return _leading_version(run(["dpkg-query", "-W", "-f=${Version}", package]))


def _l4t_release(root: Path, run: CommandRunner) -> str | None:
    """From ``/etc/nv_tegra_release``; the ``nvidia-l4t-core`` package is the fallback some images need."""
    text = _read_text(root / "etc/nv_tegra_release")
    release = parse_l4t_release(text) if text else None
    if release is None and (core := _dpkg_version("nvidia-l4t-core", run)):
        parts = [*core.split("."), "0", "0"][:3]
        release = "R" + ".".join(parts)
    return release


def read_l4t_release(root: Path = Path("/"), run: CommandRunner = run_command) -> str | None:
    """The L4T release (``R36.4.4``) without detecting everything else: ``serve`` checks it before starting."""
    return _l4t_release(root, run)


# --------------------------------------------------------------------------- clocks (jetson_clocks)

_CLOCK_LINE_RE = re.compile(r"^\s*(GPU|cpu\d+):?\s(.*)$", re.MULTILINE)  # "GPU MinFreq=..", "cpu0:  Online=1 .."
_FREQ_RE = re.compile(r"\b(Online|MinFreq|MaxFreq|CurrentFreq)=(\d+)")
# Jetson GPU devfreq nodes: 57000000.gpu (Nano), 17000000.gv11b (Xavier), 17000000.ga10b (Orin, JetPack 5),
# 17000000.gpu (Orin, JetPack 6). Any devfreq node with one of these in its name is taken for the GPU.
_GPU_DEVFREQ_WORDS = ("gpu", "gp10b", "gv11b", "ga10b", "gb10b")


@dataclass(frozen=True)
class ClockState:
    """Whether the clocks are pinned at their maximum (what ``sudo jetson_clocks`` does), and what was read.

    ``jetson_clocks`` raises each online CPU's and the GPU's minimum frequency to
    its maximum, so "locked" is min == max; with DVFS on, a benchmark's first
    batches run at idle clocks and latency varies run to run.
    """

    locked: bool
    source: str  # "jetson_clocks --show" or "sysfs"
    detail: str  # e.g. "GPU 306-612 MHz, 8 CPUs 729-1728 MHz"


def _mhz(hz_or_khz: int, per_mhz: int) -> str:
    return f"{hz_or_khz / per_mhz:.0f}"


def _summarize(gpu: tuple[int, int] | None, cpus: list[tuple[int, int]], cpu_unit: int, gpu_unit: int) -> str:
    parts = []
    if gpu is not None:
        parts.append(f"GPU {_mhz(gpu[0], gpu_unit)}-{_mhz(gpu[1], gpu_unit)} MHz")
    if cpus:
        low, high = min(c[0] for c in cpus), max(c[1] for c in cpus)
        parts.append(f"{len(cpus)} CPUs {_mhz(low, cpu_unit)}-{_mhz(high, cpu_unit)} MHz")
    return ", ".join(parts)


def parse_jetson_clocks(text: str) -> ClockState | None:
    """``jetson_clocks --show`` -> locked when the GPU and every online CPU have MinFreq == MaxFreq.

    The output differs by release (``cpu0: Online=1 Governor=...`` on JetPack 4-6,
    no ``Online=`` field when the header lists "Offline CPUs" on later ones); CPU
    frequencies are kHz, the GPU's Hz. None when the text has neither.
    """
    gpu: tuple[int, int] | None = None
    cpus: list[tuple[int, int]] = []
    for what, rest in _CLOCK_LINE_RE.findall(text):
        fields = dict(_FREQ_RE.findall(rest))
        if "MinFreq" not in fields or "MaxFreq" not in fields or fields.get("Online", "1") == "0":
            continue
        pair = (int(fields["MinFreq"]), int(fields["MaxFreq"]))
        if what == "GPU":
            gpu = pair
        else:
            cpus.append(pair)
    if gpu is None and not cpus:
        return None
    locked = all(low == high for low, high in ([gpu] if gpu else []) + cpus)
    return ClockState(locked, "jetson_clocks --show", _summarize(gpu, cpus, 1000, 10**6))


def _int_file(path: Path) -> int | None:
    try:
        return int((_read_text(path) or "").strip())
    except ValueError:
        return None


def read_sysfs_clocks(root: Path = Path("/")) -> ClockState | None:
    """The same verdict from sysfs, which any user may read (``jetson_clocks --show`` needs root)."""
    gpu = None
    for node in sorted((root / "sys/class/devfreq").glob("*")):
        if any(word in node.name.lower() for word in _GPU_DEVFREQ_WORDS):
            low, high = _int_file(node / "min_freq"), _int_file(node / "max_freq")
            if low is not None and high is not None:
                gpu = (low, high)
                break
    cpus = []
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*"), key=_zone_number):
        if (_read_text(cpu / "online") or "1").strip() == "0":
            continue
        low, high = _int_file(cpu / "cpufreq/scaling_min_freq"), _int_file(cpu / "cpufreq/scaling_max_freq")
        if low is not None and high is not None:
            cpus.append((low, high))
    if gpu is None:  # without the GPU the verdict says nothing about what inference runs on
        return None
    locked = all(low == high for low, high in [gpu, *cpus])
    return ClockState(locked, "sysfs", _summarize(gpu, cpus, 1000, 10**6))


def read_clock_state(root: Path = Path("/"), run: CommandRunner = run_command) -> ClockState | None:
    """``jetson_clocks --show`` when it runs (root), else sysfs; None when neither tells."""
    text = run(["jetson_clocks", "--show"])
    return (parse_jetson_clocks(text) if text else None) or read_sysfs_clocks(root)


# --------------------------------------------------------------------------- the Python the agent runs on

_PYTHON_DIR_RE = re.compile(r"python(\d+\.\d+)")
_ABI_TAG_RE = re.compile(r"\.cpython-(\d)(\d+)")


@dataclass(frozen=True)
class PythonEnv:
    """The interpreter the agent runs on, and whether it is a venv that sees the system's packages.

    JetPack installs TensorRT's bindings for its one system Python only
    (``python3-libnvinfer``: 3.8 on JetPack 5, 3.10 on 6, 3.12 on 7), into
    ``/usr/lib/python3.X/dist-packages``. A venv sees them only if it was made
    from that Python with ``--system-site-packages``.
    """

    executable: str
    version: str  # "3.10.12"
    prefix: str
    base_prefix: str
    system_site_packages: bool | None  # None: not a venv (the system's packages are visible anyway)
    machine: str  # "aarch64", "x86_64"
    system: str  # "Linux"

    @property
    def in_venv(self) -> bool:
        return self.prefix != self.base_prefix

    @property
    def minor(self) -> str:
        """``"3.10"``: what TensorRT's bindings and wheels are built against."""
        return ".".join(self.version.split(".")[:2])

    def describe(self) -> str:
        if not self.in_venv:
            return f"system interpreter {self.executable}"
        seen = "sees" if self.system_site_packages else "does not see"
        return f"venv {self.prefix}, which {seen} the system's packages"


def parse_pyvenv_cfg(text: str) -> dict[str, str]:
    """``key = value`` lines of a venv's ``pyvenv.cfg`` (keys lower-cased, as the site module reads them)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def python_env(
    prefix: str | None = None,
    base_prefix: str | None = None,
    executable: str | None = None,
    version: str | None = None,
) -> PythonEnv:
    """This interpreter (or the one described by the arguments, for tests and for a venv we made)."""
    prefix = prefix or sys.prefix
    base_prefix = base_prefix or sys.base_prefix
    system_site = None
    if prefix != base_prefix:
        cfg = parse_pyvenv_cfg(_read_text(Path(prefix) / "pyvenv.cfg") or "")
        system_site = cfg.get("include-system-site-packages", "false").lower() == "true"
    return PythonEnv(
        executable=executable or sys.executable,
        version=version or platform.python_version(),
        prefix=prefix,
        base_prefix=base_prefix,
        system_site_packages=system_site,
        machine=platform.machine(),
        system=platform.system(),
    )


@dataclass(frozen=True)
class TensorRTBindings:
    """A ``tensorrt`` package that JetPack (or apt) installed outside any venv."""

    path: str
    python: str | None  # "3.10": the Python it is built for; None when neither folder nor file says


# Where python3-libnvinfer puts the bindings: /usr/lib/python3.X/dist-packages on JetPack 5-7 (and
# /usr/lib/python3/dist-packages on some images); /usr/local for a TensorRT built from source.
_BINDING_GLOBS = ("usr/lib/python3*/dist-packages/tensorrt", "usr/local/lib/python3*/dist-packages/tensorrt")


def find_tensorrt_bindings(root: Path = Path("/")) -> list[TensorRTBindings]:
    """JetPack's TensorRT Python bindings on this system, each with the Python version it needs."""
    found = []
    for pattern in _BINDING_GLOBS:
        for folder in sorted(root.glob(pattern)):
            if not folder.is_dir():
                continue
            match = _PYTHON_DIR_RE.search(folder.parent.parent.name)
            python = match[1] if match else None
            if python is None:  # /usr/lib/python3/dist-packages: the extension module's ABI tag says
                tags = (_ABI_TAG_RE.search(p.name) for p in folder.glob("*.so"))
                python = next((f"{t[1]}.{t[2]}" for t in tags if t), None)
            found.append(TensorRTBindings("/" + str(folder.relative_to(root)), python))
    return found


def bindings_blocker(env: PythonEnv, bindings: Sequence[TensorRTBindings]) -> str | None:
    """Why ``env`` cannot import JetPack's ``tensorrt`` from ``bindings``; None when it can (or there are none).

    The two ways a Jetson owner gets this wrong: a venv made without
    ``--system-site-packages``, and a venv (or pyenv/conda interpreter) on
    another Python than the system one the bindings are built for.
    """
    if not bindings:
        return None
    usable = [b for b in bindings if b.python in (None, env.minor)]
    if not usable:
        other = bindings[0]
        return (
            f"JetPack's tensorrt ({other.path}) is built for Python {other.python}, "
            f"but this is Python {env.minor} ({env.executable})"
        )
    if env.in_venv and not env.system_site_packages:
        return (
            f"the venv {env.prefix} was created without --system-site-packages, "
            f"so it cannot see JetPack's tensorrt in {usable[0].path}"
        )
    return None


def bindings_fix(env: PythonEnv, bindings: Sequence[TensorRTBindings]) -> str:
    """The commands that give this installation JetPack's TensorRT (see ``bindings_blocker``)."""
    python = next((f"/usr/bin/python{b.python}" for b in bindings if b.python), "/usr/bin/python3")
    target = env.prefix if env.in_venv else "/opt/jetfleet"
    remake = f"{python} -m venv --system-site-packages {target} && {target}/bin/pip install 'jetfleet[agent]'"
    if env.in_venv and any(b.python in (None, env.minor) for b in bindings):
        return f"set include-system-site-packages = true in {target}/pyvenv.cfg, or recreate it: {remake}"
    return (
        f"recreate the venv with the system Python: {remake} (or: sudo jetfleet-agent install-service --venv {target})"
    )


# --------------------------------------------------------------------------- generic host facts

# (implementer, part) from /proc/cpuinfo: ARM kernels print no usable "model name".
_ARM_CORES = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd42"): "ARM Cortex-A78AE",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0x4e", "0x003"): "NVIDIA Denver 2",
    ("0x4e", "0x004"): "NVIDIA Carmel",
}


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The CPU's name from ``/proc/cpuinfo``: ARM core names by part number, else ``model name``.

    A TX2 mixes Denver and A57 cores; both are named (``NVIDIA Denver 2 + ARM Cortex-A57``).
    """
    fields: list[tuple[str, str]] = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.append((key.strip().lower(), value.strip()))
    model_name = next((v for k, v in fields if k == "model name" and v), None)
    cores: list[str] = []
    implementer = None
    for key, value in fields:
        if key == "cpu implementer":
            implementer = value.lower()
        elif key == "cpu part" and implementer:
            name = _ARM_CORES.get((implementer, value.lower()))
            if name is None:
                return model_name
            if name not in cores:
                cores.append(name)
    return " + ".join(cores) if cores else model_name


def read_meminfo(root: Path = Path("/")) -> dict[str, int]:
    """``/proc/meminfo`` as {field: kB}; empty when unreadable (not Linux, or a fake root without it)."""
    values: dict[str, int] = {}
    for line in (_read_text(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key.strip()] = int(number[0])
    return values


def _memory_total_mb(root: Path) -> int:
    meminfo = read_meminfo(root)
    if "MemTotal" in meminfo:
        return round(meminfo["MemTotal"] / 1024)
    import psutil  # not Linux: /proc/meminfo is the answer everywhere else we run

    return round(psutil.virtual_memory().total / 2**20)


def _os_release(root: Path) -> str:
    for line in (_read_text(root / "etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip("\"'")
    return platform.platform()


def _cuda_version(root: Path, run: CommandRunner) -> str | None:
    """The CUDA toolkit: ``/usr/local/cuda``'s version.json (CUDA 11+) or version.txt (before), else ``nvcc``.

    The nvcc fallback is for hosts whose toolkit came from pip or conda
    (seen on an H200 workstation image: no version file, nvcc on PATH).
    """
    text = _read_text(root / "usr/local/cuda/version.json")
    if text:
        try:
            return str(json.loads(text)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    match = re.search(r"CUDA Version\s+([\d.]+)", _read_text(root / "usr/local/cuda/version.txt") or "")
    if match:
        return match[1]
    match = re.search(r"release [\d.]+, V([\d.]+)", run(["nvcc", "--version"]) or "")
    return match[1] if match else None


def parse_nvidia_smi(text: str) -> tuple[str, str | None] | None:
    """First GPU of ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` -> (name, cc)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return None
    name, _, cc = (part.strip() for part in line.partition(","))
    return name, (cc or None)


def _discrete_gpu(run: CommandRunner) -> tuple[str, str | None] | None:
    """A visible NVIDIA GPU (workstation, cloud box); old drivers lack ``compute_cap``, so retry with name only."""
    out = run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    if out is None:
        out = run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return parse_nvidia_smi(out) if out else None


def gpu_device_class(gpu_name: str) -> str:
    """``NVIDIA GeForce RTX 4090`` -> ``gpu-geforce-rtx-4090`` (every name starts "NVIDIA"; it says nothing)."""
    return "gpu-" + slugify(re.sub(r"^\s*nvidia\s+", "", gpu_name, flags=re.IGNORECASE))


# --------------------------------------------------------------------------- detect_device


def detect_device(
    agent_version: str,
    root: Path = Path("/"),
    run: CommandRunner = run_command,
    module_version: ModuleVersion = imported_version,
) -> DeviceInfo:
    """Detect this device's fixed facts once, at agent start.

    ``root`` prefixes every file read and ``run`` executes every command, so a
    test can describe a whole Jetson as a folder and a dict of command outputs.
    """
    model = read_board_model(root)
    common: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "cpu_model": parse_cpu_model(_read_text(root / "proc/cpuinfo") or "")
        or platform.processor()
        or platform.machine(),
        "cpu_count": os.cpu_count() or 1,
        "memory_total_mb": _memory_total_mb(root),
        "os_release": _os_release(root),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "agent_version": agent_version,
        "cuda_version": _cuda_version(root, run),
        "tensorrt_version": module_version("tensorrt"),
        "onnxruntime_version": module_version("onnxruntime"),
    }
    if is_jetson(root):
        return _jetson_info(root, run, model or "NVIDIA Jetson", common)
    return _host_info(root, run, model, common)


def _jetson_info(root: Path, run: CommandRunner, model: str, common: dict[str, Any]) -> DeviceInfo:
    board = classify_jetson(model, read_compatible(root))
    l4t = _l4t_release(root, run)
    power = run(["nvpmodel", "-q"])
    return DeviceInfo(
        board=model,
        device_class=board.device_class,
        is_jetson=True,
        l4t_release=l4t,
        # the nvidia-jetpack meta-package names the JetPack exactly; minimal images lack it
        jetpack=_dpkg_version("nvidia-jetpack", run) or jetpack_for_l4t(l4t),
        power_mode=parse_power_mode(power) if power else None,
        gpu_name=board.gpu_name,
        compute_capability=board.compute_capability,
        **common,
    )


def _host_info(root: Path, run: CommandRunner, model: str | None, common: dict[str, Any]) -> DeviceInfo:
    product = (_read_text(root / "sys/class/dmi/id/product_name") or "").strip()
    gpu = _discrete_gpu(run)
    machine = platform.machine() or "unknown"
    return DeviceInfo(
        board=model or product or machine,
        device_class=gpu_device_class(gpu[0]) if gpu else "cpu-" + slugify(machine),
        is_jetson=False,
        gpu_name=gpu[0] if gpu else None,
        compute_capability=gpu[1] if gpu else None,
        **common,
    )


# --------------------------------------------------------------------------- tegrastats lines

_RAM_RE = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU_RE = re.compile(r"\bCPU \[([^\]]*)\]", re.IGNORECASE)  # L4T 28 printed "cpu [...]"
_CORE_RE = re.compile(r"(\d+(?:\.\d+)?)%")
_GPU_RE = re.compile(r"\bGR3D(?:_FREQ)? (\d+(?:\.\d+)?)%")  # L4T 28 printed "GR3D 3%@76"
_TEMP_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
# "POM_5V_IN 900/943", "VDD_IN 5285mW/5285mW", AGX Xavier's bare "CPU 311/311"; the lookahead
# rejects "RAM 534/3964MB" and "SWAP 0/1982MB", whose second number runs into a unit.
_RAIL_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)\s+(\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?=\s|$)")


def _temperature_key(name: str) -> str | None:
    """Shared key for tegrastats and thermal-zone names; None for the PMIC placeholder."""
    key = re.sub(r"[-_]therm$", "", name.strip().lower())
    return None if key.startswith("pmic") else key


def _cpu_cores(line: str) -> tuple[float, ...]:
    match = _CPU_RE.search(line)
    if not match:
        return ()
    cores = (_CORE_RE.match(token.strip()) for token in match[1].split(","))
    return tuple(float(core[1]) for core in cores if core)  # "off" and empty tokens: core is offline


def _temperatures(line: str) -> dict[str, float]:
    temps: dict[str, float] = {}
    for name, value in _TEMP_RE.findall(line):
        key = _temperature_key(name)
        if key is not None and float(value) > OFF_SENSOR_C:
            temps[key] = float(value)
    return temps


def parse_tegrastats(line: str, timestamp: float) -> TelemetrySample:
    """Parse one line of ``tegrastats`` output (any JetPack from 4 to 7) into a sample.

    Fields a line lacks stay None or empty; tokens we do not use (EMC_FREQ,
    SWAP, APE, NVENC, VIC_FREQ, IRAM, lfb, MTS...) are ignored, so a new
    engine in a future JetPack cannot break parsing.
    """
    ram = _RAM_RE.search(line)
    cores = _cpu_cores(line)
    gpu = _GPU_RE.search(line)
    return TelemetrySample(
        timestamp=timestamp,
        source="tegrastats",
        ram_used_mb=float(ram[1]) if ram else None,
        ram_total_mb=float(ram[2]) if ram else None,
        cpu_percent=sum(cores) / len(cores) if cores else None,
        cpu_core_percent=cores,
        gpu_percent=float(gpu[1]) if gpu else None,
        temperatures_c=_temperatures(line),
        power_mw={name: float(now) for name, now, _avg in _RAIL_RE.findall(line)},
    )


def _has_data(sample: TelemetrySample) -> bool:
    """False for lines that carried nothing we parse (warnings tegrastats prints, blank lines)."""
    return bool(
        sample.ram_total_mb is not None
        or sample.cpu_core_percent
        or sample.gpu_percent is not None
        or sample.temperatures_c
        or sample.power_mw
    )


# --------------------------------------------------------------------------- procfs samples


class CpuTimes(Protocol):
    """One core's cumulative times, as ``psutil.cpu_times(percpu=True)`` returns them."""

    def _asdict(self) -> dict[str, float]: ...


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class _StatTimes:
    """One ``cpuN`` line of ``/proc/stat``: the same fields, in the same order, as psutil's per-core times."""

    __slots__ = ("_ticks",)

    def __init__(self, ticks: dict[str, float]) -> None:
        self._ticks = ticks

    def _asdict(self) -> dict[str, float]:
        return dict(self._ticks)


def _proc_cpu_times(root: Path = Path("/")) -> Sequence[CpuTimes]:
    """Per-core cumulative times from ``/proc/stat`` (psutil reads the same file; importing it costs ~1 MiB)."""
    text = _read_text(root / "proc/stat")
    if text is None:  # not Linux: psutil knows the platform's own call
        import psutil

        return psutil.cpu_times(percpu=True)
    cores: list[CpuTimes] = []
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            cores.append(_StatTimes(dict(zip(_STAT_FIELDS, map(float, rest.split())))))
    return cores


def _busy_percent(before: CpuTimes, after: CpuTimes) -> float:
    """Busy share of one core between two readings, the way ``top`` and psutil count it."""
    a, b = before._asdict(), after._asdict()
    counted = [k for k in b if k not in ("guest", "guest_nice")]  # Linux already counts guest time in user/nice
    total = sum(b[k] - a.get(k, 0.0) for k in counted)
    idle = sum(b.get(k, 0.0) - a.get(k, 0.0) for k in ("idle", "iowait"))
    if total <= 0:
        return 0.0
    return round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 1)


class CpuMeter:
    """Per-core load between consecutive ``read()`` calls.

    Load is a rate, so it needs two readings. ``psutil.cpu_percent(interval=None)``
    keeps that state in one process-wide slot (any other caller shifts our
    interval) and returns zeros on its first call; each meter keeps its own
    previous reading instead, and its first ``read()`` measures over a short
    ``prime_s`` window so a one-shot sample (``jetfleet-agent info``) is real.
    """

    def __init__(self, read_times: Callable[[], Sequence[CpuTimes]] = _proc_cpu_times, prime_s: float = 0.1) -> None:
        self._read_times = read_times
        self._prime_s = prime_s
        self._last: Sequence[CpuTimes] | None = None
        self._lock = threading.Lock()

    def read(self) -> tuple[float, ...]:
        with self._lock:
            if self._last is None:
                self._last = self._read_times()
                time.sleep(self._prime_s)
            now = self._read_times()
            load = tuple(_busy_percent(a, b) for a, b in zip(self._last, now))
            self._last = now
            return load


_DEFAULT_METER = CpuMeter()


def _ram_mb(root: Path) -> tuple[float, float]:
    """(used, total) MB where used = total - available: what the kernel could not hand to a new job."""
    info = read_meminfo(root)
    if "MemTotal" in info:
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0))
        return (info["MemTotal"] - available) / 1024, info["MemTotal"] / 1024
    import psutil  # not Linux: /proc/meminfo is the answer everywhere else we run

    vm = psutil.virtual_memory()
    return (vm.total - vm.available) / 2**20, vm.total / 2**20


def _zone_number(path: Path) -> int:
    digits = re.sub(r"\D", "", path.name)
    return int(digits) if digits else -1


def read_thermal_zones(root: Path = Path("/")) -> dict[str, float]:
    """°C per ``/sys/class/thermal`` zone (millidegrees on disk); duplicate types get ``-1``, ``-2``..."""
    temps: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*"), key=_zone_number):
        name, raw = _read_text(zone / "type"), _read_text(zone / "temp")
        try:
            value = int((raw or "").strip()) / 1000
        except ValueError:
            continue  # unreadable or absent (some zones EINVAL while their sensor sleeps)
        key = _temperature_key(name or zone.name)
        if key is None or value <= OFF_SENSOR_C:
            continue
        unique, n = key, 1
        while unique in temps:
            unique, n = f"{key}-{n}", n + 1
        temps[unique] = value
    return temps


def read_hwmon_power(root: Path = Path("/")) -> dict[str, float]:
    """mW from ``/sys/class/hwmon/*/power*_input`` (µW on disk): RAPL-less boards, some GPUs, INA sensors."""
    power: dict[str, float] = {}
    for path in sorted((root / "sys/class/hwmon").glob("hwmon*/power*_input")):
        raw = _read_text(path)
        try:
            microwatts = int((raw or "").strip())
        except ValueError:
            continue
        channel = path.name[: -len("_input")]  # the glob guarantees the suffix (str.removesuffix is 3.9+)
        label = (_read_text(path.with_name(f"{channel}_label")) or "").strip()
        chip = (_read_text(path.parent / "name") or path.parent.name).strip()
        power[label or f"{chip}/{channel}"] = microwatts / 1000
    return power


def sample_procfs(root: Path = Path("/"), meter: CpuMeter | None = None, now: float | None = None) -> TelemetrySample:
    """One sample from ``/proc``, ``/sys`` and psutil, for machines without tegrastats.

    GPU load is None: a CPU box has none, and a workstation GPU's load belongs
    to NVML, which the agent does not depend on.
    """
    used, total = _ram_mb(root)
    cores = (meter or _DEFAULT_METER).read()
    return TelemetrySample(
        timestamp=time.time() if now is None else now,
        source="procfs",
        ram_used_mb=round(used, 1),
        ram_total_mb=round(total, 1),
        cpu_percent=round(sum(cores) / len(cores), 1) if cores else None,
        cpu_core_percent=cores,
        gpu_percent=None,
        temperatures_c=read_thermal_zones(root),
        power_mw=read_hwmon_power(root),
    )


# --------------------------------------------------------------------------- background samplers


class SampleBuffer:
    """Thread-safe ring of recent samples: the newest answers ``latest()``, a job's window ``since()``."""

    def __init__(self, maxlen: int = DEFAULT_HISTORY) -> None:
        self._samples: deque[TelemetrySample] = deque(maxlen=maxlen)
        self._changed = threading.Condition()

    def append(self, sample: TelemetrySample) -> None:
        with self._changed:
            self._samples.append(sample)
            self._changed.notify_all()

    def latest(self) -> TelemetrySample | None:
        with self._changed:
            return self._samples[-1] if self._samples else None

    def since(self, t: float) -> list[TelemetrySample]:
        with self._changed:
            return [s for s in self._samples if s.timestamp >= t]

    def wait(self, timeout_s: float) -> TelemetrySample | None:
        """The newest sample, waiting up to ``timeout_s`` for a first one."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._samples), timeout_s)
            return self._samples[-1] if self._samples else None


class Sampler(Protocol):
    """A background source that writes into a ``SampleBuffer`` until closed."""

    source: str

    def close(self) -> None: ...


class ProcfsSampler:
    """Calls ``sample_procfs`` every ``interval_s`` on a daemon thread (an Event wait, not a spin)."""

    source = "procfs"

    def __init__(self, buffer: SampleBuffer, root: Path = Path("/"), interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._buffer, self._root, self._interval_s = buffer, root, interval_s
        self._meter = CpuMeter(prime_s=min(0.1, interval_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jetfleet-telemetry-procfs", daemon=True)
        self._warned = False

    def start(self) -> ProcfsSampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._buffer.append(sample_procfs(self._root, self._meter))
            except Exception:  # one bad read (a vanished hwmon device) must not end telemetry
                if not self._warned:
                    logger.warning("procfs telemetry sample failed; will keep trying", exc_info=True)
                    self._warned = True
            self._stop.wait(self._interval_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` and parses each line it prints, on a daemon thread.

    One long-running process rather than one per sample: tegrastats averages
    over its interval, and starting it costs more than reading it. When the
    process exits on its own, ``on_exit`` (given its return code) lets the
    owner fall back to another source.
    """

    source = "tegrastats"

    def __init__(
        self,
        buffer: SampleBuffer,
        executable: str = "tegrastats",
        interval_s: float = DEFAULT_INTERVAL_S,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._buffer, self._executable, self._interval_s, self._on_exit = buffer, executable, interval_s, on_exit
        self._closing = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._loop, name="jetfleet-telemetry-tegrastats", daemon=True)

    def start(self) -> TegrastatsSampler:
        """Start the process; raises OSError when it cannot be executed."""
        interval_ms = str(max(1, round(self._interval_s * 1000)))
        self._proc = subprocess.Popen(
            [self._executable, "--interval", interval_ms],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._thread.start()
        return self

    def _loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            sample = parse_tegrastats(line, time.time())
            if _has_data(sample):
                self._buffer.append(sample)
        proc.stdout.close()
        code = proc.wait()
        if not self._closing.is_set():
            logger.warning("tegrastats exited with status %s; telemetry falls back to /proc and /sys", code)
            if self._on_exit is not None:
                self._on_exit(code)

    def close(self, timeout_s: float = 3.0) -> None:
        """Terminate the process (kill if it ignores SIGTERM), reap it, and join the reader."""
        self._closing.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)


class Telemetry:
    """The agent's one telemetry handle: a background sampler plus the recent history it wrote.

    Start it once (``Telemetry.start()``), read ``latest()`` for heartbeats and
    ``since(job_start)`` for a job's report, ``close()`` on shutdown. It is also
    a context manager.
    """

    def __init__(self, buffer: SampleBuffer, root: Path, interval_s: float) -> None:
        self._buffer, self._root, self._interval_s = buffer, root, interval_s
        self._lock = threading.Lock()
        self._sampler: Sampler | None = None
        self._closed = False

    @classmethod
    def start(
        cls,
        root: Path = Path("/"),
        interval_s: float = DEFAULT_INTERVAL_S,
        history: int = DEFAULT_HISTORY,
    ) -> Telemetry:
        """tegrastats on a Jetson that has it on PATH, else (or if it will not start) /proc and /sys."""
        telemetry = cls(SampleBuffer(history), root, interval_s)
        executable = shutil.which("tegrastats")
        if executable and is_jetson(root):
            telemetry._start_tegrastats(executable)
        else:
            telemetry._start_procfs()
        return telemetry

    def _start_tegrastats(self, executable: str) -> None:
        sampler = TegrastatsSampler(self._buffer, executable, self._interval_s, on_exit=self._fall_back)
        try:
            self._sampler = sampler.start()
        except OSError as exc:
            logger.warning("cannot run %s (%s); telemetry uses /proc and /sys", executable, exc)
            self._start_procfs()

    def _start_procfs(self) -> None:
        self._sampler = ProcfsSampler(self._buffer, self._root, self._interval_s).start()

    def _fall_back(self, _code: int) -> None:
        with self._lock:
            if not self._closed:
                self._start_procfs()

    @property
    def source(self) -> str:
        """Which sampler is running now ("tegrastats" or "procfs")."""
        sampler = self._sampler
        return sampler.source if sampler is not None else "procfs"

    def latest(self) -> TelemetrySample:
        """The newest sample; before the first one arrives, an empty sample (every field "not measured")."""
        return self._buffer.latest() or TelemetrySample(timestamp=time.time(), source=self.source)

    def wait(self, timeout_s: float = 5.0) -> TelemetrySample:
        """Like ``latest()``, but waits up to ``timeout_s`` for a first real sample (CLI one-shots)."""
        return self._buffer.wait(timeout_s) or self.latest()

    def since(self, t: float) -> list[TelemetrySample]:
        """Samples taken at or after ``t`` (``time.time()`` clock), oldest first, within the kept history."""
        return self._buffer.since(t)

    def close(self) -> None:
        """Stop sampling; idempotent. The lock is released before joining so a fallback cannot deadlock it."""
        with self._lock:
            self._closed = True
            sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.close()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- `jetfleet-agent info`

_NA = "[dim]n/a[/dim]"


def _or_na(value: object) -> str:
    return _NA if value is None or value == "" else str(value)


def _fact_rows(info: DeviceInfo) -> list[tuple[str, str]]:
    gpu = None
    if info.gpu_name:
        gpu = info.gpu_name + (f" (compute {info.compute_capability})" if info.compute_capability else "")
    return [
        ("board", info.board),
        ("device class", info.device_class),
        ("L4T / JetPack", f"{_or_na(info.l4t_release)} / {_or_na(info.jetpack)}" if info.is_jetson else _NA),
        ("power mode", _or_na(info.power_mode)),
        ("GPU", _or_na(gpu)),
        ("CUDA", _or_na(info.cuda_version)),
        ("TensorRT", _or_na(info.tensorrt_version)),
        ("ONNX Runtime", _or_na(info.onnxruntime_version)),
        ("CPU", f"{info.cpu_model} × {info.cpu_count}"),
        ("memory", f"{info.memory_total_mb} MB"),
        ("OS / kernel", f"{info.os_release} / {info.kernel}"),
        ("Python / agent", f"{info.python} / {info.agent_version}"),
    ]


def _sample_rows(sample: TelemetrySample) -> list[tuple[str, str]]:
    ram = None
    if sample.ram_used_mb is not None and sample.ram_total_mb is not None:
        ram = f"{sample.ram_used_mb:.0f} / {sample.ram_total_mb:.0f} MB"
    cpu = None
    if sample.cpu_percent is not None:
        cores = " ".join(f"{c:.0f}" for c in sample.cpu_core_percent)
        cpu = f"{sample.cpu_percent:.0f} % (online cores: {cores})"
    temps = ", ".join(f"{k} {v:.1f} °C" for k, v in sample.temperatures_c.items())
    power = ", ".join(f"{k} {v / 1000:.2f} W" for k, v in sample.power_mw.items())
    return [
        ("RAM used", _or_na(ram)),
        ("CPU load", _or_na(cpu)),
        ("GPU load", _or_na(None if sample.gpu_percent is None else f"{sample.gpu_percent:.0f} %")),
        ("temperatures", _or_na(temps)),
        ("power", _or_na(power)),
        ("sampled by", f"{sample.source} at {time.strftime('%H:%M:%S', time.localtime(sample.timestamp))}"),
    ]


def format_info(info: DeviceInfo, sample: TelemetrySample | None = None) -> Table:
    """A two-column table of the device's facts and, when given, one telemetry sample.

    Unmeasurable fields print "n/a", never 0 (see ``jetfleet.common.device``).
    """
    from rich.table import Table  # only `info` prints it: rich stays off the serving path

    table = Table(title=f"{info.hostname} — {info.device_class}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in _fact_rows(info):
        table.add_row(name, value)
    if sample is not None:
        table.add_section()
        for name, value in _sample_rows(sample):
            table.add_row(name, value)
    return table
