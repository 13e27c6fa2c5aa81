"""``jetfleet-agent doctor``: pure checks on inputs recorded from real Jetsons, then the command for real.

Each folder under ``data/jetson/`` (see its SOURCES.md) is laid out as a
device root and read by the agent's own parsers; the checks are fed what
those parsers return. Certificates are real ones from a CA made with
``common.pki`` (so this module also runs device-only, on Python 3.8), the venv
cases use real ``pyvenv.cfg`` files, and the clock and reachability checks
run against a real controller process (marked ``controller``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from jetfleet.agent import doctor as dr
from jetfleet.agent.config import AgentConfig, MiB
from jetfleet.agent.doctor import FAIL, OK, SKIP, WARN, Check
from jetfleet.agent.engines.choose import ModuleReport
from jetfleet.agent.identity import ClockReading, store_identity
from jetfleet.agent.telemetry import (
    TensorRTBindings,
    detect_device,
    find_tensorrt_bindings,
    parse_tegrastats,
    python_env,
    read_clock_state,
)
from jetfleet.common import pki
from jetfleet.common.device import DeviceInfo
from jetfleet.proto.v1 import controller_pb2 as cpb

DATA = Path(__file__).parent / "data" / "jetson"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Board:
    folder: str
    l4t: str
    jetpack: str
    tensorrt: str
    python: str
    device_class: str
    compute: str
    power_mode: str


BOARDS = {
    b.folder: b
    for b in (
        Board("nano-r32.7.1", "R32.7.1", "4.6.1", "8.2", "3.6", "jetson-nano", "5.3", "MAXN"),
        Board("agx-orin-r35.4.1", "R35.4.1", "5.1.2", "8.5", "3.8", "jetson-agx-orin", "8.7", "MODE_30W"),
        Board("orin-nx-r36.4.4", "R36.4.4", "6.2.1", "10.3", "3.10", "jetson-orin-nx", "8.7", "MAXN_SUPER"),
        Board("agx-thor-r38.2.0", "R38.2.0", "7.0", "10.13", "3.12", "jetson-agx-thor", "11.0", "MAXN"),
    )
}
SUPPORTED = [name for name, b in BOARDS.items() if b.python != "3.6"]  # JetPack 5 and later: TensorRT from 3.8+


def recorded(folder: str, name: str) -> str | None:
    path = DATA / folder / name
    return path.read_text(encoding="utf-8") if path.exists() else None


def board_root(tmp_path: Path, folder: str) -> Path:
    """The recorded files where a Jetson keeps them."""
    root = tmp_path / folder
    for name, where in (("nv_tegra_release", "etc/nv_tegra_release"), ("model", "proc/device-tree/model")):
        target = root / where
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / folder / name, target)
    return root


def board_commands(folder: str, clocks: str = "jetson_clocks-show.txt"):
    """Answers ``nvpmodel -q`` and ``jetson_clocks --show`` with what the board printed; nothing else runs."""
    answers = {"nvpmodel": recorded(folder, "nvpmodel-q.txt"), "jetson_clocks": recorded(folder, clocks)}
    return lambda cmd: answers.get(cmd[0])


def board_device(tmp_path: Path, folder: str) -> DeviceInfo:
    return detect_device(
        "0.1.0", root=board_root(tmp_path, folder), run=board_commands(folder), module_version=lambda m: None
    )


def venv(tmp_path: Path, system_site: bool, version: str = "3.10.12") -> object:
    """A venv's prefix with a real pyvenv.cfg, described as python_env() describes the running one."""
    prefix = tmp_path / "venv"
    prefix.mkdir(exist_ok=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = {'true' if system_site else 'false'}\nversion = {version}\n"
    )
    return python_env(prefix=str(prefix), base_prefix="/usr", executable=str(prefix / "bin/python3"), version=version)


def jetpack_bindings(tmp_path: Path, python: str) -> list[TensorRTBindings]:
    """JetPack's tensorrt package laid out as python3-libnvinfer installs it, found by the agent's own search."""
    folder = tmp_path / "sys-root" / f"usr/lib/python{python}/dist-packages/tensorrt"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / "tensorrt.so").write_bytes(b"")
    return find_tensorrt_bindings(tmp_path / "sys-root")


