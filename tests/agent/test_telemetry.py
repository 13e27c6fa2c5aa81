"""Device facts and telemetry, checked against real tegrastats lines and fake device roots.

The tegrastats lines below are copied verbatim from public test suites that
recorded them on real boards; each constant names its source. Device roots
are folders under tmp_path laid out like ``/`` on the board in question.
"""

from __future__ import annotations

import io
import json
import os
import platform
import socket
import threading
import time
from collections import namedtuple
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from jetfleet.agent import telemetry as tm
from jetfleet.common.device import DeviceInfo, TelemetrySample

DATADOG = "github.com/DataDog/datadog-agent pkg/collector/corechecks/nvidia/jetson/jetson_test.go"
WAGGLE = "github.com/waggle-sensor/jetson-exporter pkg/tegrastats/tegrastats_test.go"
LESOMNUS = "github.com/lesomnus/tegra-exporter stats/parse_test.go"

# Jetson Nano, JetPack 4 (POM_ rails as current/average without units). Source: DATADOG (nanoSample).
NANO_JP4 = "RAM 534/3964MB (lfb 98x4MB) SWAP 5/1982MB (cached 1MB) IRAM 0/252kB(lfb 252kB) CPU [16%@204,9%@204,0%@204,0%@204] EMC_FREQ 0%@204 GR3D_FREQ 0%@76 APE 25 PLL@34C CPU@36.5C PMIC@100C GPU@36C AO@39.5C thermal@36.25C POM_5V_IN 1022/1022 POM_5V_GPU 0/0 POM_5V_CPU 204/204"
# Jetson Nano, JetPack 4.6.1; current differs from average. Source: WAGGLE (TestParseTegraStatsXavierNanoJetPack461).
NANO_JP461 = "RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) IRAM 0/252kB(lfb 252kB) CPU [5%@1224,4%@1224,3%@1224,6%@1224] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@37C CPU@40C PMIC@50C GPU@40C AO@45C thermal@40C POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406"
# Jetson TX2 with two cores powered off. Source: DATADOG (tx2Sample).
TX2 = "RAM 2344/7852MB (lfb 1154x4MB) SWAP 0/3926MB (cached 0MB) CPU [1%@345,off,off,1%@345,0%@345,2%@345] EMC_FREQ 4%@1600 GR3D_FREQ 0%@624 APE 150 PLL@37.5C MCPU@37.5C PMIC@100C Tboard@32C GPU@35C BCPU@37.5C thermal@36.5C Tdiode@34.25C VDD_SYS_GPU 152/152 VDD_SYS_SOC 687/687 VDD_4V0_WIFI 0/0 VDD_IN 3056/3056 VDD_SYS_CPU 152/152 VDD_SYS_DDR 883/883"
# Jetson AGX Xavier: rails without a VDD_ prefix ("GPU 0/0 CPU 311/311"). Source: DATADOG (agXSample).
AGX_XAVIER = "RAM 721/31927MB (lfb 7291x4MB) SWAP 0/15963MB (cached 0MB) CPU [2%@1190,0%@1190,0%@1190,0%@1190,off,off,off,off] EMC_FREQ 0%@665 GR3D_FREQ 0%@318 APE 150 MTS fg 0% bg 0% AO@37.5C GPU@37.5C Tdiode@40C PMIC@100C AUX@36C CPU@37.5C thermal@36.9C Tboard@37C GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 VDDRQ 621/621 SYS5V 1482/1482"
# Jetson Xavier NX, JetPack 4, GPU busy. Source: DATADOG (xavierNxSample).
XAVIER_NX_JP4 = "RAM 4412/7772MB (lfb 237x4MB) SWAP 139/3886MB (cached 2MB) CPU [9%@1190,6%@1190,6%@1190,5%@1190,4%@1190,8%@1267] EMC_FREQ 10%@1600 GR3D_FREQ 62%@306 APE 150 MTS fg 0% bg 0% AO@41.5C GPU@43C PMIC@100C AUX@41.5C CPU@43.5C thermal@42.55C VDD_IN 4067/4067 VDD_CPU_GPU_CV 738/738 VDD_SOC 1353/1353"
# Jetson Xavier NX, JetPack 5.1.2: date prefix, mW units, GR3D_FREQ 0%@[114]. Source: WAGGLE (TestParseTegraStatsXavierNXJetPack512).
XAVIER_NX_JP512 = "07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) CPU [23%@1397,17%@1192,16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] VIC_FREQ 115 APE 150 AUX@45C CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW VDD_SOC 650mW/711mW"
# Orin, 16 GB (Orin NX), JetPack 5, 4 of 8 cores online. Source: DATADOG (voltageUnitSample).
ORIN_16GB_JP5 = "RAM 6334/15388MB (lfb 1770x4MB) SWAP 491/7694MB (cached 0MB) CPU [6%@729,9%@729,5%@729,16%@729,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@611 VIC_FREQ 729 APE 174 CV0@45.812C CPU@47.937C SOC2@46.093C SOC0@46.968C CV1@46.406C GPU@45.875C tj@48.875C SOC1@48.875C CV2@45.75C VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW VDD_SOC 1424mW/1424mW"
# AGX Orin 32 GB, L4T R36 (JetPack 6): runs of spaces, GR3D_FREQ 0%@[305,305], lower-case sensors. Source: DATADOG (r36Sample).
AGX_ORIN_R36 = "RAM 29114/30697MB (lfb 3x4MB)    SWAP 4915/15348MB (cached 1MB) CPU [3%@729,4%@729,0%@729,1%@729,0%@2201,100%@2201,1%@2201,0%@2201,100%@2201,0%@2201,0%@2201,0%@2201] EMC_FREQ 1%@2133 GR3D_FREQ 0%@[305,305] NVENC      off  NVDEC    off NVJPG off NVJPG1    off         VIC        off          OFA           off          NVDLA0    off       NVDLA1     off          PVA0_FREQ off         APE           174        cpu@53.062C soc2@48.25C soc0@48.843C  gpu@47.812C tj@53.062C soc1@48.968C    VDD_GPU_SOC 3205mW/3205mW VDD_CPU_CV 4405mW/4405mW VIN_SYS_5V0 4767mW/4767mW"
# AGX Orin 64 GB, L4T R36.4.4 (JetPack 6.2.1), NVENC busy. Source: LESOMNUS (first "5.15.148" case).
AGX_ORIN_R3644 = "05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,10%@1036] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW"
# Jetson Thor, L4T R38.4.0 (JetPack 7): "GR3D_FREQ @[0,0,0]" carries no load figure. Source: LESOMNUS (first "6.8.12" case).
THOR_R38 = "05-17-2026 10:00:32 RAM 4208/125773MB (lfb 31x4MB) SWAP 0/2048MB (cached 0MB) CPU [1%@972,0%@972,0%@972,0%@972,1%@972,0%@972,1%@972,1%@972,0%@972,0%@972,3%@972,0%@972,0%@972,1%@972] EMC_FREQ 0%@665 GR3D_FREQ @[0,0,0] NVENC0_FREQ @0 NVENC1_FREQ @0 NVDEC0_FREQ @0 NVDEC1_FREQ @0 NVJPG0_FREQ @0 VIC off OFA_FREQ @0 PVA0_FREQ off APE 300 cpu@34.468C tj@34.5C soc012@33.781C soc345@34.5C VDD_GPU 0mW/0mW VDD_CPU_SOC_MSS 4165mW/4165mW VIN_SYS_5V0 4126mW/4126mW"
# AGX Orin 64 GB with powered-down CV/GPU sensors (-256C) and an "NC" rail printed twice. Verbatim from a public
# Go tegrastats parser's TestParseTemps; the index that held it does not name its repository.
AGX_ORIN_OFF_SENSORS = "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
# AGX Orin 64 GB: bare "GR3D_FREQ 0%". Source: DATADOG (orinSample).
AGX_ORIN_64GB = "RAM 2448/62840MB (lfb 2x4MB) SWAP 0/31420MB (cached 0MB) CPU [0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201,0%@2201] GR3D_FREQ 0% cpu@42C soc2@37.843C soc0@39.187C gpu@37.75C tj@42C soc1@37.937C VDD_GPU_SOC 4940mW/4940mW VDD_CPU_CV 988mW/988mW VIN_SYS_5V0 4442mW/4442mW"