@pytest.fixture(scope="module")
def ca() -> tuple[object, bytes]:
    """A fleet CA as `jetfleet certs init` makes one (key, certificate PEM)."""
    return pki.create_ca()


def enrolled(data_dir: Path, name: str, ca: tuple[object, bytes]) -> None:
    """The identity `jetfleet-agent enroll` stores, issued by ``ca`` without the token round trip."""
    ca_key, ca_pem = ca
    key = pki.new_private_key()
    identity = pki.Identity("device", name)
    cert = pki.issue_certificate(ca_key, ca_pem, key.public_key(), identity, dns_names=[name], server=True)  # type: ignore[arg-type]
    manifest_key = pki.public_key_pem(pki.new_signing_key().public_key())
    reply = cpb.EnrollResponse(certificate_pem=cert, ca_pem=ca_pem, manifest_public_key_pem=manifest_key)
    store_identity(data_dir / "identity", identity, key, reply, "written by a test")


NO_TRT = ModuleReport("tensorrt", error="ModuleNotFoundError: No module named 'tensorrt'")


# --------------------------------------------------------------------------- L4T, JetPack and what they ship


@pytest.mark.parametrize("folder", sorted(BOARDS))
def test_recorded_board_is_read_and_its_tensorrt_named(tmp_path: Path, folder: str) -> None:
    board = BOARDS[folder]
    device = board_device(tmp_path, folder)
    assert (device.l4t_release, device.jetpack, device.device_class) == (board.l4t, board.jetpack, board.device_class)
    release = dr.release_for(device.l4t_release)
    assert release is not None and (release.tensorrt, release.python) == (board.tensorrt, board.python)
    check = dr.check_jetpack(device, release)
    assert f"TensorRT {board.tensorrt} for Python {board.python}" in check.detail
    assert check.status == (WARN if board.python == "3.6" else OK)


def test_jetpack_4_says_the_agent_cannot_use_its_tensorrt(tmp_path: Path) -> None:
    device = board_device(tmp_path, "nano-r32.7.1")
    release = dr.release_for(device.l4t_release)
    jetpack = dr.check_jetpack(device, release)
    assert "Nano, TX1 and TX2 stop at JetPack 4.6" in jetpack.fix and "onnxruntime" in jetpack.fix
    env = python_env(version="3.8.18")
    trt = dr.check_tensorrt(NO_TRT, env, jetpack_bindings(tmp_path, "3.6"), release, device, wanted=True)
    assert trt.status == FAIL and "Python 3.6 only" in trt.detail and 'backends = ["onnxruntime"]' in trt.fix


@pytest.mark.parametrize(
    ("l4t", "tensorrt"),
    [("R35.3.1", "8.5"), ("R35.5.0", "8.5"), ("R35.6.1", "8.5"), ("R36.2.0", "8.6"), ("R36.3.0", "8.6"),
     ("R36.4.0", "10.3"), ("R36.4.3", "10.3"), ("R38.4.0", "10.13"), ("R32.7.6", "8.2")],
)  # fmt: skip
def test_release_table(l4t: str, tensorrt: str) -> None:
    release = dr.release_for(l4t)
    assert release is not None and release.tensorrt == tensorrt


def test_an_unknown_release_is_reported_not_guessed(tmp_path: Path) -> None:
    device = board_device(tmp_path, "orin-nx-r36.4.4")
    newer = DeviceInfo(**{**device.to_dict(), "l4t_release": "R39.2.0", "jetpack": None})
    assert dr.release_for("R39.2.0") is None
    check = dr.check_jetpack(newer, None)
    assert check.status == WARN and "R39.2.0" in check.detail and "not checked" in check.detail


# --------------------------------------------------------------------------- TensorRT


@pytest.mark.parametrize("folder", SUPPORTED)
def test_tensorrt_of_the_expected_version_is_ok(tmp_path: Path, folder: str) -> None:
    board = BOARDS[folder]
    device = board_device(tmp_path, folder)
    trt = ModuleReport("tensorrt", f"{board.tensorrt}.0.1", f"/usr/lib/python{board.python}/dist-packages/tensorrt")
    env = venv(tmp_path, system_site=True, version=f"{board.python}.1")
    check = dr.check_tensorrt(trt, env, [], dr.release_for(board.l4t), device, wanted=True)
    assert check.status == OK and f"as JetPack {board.jetpack[0]} ships" in check.detail