# (line, ram used, ram total, online cores, gpu %, temperatures, power)
PARSED = {
    "nano-jp4": (
        NANO_JP4,
        534,
        3964,
        (16, 9, 0, 0),
        0,
        {"pll": 34, "cpu": 36.5, "gpu": 36, "ao": 39.5, "thermal": 36.25},
        {"POM_5V_IN": 1022, "POM_5V_GPU": 0, "POM_5V_CPU": 204},
    ),
    "nano-jp4.6.1": (
        NANO_JP461,
        1923,
        3964,
        (5, 4, 3, 6),
        0,
        {"pll": 37, "cpu": 40, "gpu": 40, "ao": 45, "thermal": 40},
        {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366},
    ),
    "tx2": (
        TX2,
        2344,
        7852,
        (1, 1, 0, 2),
        0,
        {"pll": 37.5, "mcpu": 37.5, "tboard": 32, "gpu": 35, "bcpu": 37.5, "thermal": 36.5, "tdiode": 34.25},
        {
            "VDD_SYS_GPU": 152,
            "VDD_SYS_SOC": 687,
            "VDD_4V0_WIFI": 0,
            "VDD_IN": 3056,
            "VDD_SYS_CPU": 152,
            "VDD_SYS_DDR": 883,
        },
    ),
    "agx-xavier": (
        AGX_XAVIER,
        721,
        31927,
        (2, 0, 0, 0),
        0,
        {"ao": 37.5, "gpu": 37.5, "tdiode": 40, "aux": 36, "cpu": 37.5, "thermal": 36.9, "tboard": 37},
        {"GPU": 0, "CPU": 311, "SOC": 932, "CV": 0, "VDDRQ": 621, "SYS5V": 1482},
    ),
    "xavier-nx-jp4": (
        XAVIER_NX_JP4,
        4412,
        7772,
        (9, 6, 6, 5, 4, 8),
        62,
        {"ao": 41.5, "gpu": 43, "aux": 41.5, "cpu": 43.5, "thermal": 42.55},
        {"VDD_IN": 4067, "VDD_CPU_GPU_CV": 738, "VDD_SOC": 1353},
    ),
    "xavier-nx-jp5.1.2": (
        XAVIER_NX_JP512,
        3168,
        6851,
        (23, 17, 16, 13, 23, 10),
        0,
        {"aux": 45, "cpu": 46.5, "thermal": 45.6, "ao": 45, "gpu": 45.5},
        {"VDD_IN": 2763, "VDD_CPU_GPU_CV": 650, "VDD_SOC": 650},
    ),
    "orin-16gb-jp5": (
        ORIN_16GB_JP5,
        6334,
        15388,
        (6, 9, 5, 16),
        0,
        {
            "cv0": 45.812,
            "cpu": 47.937,
            "soc2": 46.093,
            "soc0": 46.968,
            "cv1": 46.406,
            "gpu": 45.875,
            "tj": 48.875,
            "soc1": 48.875,
            "cv2": 45.75,
        },
        {"VDD_IN": 5299, "VDD_CPU_GPU_CV": 773, "VDD_SOC": 1424},
    ),
    "agx-orin-r36": (
        AGX_ORIN_R36,
        29114,
        30697,
        (3, 4, 0, 1, 0, 100, 1, 0, 100, 0, 0, 0),
        0,
        {"cpu": 53.062, "soc2": 48.25, "soc0": 48.843, "gpu": 47.812, "tj": 53.062, "soc1": 48.968},
        {"VDD_GPU_SOC": 3205, "VDD_CPU_CV": 4405, "VIN_SYS_5V0": 4767},
    ),
    "agx-orin-r36.4.4": (
        AGX_ORIN_R3644,
        18207,
        62841,
        (14, 5, 8, 14, 46, 47, 2, 10, 4, 5, 6, 10),
        0,
        {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562, "soc1": 49.656},
        {"VDD_GPU_SOC": 2412, "VDD_CPU_CV": 1607, "VIN_SYS_5V0": 4707},
    ),
    "thor-r38": (
        THOR_R38,
        4208,
        125773,
        (1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 3, 0, 0, 1),
        None,
        {"cpu": 34.468, "tj": 34.5, "soc012": 33.781, "soc345": 34.5},
        {"VDD_GPU": 0, "VDD_CPU_SOC_MSS": 4165, "VIN_SYS_5V0": 4126},
    ),
    "agx-orin-off-sensors": (
        AGX_ORIN_OFF_SENSORS,
        4321,
        62801,
        (0,) * 12,
        0,
        {"cpu": 44.562, "tboard": 32, "soc2": 40.093, "tdiode": 33, "soc0": 41.093, "tj": 44.343, "soc1": 41.25},
        {"VDD_GPU_SOC": 2340, "VDD_CPU_CV": 390, "VIN_SYS_5V0": 4025, "NC": 0, "VDDQ_VDD2_1V8AO": 301},
    ),
    "agx-orin-64gb": (
        AGX_ORIN_64GB,
        2448,
        62840,
        (0,) * 12,
        0,
        {"cpu": 42, "soc2": 37.843, "soc0": 39.187, "gpu": 37.75, "tj": 42, "soc1": 37.937},
        {"VDD_GPU_SOC": 4940, "VDD_CPU_CV": 988, "VIN_SYS_5V0": 4442},
    ),
}


# --------------------------------------------------------------------------- parse_tegrastats


@pytest.mark.parametrize("board", sorted(PARSED))
def test_parse_tegrastats_real_lines(board: str) -> None:
    line, used, total, cores, gpu, temps, power = PARSED[board]
    sample = tm.parse_tegrastats(line + "\n", timestamp=123.5)
    assert sample.source == "tegrastats" and sample.timestamp == 123.5
    assert (sample.ram_used_mb, sample.ram_total_mb) == (used, total)
    assert sample.cpu_core_percent == cores
    assert sample.cpu_percent == pytest.approx(sum(cores) / len(cores))
    assert sample.gpu_percent == gpu
    assert sample.temperatures_c == temps
    assert sample.power_mw == power


def test_tegrastats_means_over_online_cores_and_keeps_busy_gpu() -> None:
    tx2 = tm.parse_tegrastats(TX2, 0.0)
    assert len(tx2.cpu_core_percent) == 4  # six cores, two "off"
    assert tx2.cpu_percent == 1.0
    orin = tm.parse_tegrastats(AGX_ORIN_R36, 0.0)
    assert orin.cpu_percent == pytest.approx(209 / 12)
    assert tm.parse_tegrastats(XAVIER_NX_JP4, 0.0).gpu_percent == 62.0