@pytest.mark.parametrize("folder", SUPPORTED)
def test_a_mismatched_tensorrt_fails_and_names_the_fix(tmp_path: Path, folder: str) -> None:
    board = BOARDS[folder]
    device = board_device(tmp_path, folder)
    env = venv(tmp_path, system_site=True, version=f"{board.python}.1")
    wrong = "8.6.1" if board.tensorrt != "8.6" else "10.3.0"
    wheel = ModuleReport("tensorrt", wrong, f"{env.prefix}/lib/python{board.python}/site-packages/tensorrt")
    check = dr.check_tensorrt(wheel, env, [], dr.release_for(board.l4t), device, wanted=True)
    assert check.status == FAIL
    assert f"TensorRT {wrong}" in check.detail and f"ships {board.tensorrt}" in check.detail
    assert f"{env.prefix}/bin/pip uninstall -y tensorrt" in check.fix and "python3-libnvinfer" in check.fix
    system = ModuleReport("tensorrt", wrong, f"/usr/lib/python{board.python}/dist-packages/tensorrt")
    assert "apt install --reinstall" in dr.check_tensorrt(system, env, [], dr.release_for(board.l4t), device, True).fix


def test_a_venv_without_system_site_packages_cannot_see_jetpacks_tensorrt(tmp_path: Path) -> None:
    device = board_device(tmp_path, "orin-nx-r36.4.4")
    release = dr.release_for(device.l4t_release)
    bindings = jetpack_bindings(tmp_path, "3.10")
    assert [(b.path, b.python) for b in bindings] == [("/usr/lib/python3.10/dist-packages/tensorrt", "3.10")]
    env = venv(tmp_path, system_site=False)
    check = dr.check_tensorrt(NO_TRT, env, bindings, release, device, wanted=True)
    assert check.status == FAIL
    assert f"the venv {env.prefix} was created without --system-site-packages" in check.detail
    assert f"include-system-site-packages = true in {env.prefix}/pyvenv.cfg" in check.fix
    assert f"/usr/bin/python3.10 -m venv --system-site-packages {env.prefix}" in check.fix


def test_a_venv_on_another_python_than_jetpacks_is_named(tmp_path: Path) -> None:
    device = board_device(tmp_path, "orin-nx-r36.4.4")
    release = dr.release_for(device.l4t_release)
    env = venv(tmp_path, system_site=True, version="3.11.7")
    check = dr.check_tensorrt(NO_TRT, env, jetpack_bindings(tmp_path, "3.10"), release, device, wanted=True)
    assert check.status == FAIL and "built for Python 3.10, but this is Python 3.11" in check.detail
    assert "recreate the venv with the system Python: /usr/bin/python3.10 -m venv --system-site-packages" in check.fix
    python = dr.check_python(env, release, {})
    assert python.status == WARN and "system Python is 3.10" in python.detail


def test_visible_bindings_that_fail_to_import_and_missing_bindings(tmp_path: Path) -> None:
    device = board_device(tmp_path, "agx-orin-r35.4.1")
    release = dr.release_for(device.l4t_release)
    env = venv(tmp_path, system_site=True, version="3.8.10")
    broken = ModuleReport("tensorrt", error="ImportError: libnvinfer.so.8: cannot open shared object file")
    check = dr.check_tensorrt(broken, env, jetpack_bindings(tmp_path, "3.8"), release, device, wanted=True)
    assert check.status == FAIL and "libnvinfer.so.8" in check.detail and "--reinstall python3-libnvinfer" in check.fix
    none = dr.check_tensorrt(NO_TRT, env, [], release, device, wanted=True)
    assert none.status == FAIL and "not installed" in none.detail and "sudo apt install python3-libnvinfer" in none.fix
    assert dr.check_tensorrt(NO_TRT, env, [], release, device, wanted=False).status == SKIP