def test_tegrastats_drops_pmic_placeholder_and_powered_off_sensors() -> None:
    off = tm.parse_tegrastats(AGX_ORIN_OFF_SENSORS, 0.0).temperatures_c
    assert not {"cv0", "cv1", "cv2", "gpu"} & off.keys()  # printed as -256C: no reading, not a deep freeze
    assert "PMIC@100C" in NANO_JP4 and "pmic" not in tm.parse_tegrastats(NANO_JP4, 0.0).temperatures_c


@pytest.mark.parametrize("line", ["", "\n", "NVPM WARN: unknown line", "tegrastats: permission denied"])
def test_tegrastats_lines_without_data_leave_fields_unset(line: str) -> None:
    sample = tm.parse_tegrastats(line, 1.0)
    assert sample == TelemetrySample(timestamp=1.0, source="tegrastats")


# --------------------------------------------------------------------------- fake device roots


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def commands(outputs: dict[str, str]):
    """A ``run`` that answers by program name (plus first arg for dpkg-query's package) and records calls."""
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> str | None:
        calls.append(cmd)
        key = f"{cmd[0]} {cmd[-1]}" if cmd[0] == "dpkg-query" else cmd[0]
        return outputs.get(key)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def versions(**known: str):
    return lambda module: known.get(module)


ARM_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 62.50\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n"
    for i in range(6)
)
NANO_CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: ARMv8 Processor rev 1 (v8l)\nCPU implementer\t: 0x41\nCPU part\t: 0xd07\n\n"
    for i in range(4)
)


def host_fields() -> dict[str, object]:
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def test_detect_orin_nano_super_on_jetpack_6(tmp_path: Path) -> None:
    # The model string is the one Orin Nano Super devkits report (quoted in many public notes); the
    # nv_tegra_release line is LESOMNUS's R36.4.4 board; "compatible" and the other files are written
    # here in the kernel's format. "nvpmodel -q" prints the mode name, then its id.
    write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00")
    write(
        tmp_path,
        "proc/device-tree/compatible",
        "nvidia,p3768-0000+p3767-0005-super\x00nvidia,p3767-0005\x00nvidia,tegra234\x00",
    )
    write(
        tmp_path,
        "etc/nv_tegra_release",
        "# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64, DATE: Mon Jun 16 16:07:13 UTC 2025\n"
        "# KERNEL_VARIANT: oot\n",
    )
    write(tmp_path, "proc/cpuinfo", ARM_CPUINFO)
    write(
        tmp_path,
        "proc/meminfo",
        "MemTotal:        7802880 kB\nMemFree:         5000000 kB\nMemAvailable:    6000000 kB\n",
    )
    write(tmp_path, "etc/os-release", 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.5 LTS"\nID=ubuntu\n')
    write(tmp_path, "usr/local/cuda/version.json", json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}))
    run = commands({"nvpmodel": "NV Power Mode: MAXN_SUPER\n2\n", "dpkg-query nvidia-jetpack": "6.2.1+b38"})

    info = tm.detect_device("0.1.0", root=tmp_path, run=run, module_version=versions(tensorrt="10.3.0"))

    assert info == DeviceInfo(
        board="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        device_class="jetson-orin-nano",
        is_jetson=True,
        cpu_model="ARM Cortex-A78AE",
        memory_total_mb=7620,
        os_release="Ubuntu 22.04.5 LTS",
        agent_version="0.1.0",
        l4t_release="R36.4.4",
        jetpack="6.2.1",
        power_mode="MAXN_SUPER",
        gpu_name="Orin (Ampere)",
        compute_capability="8.7",
        cuda_version="12.6.68",
        tensorrt_version="10.3.0",
        onnxruntime_version=None,
        **host_fields(),  # type: ignore[arg-type]
    )
    assert ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"] not in run.calls


def test_detect_nano_on_jetpack_4_without_jetpack_package(tmp_path: Path) -> None:
    # The Nano's nv_tegra_release line on JetPack 4.6.1, as widely posted (t210ref board).
    write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    write(
        tmp_path,
        "etc/nv_tegra_release",
        "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n",
    )
    write(tmp_path, "proc/cpuinfo", NANO_CPUINFO)
    write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 10.2.300\n")
    run = commands({"nvpmodel": "NV Power Mode: MAXN\n0\n"})

    info = tm.detect_device("0.1.0", root=tmp_path, run=run, module_version=versions(tensorrt="8.2.1.8"))

    assert (info.device_class, info.is_jetson, info.board) == ("jetson-nano", True, "NVIDIA Jetson Nano Developer Kit")
    assert (info.l4t_release, info.jetpack, info.power_mode) == ("R32.7.1", "4.6.1", "MAXN")
    assert (info.gpu_name, info.compute_capability) == ("Tegra X1 (Maxwell)", "5.3")
    assert (info.cuda_version, info.tensorrt_version) == ("10.2.300", "8.2.1.8")
    assert info.cpu_model == "ARM Cortex-A57"


def test_detect_jetson_from_sysfs_device_tree_without_nvpmodel(tmp_path: Path) -> None:
    write(tmp_path, "sys/firmware/devicetree/base/model", "NVIDIA Jetson Xavier NX Developer Kit\x00")
    write(
        tmp_path,
        "etc/nv_tegra_release",
        "# R35 (release), REVISION: 4.1, BOARD: t186ref, EABI: aarch64\n",
    )
    info = tm.detect_device("0.1.0", root=tmp_path, run=commands({}), module_version=versions())
    assert (info.device_class, info.l4t_release, info.jetpack) == ("jetson-xavier-nx", "R35.4.1", "5.1.2")
    assert (info.power_mode, info.compute_capability, info.cuda_version) == (None, "7.2", None)


def test_l4t_release_falls_back_to_the_l4t_core_package(tmp_path: Path) -> None:
    write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    write(tmp_path, "proc/device-tree/compatible", "nvidia,p3737-0000+p3701-0005\x00nvidia,tegra234\x00")
    run = commands({"dpkg-query nvidia-l4t-core": "36.3.0-20240506102626"})
    info = tm.detect_device("0.1.0", root=tmp_path, run=run, module_version=versions())
    assert (info.device_class, info.l4t_release, info.jetpack) == ("jetson-agx-orin", "R36.3.0", "6.0")