def test_bindings_in_the_unversioned_folder_are_dated_by_their_abi_tag(tmp_path: Path) -> None:
    folder = tmp_path / "usr/lib/python3/dist-packages/tensorrt"
    folder.mkdir(parents=True)
    (folder / "tensorrt.cpython-312-aarch64-linux-gnu.so").write_bytes(b"")
    assert find_tensorrt_bindings(tmp_path) == [TensorRTBindings("/usr/lib/python3/dist-packages/tensorrt", "3.12")]


# --------------------------------------------------------------------------- CUDA, ONNX Runtime, power, clocks


@pytest.mark.parametrize("folder", sorted(BOARDS))
def test_cuda_reports_compute_capability_and_shared_memory(tmp_path: Path, folder: str) -> None:
    device = board_device(tmp_path, folder)
    sample = parse_tegrastats(recorded(folder, "tegrastats.txt") or "", 0.0)
    assert sample.ram_total_mb and sample.ram_used_mb is not None
    total = int(sample.ram_total_mb * MiB)
    memory = (total - int(sample.ram_used_mb * MiB), total)
    ok = dr.check_cuda(device, True, "1 CUDA device(s), runtime 12.6", memory)
    assert ok.status == OK and f"compute capability {BOARDS[folder].compute}" in ok.detail
    assert "(shared with the CPU)" in ok.detail
    down = dr.check_cuda(device, False, "cudaGetDeviceCount failed: no CUDA-capable device is detected", None)
    assert down.status == FAIL and "no CUDA-capable device" in down.detail and "video,render" in down.fix


@pytest.mark.parametrize(
    ("folder", "index"),
    [
        ("agx-orin-r35.4.1", "elinux.org/Jetson_Zoo"),
        ("orin-nx-r36.4.4", "jp6/cu126"),
        ("agx-thor-r38.2.0", "sbsa/cu130"),
    ],
)
def test_cpu_only_onnxruntime_on_a_jetson_names_nvidias_wheel(tmp_path: Path, folder: str, index: str) -> None:
    device = board_device(tmp_path, folder)
    release = dr.release_for(device.l4t_release)
    ort = ModuleReport("onnxruntime", "1.19.2", "/opt/jetfleet/lib/site-packages/onnxruntime")
    cpu_only = dr.check_onnxruntime(ort, ("CPUExecutionProvider",), device, release, tensorrt_usable=False)
    assert cpu_only.status == WARN and index in cpu_only.fix and "pip uninstall -y onnxruntime" in cpu_only.fix
    assert dr.check_onnxruntime(ort, ("CPUExecutionProvider",), device, release, tensorrt_usable=True).status == OK
    gpu = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert dr.check_onnxruntime(ort, gpu, device, release, tensorrt_usable=False).status == OK
    missing = dr.check_onnxruntime(ModuleReport("onnxruntime", error="ModuleNotFoundError"), (), device, release, False)
    assert missing.status == FAIL and index in missing.fix


@pytest.mark.parametrize("folder", sorted(BOARDS))
def test_power_mode_is_read_from_nvpmodel(tmp_path: Path, folder: str) -> None:
    check = dr.check_power_mode(board_device(tmp_path, folder))
    assert check == Check("power mode", OK, f"{BOARDS[folder].power_mode} (nvpmodel -q)")


@pytest.mark.parametrize(
    ("folder", "clocks", "status", "detail"),
    [
        ("nano-r32.7.1", "jetson_clocks-show.txt", WARN, "GPU 77-922 MHz, 4 CPUs 102-1428 MHz"),
        ("agx-orin-r35.4.1", "jetson_clocks-show.txt", WARN, "GPU 306-612 MHz, 8 CPUs 730-1728 MHz"),
        ("agx-orin-r35.4.1", "jetson_clocks-show-locked.txt", OK, "GPU 612-612 MHz, 8 CPUs 1728-1728 MHz"),
        ("orin-nx-r36.4.4", "jetson_clocks-show.txt", WARN, "GPU 306-625 MHz, 6 CPUs 730-1510 MHz"),
    ],
)
def test_jetson_clocks_state_from_recorded_output(
    tmp_path: Path, folder: str, clocks: str, status: str, detail: str
) -> None:
    root = board_root(tmp_path, folder)
    state = read_clock_state(root, board_commands(folder, clocks))
    assert state is not None and state.source == "jetson_clocks --show" and state.detail == detail
    check = dr.check_clocks(board_device(tmp_path, folder), state)
    assert check.status == status
    assert ("sudo jetson_clocks" in check.fix) == (status == WARN)