def test_detect_workstation_with_nvidia_gpu(tmp_path: Path) -> None:
    write(
        tmp_path,
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n",
    )
    write(tmp_path, "proc/meminfo", "MemTotal:       2113536000 kB\n")
    write(tmp_path, "etc/os-release", 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    write(tmp_path, "sys/class/dmi/id/product_name", "PowerEdge XE9680\n")
    nvcc = (
        "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n"
        "Build cuda_13.0.r13.0/compiler.36424714_0\n"
    )  # a pip/conda toolkit: no /usr/local/cuda/version.json, nvcc on PATH
    run = commands({"nvidia-smi": "NVIDIA H100 80GB HBM3, 9.0\nNVIDIA H100 80GB HBM3, 9.0\n", "nvcc": nvcc})

    info = tm.detect_device("0.1.0", root=tmp_path, run=run, module_version=versions(onnxruntime="1.32.0"))

    assert info == DeviceInfo(
        board="PowerEdge XE9680",
        device_class="gpu-h100-80gb-hbm3",
        is_jetson=False,
        cpu_model="Intel(R) Xeon(R) Platinum 8480+",
        memory_total_mb=2064000,
        os_release="Ubuntu 24.04.1 LTS",
        agent_version="0.1.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        cuda_version="13.0.88",
        onnxruntime_version="1.32.0",
        **host_fields(),  # type: ignore[arg-type]
    )
    assert ["nvpmodel", "-q"] not in run.calls


def test_detect_cpu_only_machine(tmp_path: Path) -> None:
    info = tm.detect_device("0.1.0", root=tmp_path, run=commands({}), module_version=versions())
    assert info.device_class == "cpu-" + tm.slugify(platform.machine())
    assert (info.is_jetson, info.gpu_name, info.l4t_release, info.jetpack) == (False, None, None, None)
    assert info.memory_total_mb == round(psutil.virtual_memory().total / 2**20)  # no meminfo under root: psutil


@pytest.mark.parametrize(
    ("text", "slug"),
    [("x86_64", "x86_64"), ("aarch64", "aarch64"), ("GeForce RTX 4090", "geforce-rtx-4090"), (" / ", "unknown")],
)
def test_slugify_is_filename_safe(text: str, slug: str) -> None:
    assert tm.slugify(text) == slug


def test_detect_this_machine_for_real() -> None:
    info = tm.detect_device("0.1.0")
    assert not info.is_jetson
    assert info.device_class.startswith(("cpu-", "gpu-")) and info.device_class == tm.slugify(info.device_class)
    assert info.memory_total_mb > 0 and info.cpu_count == os.cpu_count()
    assert info.to_dict()["agent_version"] == "0.1.0"


@pytest.mark.parametrize(
    ("model", "compatible", "expected"),
    [
        ("NVIDIA Jetson Nano Developer Kit", (), ("jetson-nano", "5.3")),
        ("NVIDIA Jetson TX1", (), ("jetson-tx1", "5.3")),
        ("quill", (), ("jetson-tx2", "6.2")),
        ("NVIDIA Jetson TX2 NX Developer Kit", (), ("jetson-tx2-nx", "6.2")),
        ("Jetson-AGX", (), ("jetson-agx-xavier", "7.2")),
        ("NVIDIA Jetson AGX Xavier [16GB]", (), ("jetson-agx-xavier", "7.2")),
        ("NVIDIA Jetson Xavier NX Developer Kit", (), ("jetson-xavier-nx", "7.2")),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", (), ("jetson-orin-nx", "8.7")),
        ("NVIDIA Jetson Orin Nano Developer Kit", (), ("jetson-orin-nano", "8.7")),
        ("Jetson AGX Orin", (), ("jetson-agx-orin", "8.7")),
        ("NVIDIA Jetson AGX Thor Developer Kit", (), ("jetson-agx-thor", "11.0")),
        ("reComputer J4012", ("nvidia,tegra234",), ("jetson-orin", "8.7")),  # carrier renamed the board
        ("Mystery Board 9000", (), ("jetson-mystery-board-9000", None)),
    ],
)
def test_classify_jetson(model: str, compatible: tuple[str, ...], expected: tuple[str, str | None]) -> None:
    board = tm.classify_jetson(model, compatible)
    assert (board.device_class, board.compute_capability) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# R36 (release), REVISION: 4.0", "R36.4.0"),
        # the two boards LESOMNUS recorded its lines on
        (
            "# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64, DATE: Mon Jun 16 16:07:13 UTC 2025",
            "R36.4.4",
        ),
        (
            "# R38 (release), REVISION: 4.0, GCID: 43443517, BOARD: generic, EABI: aarch64, DATE: Wed Dec 31 00:15:19 UTC 2025",
            "R38.4.0",
        ),
        (
            "# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t186ref, EABI: aarch64, DATE: Wed Feb  2 21:33:23 UTC 2022",
            "R32.7.1",
        ),
        ("# R35 (release), REVISION: 1, GCID: 1", "R35.1.0"),
        ("not a release file", None),
    ],
)
def test_parse_l4t_release(text: str, expected: str | None) -> None:
    assert tm.parse_l4t_release(text) == expected


@pytest.mark.parametrize(
    ("l4t", "jetpack"),
    [
        ("R32.7.1", "4.6.1"),
        ("R35.4.1", "5.1.2"),
        ("R36.3.0", "6.0"),
        ("R36.4.0", "6.1"),
        ("R36.4.3", "6.2"),
        ("R99.0.0", None),
        (None, None),
    ],
)
def test_jetpack_for_l4t(l4t: str | None, jetpack: str | None) -> None:
    assert tm.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NV Power Mode: MAXN\n0\n", "MAXN"),
        ("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n0\n", "15W"),
        ("NVPM VERB: Current mode: NV Power Mode: 25W\n1\n", "25W"),
        ("", None),
    ],
)
def test_parse_power_mode(text: str, expected: str | None) -> None:
    assert tm.parse_power_mode(text) == expected


def test_cpu_model_names_mixed_arm_clusters() -> None:
    tx2 = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd07\n\nprocessor\t: 1\nCPU implementer\t: 0x4e\nCPU part\t: 0x003\n"
    assert tm.parse_cpu_model(tx2) == "ARM Cortex-A57 + NVIDIA Denver 2"
    unknown = "processor\t: 0\nmodel name\t: ARMv8 Processor rev 0 (v8l)\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\n"
    assert tm.parse_cpu_model(unknown) == "ARMv8 Processor rev 0 (v8l)"


def test_run_command_uses_real_processes() -> None:
    assert tm.run_command(["echo", "hi"]) == "hi\n"
    assert tm.run_command(["sh", "-c", "echo partial; exit 3"]) is None
    assert tm.run_command(["jetfleet-no-such-binary-xyz"]) is None


# --------------------------------------------------------------------------- procfs


Times = namedtuple("Times", "user system idle iowait guest")


def scripted_meter(*readings: list[Times]) -> tm.CpuMeter:
    it = iter(readings)
    return tm.CpuMeter(read_times=lambda: next(it), prime_s=0.0)


def test_cpu_meter_measures_between_reads() -> None:
    meter = scripted_meter(
        [Times(100, 0, 900, 0, 0), Times(0, 0, 1000, 0, 0)],
        [Times(150, 0, 950, 0, 50), Times(20, 5, 1070, 5, 0)],  # guest time is already inside user
        [Times(150, 0, 1050, 0, 50), Times(120, 5, 1070, 5, 0)],
    )
    assert meter.read() == (50.0, 25.0)  # first read primes, then measures
    assert meter.read() == (0.0, 100.0)


def test_sample_procfs_reads_meminfo_thermal_zones_and_hwmon(tmp_path: Path) -> None:
    write(
        tmp_path,
        "proc/meminfo",
        "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:   12288000 kB\n",
    )
    zones = {0: ("CPU-therm", "45500"), 1: ("GPU-therm", "-256000"), 2: ("PMIC-Die", "100000"), 3: ("acpitz", "30000")}
    zones.update({10: ("acpitz", "31250"), 4: ("tj-therm", "oops")})
    for n, (kind, temp) in zones.items():
        write(tmp_path, f"sys/class/thermal/thermal_zone{n}/type", kind + "\n")
        write(tmp_path, f"sys/class/thermal/thermal_zone{n}/temp", temp + "\n")
    write(tmp_path, "sys/class/hwmon/hwmon0/name", "amdgpu\n")
    write(tmp_path, "sys/class/hwmon/hwmon0/power1_input", "35000000\n")
    write(tmp_path, "sys/class/hwmon/hwmon1/name", "ina3221\n")
    write(tmp_path, "sys/class/hwmon/hwmon1/power2_input", "1250000\n")
    write(tmp_path, "sys/class/hwmon/hwmon1/power2_label", "VDD_SOC\n")
    meter = scripted_meter([Times(0, 0, 100, 0, 0)], [Times(30, 10, 160, 0, 0)])

    sample = tm.sample_procfs(tmp_path, meter=meter, now=42.0)

    assert sample == TelemetrySample(
        timestamp=42.0,
        source="procfs",
        ram_used_mb=4000.0,
        ram_total_mb=16000.0,
        cpu_percent=40.0,
        cpu_core_percent=(40.0,),
        gpu_percent=None,
        temperatures_c={"cpu": 45.5, "acpitz": 30.0, "acpitz-1": 31.25},
        power_mw={"amdgpu/power1": 35000.0, "VDD_SOC": 1250.0},
    )


def test_sample_procfs_on_this_machine() -> None:
    sample = tm.sample_procfs(meter=tm.CpuMeter(prime_s=0.05))
    assert sample.source == "procfs" and sample.gpu_percent is None
    assert sample.ram_total_mb == pytest.approx(psutil.virtual_memory().total / 2**20, rel=0.01)
    assert 0 < sample.ram_used_mb < sample.ram_total_mb
    assert len(sample.cpu_core_percent) == psutil.cpu_count()
    assert all(0.0 <= c <= 100.0 for c in sample.cpu_core_percent)


# --------------------------------------------------------------------------- samplers


def test_sample_buffer_keeps_a_bounded_window() -> None:
    buffer = tm.SampleBuffer(maxlen=3)
    assert buffer.latest() is None and buffer.wait(0.01) is None
    for t in range(5):
        buffer.append(TelemetrySample(timestamp=float(t), source="procfs"))
    assert [s.timestamp for s in buffer.since(0.0)] == [2.0, 3.0, 4.0]
    assert [s.timestamp for s in buffer.since(3.0)] == [3.0, 4.0]
    assert buffer.latest().timestamp == 4.0