def test_clocks_from_sysfs_when_jetson_clocks_needs_root(tmp_path: Path) -> None:
    root = board_root(tmp_path, "orin-nx-r36.4.4")
    gpu = root / "sys/class/devfreq/17000000.gpu"
    gpu.mkdir(parents=True)
    for cpu in range(2):
        freq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_min_freq").write_text("1510400\n")
        (freq / "scaling_max_freq").write_text("1510400\n")
    (gpu / "min_freq").write_text("306000000\n")
    (gpu / "max_freq").write_text("624750000\n")
    not_root = lambda cmd: None  # noqa: E731 - `jetson_clocks --show` refuses without root
    state = read_clock_state(root, not_root)
    assert state is not None and (state.locked, state.source) == (False, "sysfs")
    (gpu / "min_freq").write_text("624750000\n")
    assert read_clock_state(root, not_root).locked is True  # type: ignore[union-attr]


# --------------------------------------------------------------------------- disk


def test_disk_floor_and_quota() -> None:
    gib = 1024**3
    ok = dr.check_disk(Path("/var/lib/jetfleet-agent"), 20 * gib, 1 * gib, 8 * gib, 512 * MiB)
    assert ok.status == OK and "20.0 GiB free" in ok.detail
    tight = dr.check_disk(Path("/var/lib/jetfleet-agent"), 4 * gib, 1 * gib, 8 * gib, 512 * MiB)
    assert tight.status == WARN and 'max_store_bytes = "4608MiB"' in tight.fix
    full = dr.check_disk(Path("/var/lib/jetfleet-agent"), 256 * MiB, 0, 8 * gib, 512 * MiB)
    assert full.status == FAIL and "refuses every upload" in full.detail and 'min_free_bytes = "512MiB"' in full.fix


def test_disk_is_measured_under_the_data_folder(tmp_path: Path) -> None:
    small = AgentConfig(data_dir=tmp_path / "not-yet", max_store_bytes=MiB, min_free_bytes=0)
    assert dr.gather_disk(small).status == OK
    impossible = AgentConfig(data_dir=tmp_path, min_free_bytes="1000TiB")
    assert dr.gather_disk(impossible).status == FAIL


# --------------------------------------------------------------------------- identity and certificate


def test_identity_checks_on_a_real_certificate(tmp_path: Path, ca: tuple[object, bytes]) -> None:
    enrolled(tmp_path, "jetson-05", ca)
    facts = dr.identity_facts(tmp_path)
    assert facts.enrolled and facts.name == "jetson-05" and facts.chain_error is None
    assert facts.not_before is not None and facts.not_after is not None
    now = time.time()
    assert dr.check_identity(facts, "jetson-05", False, now).status == OK
    near = dr.check_identity(facts, "jetson-05", False, facts.not_after - 10 * 86400)
    assert near.status == WARN and "10 days from now" in near.detail and "jetfleet-agent enroll" in near.fix
    expired = dr.check_identity(facts, "jetson-05", False, facts.not_after + 3600)
    assert (
        expired.status == FAIL
        and "expired" in expired.detail
        and "jetfleet devices enroll --name jetson-05" in expired.fix
    )
    early = dr.check_identity(facts, "jetson-05", False, facts.not_before - 3600)
    assert early.status == FAIL and "clock is behind" in early.detail and "timedatectl" in early.fix
    renamed = dr.check_identity(facts, "jetson-06", False, now)
    assert renamed.status == FAIL and "enrolled as 'jetson-05'" in renamed.detail


def test_identity_not_enrolled_or_damaged(tmp_path: Path, ca: tuple[object, bytes]) -> None:
    fresh = dr.check_identity(dr.identity_facts(tmp_path), "jetson-05", False, time.time())
    assert fresh.status == WARN and "not enrolled yet" in fresh.detail and "jetfleet-agent enroll" in fresh.fix
    enrolled(tmp_path, "jetson-05", ca)
    (tmp_path / "identity" / "agent.pem").unlink()
    damaged = dr.check_identity(dr.identity_facts(tmp_path), "jetson-05", False, time.time())
    assert damaged.status == FAIL and "incomplete" in damaged.detail and damaged.fix == "enroll again"