def fake_tegrastats(bin_dir: Path, lines: list[str], forever: bool) -> Path:
    """A real executable named tegrastats that prints real lines, like the JetPack tool does."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state = bin_dir / "state"
    body = "".join(f"  echo '{line}'\n  sleep 0.05\n" for line in lines)
    loop = f"while true; do\n{body}done\n" if forever else f"{body}exit 1\n"
    script = bin_dir / "tegrastats"
    script.write_text(f'#!/bin/sh\necho $$ > "{state}.pid"\necho "$@" > "{state}.args"\n{loop}', encoding="utf-8")
    script.chmod(0o755)
    return state


def jetson_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write(root, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.4, BOARD: generic\n")
    return root


def wait_until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def telemetry_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("jetfleet-telemetry")]


def test_telemetry_runs_tegrastats_on_a_jetson_and_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = fake_tegrastats(tmp_path / "bin", [ORIN_16GB_JP5, AGX_ORIN_R36], forever=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    t0 = time.time()

    telemetry = tm.Telemetry.start(root=jetson_root(tmp_path), interval_s=0.05)
    try:
        assert telemetry.source == "tegrastats"
        first = telemetry.wait(5.0)
        assert first.source == "tegrastats" and first.timestamp >= t0
        assert (first.ram_used_mb, first.ram_total_mb) == (6334.0, 15388.0)
        assert wait_until(lambda: len(telemetry.since(t0)) >= 3)
        window = telemetry.since(t0)
        assert {s.ram_total_mb for s in window} == {15388.0, 30697.0}
        assert all(s.timestamp >= t0 for s in window)
        assert telemetry.since(time.time() + 60) == []
        assert (state.parent / "state.args").read_text().split() == ["--interval", "50"]
        pid = int((state.parent / "state.pid").read_text())
        assert pid_alive(pid)
    finally:
        telemetry.close()
    assert not pid_alive(pid)  # terminated and reaped
    assert wait_until(lambda: not telemetry_threads(), 5.0)
    telemetry.close()  # idempotent


def test_telemetry_falls_back_to_procfs_when_tegrastats_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_tegrastats(tmp_path / "bin", [NANO_JP4, NANO_JP461], forever=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    with tm.Telemetry.start(root=jetson_root(tmp_path), interval_s=0.05) as telemetry:
        assert telemetry.wait(5.0).source == "tegrastats"
        assert wait_until(lambda: telemetry.latest().source == "procfs")
        assert telemetry.source == "procfs"
        sources = [s.source for s in telemetry.since(0.0)]
        assert sources[:2] == ["tegrastats", "tegrastats"] and set(sources[2:]) == {"procfs"}
    assert [r.levelname for r in caplog.records if "tegrastats exited" in r.getMessage()] == ["WARNING"]
    assert wait_until(lambda: not telemetry_threads(), 5.0)


def test_telemetry_uses_procfs_off_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tegrastats(tmp_path / "bin", [NANO_JP4], forever=True)  # present, but this is no Jetson
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    telemetry = tm.Telemetry.start(root=tmp_path / "empty-root", interval_s=0.05)
    try:
        assert telemetry.source == "procfs"
        assert telemetry.latest().source == "procfs"
        assert wait_until(lambda: len(telemetry.since(0.0)) >= 2)
        sample = telemetry.latest()
        assert sample.ram_total_mb and sample.cpu_core_percent
    finally:
        telemetry.close()
    assert not (tmp_path / "bin" / "state.pid").exists()
    assert wait_until(lambda: not telemetry_threads(), 5.0)


# --------------------------------------------------------------------------- format_info


def test_format_info_renders_facts_and_sample() -> None:
    info = DeviceInfo(
        hostname="orin-07",
        board="NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
        device_class="jetson-orin-nx",
        is_jetson=True,
        cpu_model="ARM Cortex-A78AE",
        cpu_count=8,
        memory_total_mb=15388,
        os_release="Ubuntu 20.04.6 LTS",
        kernel="5.10.120-tegra",
        python="3.11.9",
        agent_version="0.1.0",
        l4t_release="R35.4.1",
        jetpack="5.1.2",
        power_mode="15W",
        gpu_name="Orin (Ampere)",
        compute_capability="8.7",
    )
    sample = tm.parse_tegrastats(ORIN_16GB_JP5, time.time())
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(tm.format_info(info, sample))
    text = console.file.getvalue()
    for expected in (
        "orin-07 — jetson-orin-nx",
        "R35.4.1 / 5.1.2",
        "15W",
        "Orin (Ampere) (compute 8.7)",
        "ARM Cortex-A78AE × 8",
        "6334 / 15388 MB",
        "9 % (online cores: 6 9 5 16)",
        "tj 48.9 °C",
        "VDD_IN 5.30 W, VDD_CPU_GPU_CV 0.77 W, VDD_SOC 1.42 W",
    ):
        assert expected in text
    assert text.count("n/a") == 3  # CUDA, TensorRT, ONNX Runtime: exactly the fields left None


def test_per_core_times_come_from_proc_stat(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_text(
        "cpu  300 0 100 600 0 0 0 0 0 0\n"
        "cpu0 100 0 50 350 0 0 0 0 0 0\n"
        "cpu1 200 0 50 250 0 0 0 0 0 0\n"
        "intr 12345 0 0\nctxt 999\n"
    )
    cores = tm._proc_cpu_times(tmp_path)
    assert [c._asdict()["user"] for c in cores] == [100.0, 200.0]  # the aggregate "cpu" line is not a core
    later = [{**c._asdict(), "user": c._asdict()["user"] + 50, "idle": c._asdict()["idle"] + 50} for c in cores]
    assert tm._busy_percent(cores[0], tm._StatTimes(later[0])) == 50.0