def test_a_certificate_from_another_ca_fails(tmp_path: Path, ca: tuple[object, bytes]) -> None:
    enrolled(tmp_path, "jetson-05", pki.create_ca())
    pki.write_secret(tmp_path / "identity" / "ca.pem", ca[1])  # a CA that did not sign it
    check = dr.check_identity(dr.identity_facts(tmp_path), "jetson-05", False, time.time())
    assert check.status == FAIL and "signature does not verify against CA" in check.detail


def test_serve_preflight_refuses_a_dead_certificate_and_warns_before_it_dies(
    tmp_path: Path, ca: tuple[object, bytes]
) -> None:
    from jetfleet.common.errors import JetfleetError

    enrolled(tmp_path, "jetson-07", ca)
    config = AgentConfig(name="jetson-07", data_dir=tmp_path, backends=("onnxruntime",))
    facts = dr.identity_facts(tmp_path)
    assert facts.not_after is not None
    assert dr.serve_preflight(config) == []
    (warning,) = dr.serve_preflight(config, now=facts.not_after - 5 * 86400)
    assert "5 days from now" in warning and "jetfleet-agent enroll" in warning
    with pytest.raises(JetfleetError, match="the device certificate expired at") as excinfo:
        dr.serve_preflight(config, now=facts.not_after + 60)
    assert "jetfleet devices enroll --name jetson-07" in str(excinfo.value)


def test_serve_preflight_refuses_tensorrt_only_where_it_cannot_run(tmp_path: Path) -> None:
    from jetfleet.agent.engines.tensorrt import tensorrt_available
    from jetfleet.common.errors import JetfleetError

    config = AgentConfig(name="jetson-07", data_dir=tmp_path, backends=("tensorrt",), insecure=True)
    if tensorrt_available()[0]:
        assert dr.serve_preflight(config) == []
        return
    with pytest.raises(JetfleetError, match=r"backend tensorrt \(the only one configured\) is unusable"):
        dr.serve_preflight(config)
    assert dr.serve_preflight(AgentConfig(data_dir=tmp_path, backends=("tensorrt", "onnxruntime"), insecure=True)) == []


def test_enrollment_pins_the_ca_with_or_without_the_sha256_prefix(tmp_path: Path, ca: tuple[object, bytes]) -> None:
    import hashlib

    from jetfleet.agent.identity import enroll
    from jetfleet.common.errors import JetfleetError

    digest = hashlib.sha256(ca[1]).hexdigest()
    with pytest.raises(JetfleetError, match="the CA file has sha256"):
        enroll(tmp_path, "jetson-05", "127.0.0.1:1", "tok", ca[1], "sha256:" + "0" * 64, timeout=1)
    for pin in (digest, "SHA256:" + digest.upper()):  # accepted: the call goes out (and finds nobody listening)
        with pytest.raises(JetfleetError, match=r"enrollment at 127\.0\.0\.1:1 failed"):
            enroll(tmp_path, "jetson-05", "127.0.0.1:1", "tok", ca[1], pin, timeout=1)


# --------------------------------------------------------------------------- clock skew


def test_skew_thresholds_come_from_the_manifest_rules() -> None:
    assert dr._manifest_windows() == (3600.0, 300.0)


@pytest.mark.parametrize(
    ("controller_minus_device", "status", "words"),
    [
        (0.2, OK, "0.200 s"),
        (-2.0, OK, "ahead of"),
        (12.0, WARN, "behind"),
        (-900.0, WARN, "ahead of"),
        (200.0, FAIL, "not yet valid beyond 300 s"),
        (-2000.0, FAIL, "expires here after 27 min"),
    ],
)
def test_clock_skew(controller_minus_device: float, status: str, words: str) -> None:
    sent = 1_000_000.0
    reading = ClockReading(sent, sent + 0.04, sent + 0.02 + controller_minus_device)
    assert reading.skew_s == pytest.approx(controller_minus_device)
    check = dr.check_clock_skew(reading)
    assert check.status == status and words in check.detail and "±20 ms" in check.detail
    assert ("timedatectl set-ntp true" in check.fix) == (status != OK)


def test_clock_skew_without_an_answer_or_a_ca() -> None:
    assert dr.check_clock_skew(None, error="connection refused").status == WARN
    assert dr.check_clock_skew(None, skip="pass --ca").status == SKIP


# --------------------------------------------------------------------------- controller and service


def test_controller_verdicts() -> None:
    assert dr.check_controller([], "jetson-01").status == SKIP
    unknown = dr.check_controller([dr.Probe("ws.lab:50050", resolve_error="Name or service not known")], "j")
    assert unknown.status == FAIL and "ws.lab does not resolve" in unknown.detail and "/etc/hosts" in unknown.fix
    tls = dr.Probe(
        "ws:50050", ("10.0.0.2",), how="mutual TLS health check", error="failed to connect: handshake failed"
    )
    assert "enroll again" in dr.check_controller([tls], "j").fix
    down = dr.Probe("ws:50050", ("10.0.0.2",), how="TCP connect", error="Connection refused", tls=False)
    assert "firewall" in dr.check_controller([down], "j").fix
    tcp = dr.Probe("ws:50050", ("10.0.0.2",), answered=True, how="TCP connect", latency_ms=3.0, tls=False)
    assert dr.check_controller([tcp], "jetson-01").status == WARN
    good = dr.Probe("ws:50050", ("10.0.0.2",), answered=True, how="mutual TLS health check", latency_ms=3.0)
    assert dr.check_controller([good], "jetson-01").status == OK


def test_probing_a_port_nothing_listens_on(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    probe = dr.probe_controller(f"127.0.0.1:{port}", AgentConfig(data_dir=tmp_path), timeout_s=2.0)
    assert not probe.answered and probe.how == "TCP connect" and probe.resolved == ("127.0.0.1",)
    assert dr.check_controller([probe], "jetson-01").status == FAIL


@pytest.mark.parametrize(
    ("shown", "status", "fix"),
    [
        ("LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nResult=success\n", OK, ""),
        ("LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=disabled\n", WARN, "enable"),
        ("LoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=enabled\n", WARN, "enable --now"),
        ("LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainStatus=1\n", FAIL, "journalctl"),
        ("LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\n", FAIL, "journalctl"),
        ("LoadState=not-found\nActiveState=inactive\nSubState=dead\n", WARN, "install-service"),
    ],
)  # fmt: skip
def test_service_state(shown: str, status: str, fix: str) -> None:
    from jetfleet.agent.systemd import unit_state

    asked: list[list[str]] = []
    state = unit_state(lambda cmd: asked.append(cmd) or shown)
    assert asked[0][:3] == ["systemctl", "show", "jetfleet-agent.service"]
    check = dr.check_service(state)
    assert check.status == status and fix in check.fix
    assert dr.check_service(unit_state(lambda cmd: None)).status == SKIP


# --------------------------------------------------------------------------- the command, for real


NAMES = ["python", "jetpack", "tensorrt", "cuda", "onnxruntime", "power mode", "clocks", "disk", "identity",
         "clock skew", "controller", "service"]  # fmt: skip


def doctor_json(*args: str | Path) -> tuple[int, dict]:
    out = subprocess.run(
        [str(BIN / "jetfleet-agent"), "doctor", "--json", *map(str, args)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def by_name(document: dict) -> dict[str, dict]:
    return {c["name"]: c for c in document["checks"]}


def test_doctor_runs_on_this_machine(tmp_path: Path) -> None:
    code, document = doctor_json("--data-dir", tmp_path / "data", "--name", "jetson-31")
    assert [c["name"] for c in document["checks"]] == NAMES
    assert all(set(c) == {"name", "status", "detail", "fix"} and c["status"] in dr.STATUSES for c in document["checks"])
    failed = [c for c in document["checks"] if c["status"] == FAIL]
    assert document["ok"] is (not failed) and code == (1 if failed else 0)
    assert document["counts"] == {s: sum(c["status"] == s for c in document["checks"]) for s in dr.STATUSES}
    checks = by_name(document)
    assert (
        checks["identity"]["status"] == WARN and "jetfleet-agent enroll --name jetson-31" in checks["identity"]["fix"]
    )
    assert checks["controller"]["status"] == SKIP and checks["python"]["detail"].startswith("Python 3.")
    text = subprocess.run(
        [str(BIN / "jetfleet-agent"), "doctor", "--data-dir", str(tmp_path / "data"), "--name", "jetson-31"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert text.returncode == code and re.search(r"^warn +identity +not enrolled yet", text.stdout, re.MULTILINE)
    assert re.search(r"^ +fix: on the controller: jetfleet devices enroll --name jetson-31", text.stdout, re.MULTILINE)


def test_doctor_exits_1_when_a_check_fails(tmp_path: Path, ca: tuple[object, bytes]) -> None:
    enrolled(tmp_path, "jetson-32", ca)
    (tmp_path / "identity" / "agent.key").unlink()
    code, document = doctor_json("--data-dir", tmp_path, "--name", "jetson-32")
    assert code == 1 and document["ok"] is False and by_name(document)["identity"]["status"] == FAIL


class Controller:
    """``jetfleet controller serve`` on loopback, with its enrollment port (the e2e tests start it the same way)."""

    def __init__(self) -> None:
        init = subprocess.run([str(BIN / "jetfleet"), "certs", "init"], capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        self.p = subprocess.Popen(
            [str(BIN / "jetfleet"), "controller", "serve", "--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.enroll = self.listen = ""
        deadline = time.monotonic() + 60
        while not self.listen:
            assert time.monotonic() < deadline and self.p.poll() is None, "the controller did not start"
            line = self.p.stderr.readline()  # type: ignore[union-attr]
            if match := re.search(r"enrollment on (\S+)", line):
                self.enroll = match[1]
            if match := re.search(r"listening on port (\d+)", line):
                self.listen = f"127.0.0.1:{match[1]}"
        self.p.stderr.close()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.mark.controller
def test_doctor_against_a_real_controller(tmp_path: Path, _private_jetfleet_home: Path) -> None:
    ca = _private_jetfleet_home / "pki" / "ca.pem"
    data = tmp_path / "data"
    controller = Controller()
    try:
        # Before enrollment: the clock over the enrollment port with --ca; the controller on TCP only.
        code, document = doctor_json(
            "--data-dir", data, "--name", "jetson-33", "--controller", controller.listen,
            "--enroll-address", controller.enroll, "--ca", ca,
        )  # fmt: skip
        checks = by_name(document)
        assert checks["clock skew"]["status"] == OK and "the controller's" in checks["clock skew"]["detail"]
        assert checks["controller"]["status"] == WARN and "TCP connect" in checks["controller"]["detail"]
        assert checks["identity"]["status"] == WARN
        token = subprocess.run(
            [str(BIN / "jetfleet"), "devices", "enroll", "--name", "jetson-33", "--json", "--controller", controller.listen],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert token.returncode == 0, token.stderr
        reply = json.loads(token.stdout)
        enrolled = subprocess.run(
            [str(BIN / "jetfleet-agent"), "enroll", "--name", "jetson-33", "--data-dir", str(data),
             "--enroll-address", reply["enroll_address"], "--token", reply["token"], "--ca", str(ca)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        # Enrolled: mutual TLS to the controller, the clock at the address enrollment recorded, no --ca.
        code, document = doctor_json("--data-dir", data, "--name", "jetson-33", "--controller", controller.listen)
        checks = by_name(document)
        assert checks["identity"]["status"] == OK and "enrolled as jetson-33" in checks["identity"]["detail"]
        assert checks["controller"]["status"] == OK and "mutual TLS health check" in checks["controller"]["detail"]
        assert checks["clock skew"]["status"] == OK
    finally:
        controller.stop()
    code, document = doctor_json("--data-dir", data, "--name", "jetson-33", "--controller", controller.listen)
    checks = by_name(document)
    assert code == 1 and checks["controller"]["status"] == FAIL and "firewall" in checks["controller"]["fix"]
    assert checks["clock skew"]["status"] == WARN and "did not answer" in checks["clock skew"]["detail"]
