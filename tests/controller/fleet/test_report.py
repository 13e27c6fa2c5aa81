"""The fleet benchmark report: built from real result objects, written, read back and rendered by Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.fleet import ArtifactRef, ItemError, JobResult, ModelSlot, ModelSpec
from jetfleet.common.latency import LatencyStats
from jetfleet.common.metrics import ClassMetrics
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.fleet.report import (
    CSV_FIELDS,
    FleetReport,
    ReportFiles,
    parse_failure_key,
    read_report,
    render_plots,
    write_report,
)

XSS = "<script>alert(1)</script>"
XSS_REASON = 'deploy failed: <img src=x onerror="alert(2)"> | $\\frac{'
BATCHES = (1, 8, 32)
PRECISIONS = ("fp32", "fp16")
REFERENCE = {"fp32": 0.912, "fp16": 0.911}
PREPROCESS = PreprocessSpec((32, 32), 3, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), ("cat", "dog", "ship"))
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _info(host: str, board: str, device_class: str, jetson: bool, **kw: object) -> DeviceInfo:
    return DeviceInfo(host, board, device_class, jetson, "ARMv8 Processor rev 1 (v8l)" if jetson else "AMD EPYC 7B13", 6, 7620, "Ubuntu 22.04.4 LTS", "5.15.136-tegra", "3.10.12", "0.1.0", **kw)  # type: ignore[arg-type]  # fmt: skip


ORIN = _info("orin-nano-01", "NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano", True, l4t_release="R36.4.3", jetpack="6.2", power_mode="MAXN_SUPER", gpu_name="Orin (nvgpu)", compute_capability="8.7", cuda_version="12.6", tensorrt_version="10.3.0")  # fmt: skip
XAVIER = _info("xavier-nx-02", "NVIDIA Jetson Xavier NX Developer Kit", "jetson-xavier-nx", True, l4t_release="R35.6.0", jetpack="5.1.4", power_mode="MODE_20W_6CORE", gpu_name="Xavier (nvgpu)", compute_capability="7.2", cuda_version="11.4", tensorrt_version="8.5.2")  # fmt: skip
X86 = _info("ci-runner", "x86_64 workstation", "cpu-x86_64", False, onnxruntime_version="1.32.0")
AGX = _info("agx-orin-03", "NVIDIA Jetson AGX Orin Developer Kit", "jetson-agx-orin", True, jetpack="6.2")
DEVICES = {"orin-nano-01": ORIN, "xavier-nx-02": XAVIER, XSS: X86, "agx-orin-03": AGX}
MEASURED = ("orin-nano-01", "xavier-nx-02", XSS)
FAILED = "agx-orin-03"
SPEED = {"orin-nano-01": 1.0, "xavier-nx-02": 1.8, XSS: 6.5}  # relative per-item latency
BACKEND = {"orin-nano-01": "tensorrt", "xavier-nx-02": "tensorrt", XSS: "onnxruntime"}


def _telemetry(device: str, start: float, n: int = 8) -> tuple[TelemetrySample, ...]:
    """What each kind of device can measure: tegrastats on Jetsons; procfs (no GPU, no rails) on x86."""
    rng = np.random.default_rng(zlib.crc32(device.encode()))
    samples = []
    for i in range(n):
        load = float(40 + 50 * rng.random())
        if device == XSS:
            samples.append(TelemetrySample(start + i, "procfs", 3100.0 + i, 15800.0, load, (load, load / 2), None, {"x86_pkg_temp": 55.0 + i}))  # fmt: skip
        else:
            rail = "VDD_IN" if device == "orin-nano-01" else "POM_5V_IN"
            temps = {"cpu": 48.0 + i * 0.7, "gpu": 47.5 + i * 0.8, "PMIC": 50.0}
            samples.append(TelemetrySample(start + i, "tegrastats", 2400.0 + 10 * i, 7620.0, load, (), float(60 + 30 * rng.random()), temps, {rail: 6100.0 + 300 * i, "VDD_CPU_GPU_CV": 2100.0}))  # fmt: skip
    return tuple(samples)


def _result(device: str, precision: str, batch: int, index: int) -> JobResult:
    rng = np.random.default_rng(index)
    per_batch = SPEED[device] * (0.6 + 0.22 * batch) * (0.62 if precision == "fp16" else 1.0)
    latency = LatencyStats.from_ms(per_batch * (1 + rng.gamma(2.0, 0.04, size=200)))
    spec = ModelSpec("basic_cnn", 3, precision, ArtifactRef("ab" * 32, 2_417_664), PREPROCESS, reference_accuracy=REFERENCE[precision])  # fmt: skip
    slot = ModelSlot(spec, BACKEND[device], f"{index:032x}", T0 - 600.0, 0.9)
    top1 = REFERENCE[precision] - (0.021 if device == "xavier-nx-02" and precision == "fp16" else 0.001 * (index % 3))
    items = 512
    wall = items / batch * latency.mean_ms / 1000 + 0.05
    h2d = LatencyStats.from_ms(0.08 * batch * (1 + rng.random(200) * 0.1)) if BACKEND[device] == "tensorrt" else None
    return JobResult(
        job_id=f"job-{index:04d}",
        agent=device,
        model=slot,
        items=items,
        batch_size=batch,
        warmup=5,
        iterations=max(20, 512 // batch),
        latency=latency,
        throughput=items / wall,
        wall_s=wall,
        started_at=T0 + 20.0 * index,
        errors=(ItemError("img_0007.png", f"cannot decode {XSS}"),) if index == 4 else (),
        has_labels=True,
        top1=top1,
        top5=min(1.0, top1 + 0.06),
        per_class=tuple(ClassMetrics(label, 0.9, 0.91, 0.905, 170) for label in PREPROCESS.labels),
        host_to_device=h2d,
        compute=LatencyStats.from_ms(per_batch * 0.8 * (1 + rng.random(200) * 0.05)) if h2d else None,
        device_to_host=LatencyStats.from_ms(0.01 * batch * (1 + rng.random(200))) if h2d else None,
        telemetry=_telemetry(device, T0 + 20.0 * index),
    )


def _results() -> list[JobResult]:
    cases = [(d, p, b) for p in PRECISIONS for b in BATCHES for d in MEASURED]
    return [_result(d, p, b, i) for i, (d, p, b) in enumerate(cases)]


def _report() -> FleetReport:
    """3 measured devices × 2 precisions × 3 batch sizes, plus a device whose deployment failed for both precisions."""
    return FleetReport.from_results(
        model="basic_cnn:3",
        results=_results(),
        devices=DEVICES,
        tags={d: {"site": "lab-a", "rack": str(i)} for i, d in enumerate(DEVICES)},
        failures={f"{FAILED}/fp32": XSS_REASON, f"{FAILED}/fp16": "offline: no heartbeat for 312 s"},
        reference_accuracy=REFERENCE,
        created_at=T0 + 900.0,
    )


@pytest.fixture(scope="module")
def report() -> FleetReport:
    return _report()


@pytest.fixture(scope="module")
def written(report: FleetReport, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(tmp_path_factory.mktemp("report"), report)


def _csv_rows(files: ReportFiles) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files.csv.read_text(encoding="utf-8"))))


class _Dom(HTMLParser):
    """Counts rows per table and collects image sources: enough to check a page's structure."""

    def __init__(self) -> None:
        super().__init__()
        self.table: str | None = None
        self.rows: dict[str, int] = {}
        self.images: list[str] = []
        self.cells: dict[str, list[str]] = {}
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id") or f"table-{len(self.rows)}"
            self.rows.setdefault(self.table, 0)
        elif tag == "tr" and self.table:
            self.rows[self.table] += 1
        elif tag == "td":
            self._in_td = True
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None
        elif tag == "td":
            self._in_td = False

    def handle_data(self, data: str) -> None:
        if self._in_td and self.table:
            self.cells.setdefault(self.table, []).append(data)


def _dom(text: str) -> _Dom:
    parser = _Dom()
    parser.feed(text)
    return parser


# --------------------------------------------------------------------------- files and numbers


def test_writes_every_file(written: ReportFiles) -> None:
    assert written.html.name == "report.html" and written.markdown.name == "report.md"
    assert written.json.name == "results.json" and written.csv.name == "results.csv"
    assert set(written.plots) == {"latency", "throughput", "accuracy", "telemetry"}
    for path in (written.html, written.markdown, written.json, written.csv, *written.plots.values()):
        assert path.is_file() and path.stat().st_size > 0, path
    assert not [p for p in written.html.parent.iterdir() if ".tmp" in p.name], "atomic writes left temporaries"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(written.html.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600: reports are shared


def test_every_device_appears_in_html_table_and_csv(written: ReportFiles) -> None:
    dom = _dom(written.html.read_text(encoding="utf-8"))
    summary_cells = dom.cells["summary-table"]
    assert dom.rows["summary-table"] == 1 + 18 + 2  # header, 3 devices × 2 precisions × 3 batches, 2 failures
    rows = _csv_rows(written)
    for device in DEVICES:
        assert device in summary_cells, device
        assert any(r["device"] == device for r in rows), device
    failed = [r for r in rows if r["device"] == FAILED]
    assert [r["status"] for r in failed] == ["failed", "failed"]
    assert {r["precision"] for r in failed} == {"fp32", "fp16"}
    assert any(XSS_REASON in c for c in summary_cells) and XSS_REASON in dom.cells["failures-table"]


def test_csv_numbers_equal_the_inputs(written: ReportFiles) -> None:
    rows = _csv_rows(written)
    assert tuple(rows[0]) == CSV_FIELDS
    measured = [r for r in rows if r["status"] == "ok"]
    assert len(measured) == 18
    by_key = {(r["device"], r["precision"], int(r["batch_size"])): r for r in measured}
    for res in _results():
        row = by_key[(res.agent, res.model.spec.precision, res.batch_size)]
        assert float(row["throughput_items_per_s"]) == res.throughput
        assert float(row["wall_s"]) == res.wall_s
        assert float(row["top1"]) == res.top1 and float(row["top5"]) == res.top5
        assert int(row["items"]) == res.items and int(row["iterations"]) == res.iterations
        assert int(row["errors"]) == len(res.errors)
        assert row["backend"] == res.model.backend and int(row["version"]) == 3
        assert float(row["reference_top1"]) == REFERENCE[res.model.spec.precision]
        assert math.isclose(float(row["top1_delta_pp"]), (res.top1 - REFERENCE[res.model.spec.precision]) * 100)
        for stage in ("latency", "host_to_device", "compute", "device_to_host"):
            stats = getattr(res, stage)
            for field in ("min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"):
                cell = row[f"{stage}_{field}"]
                assert (float(cell) == getattr(stats, field)) if stats else cell == "", (stage, field)
            assert row[f"{stage}_count"] == (str(stats.count) if stats else "")
    assert by_key[("orin-nano-01", "fp16", 32)]["board"] == "NVIDIA Jetson Orin Nano Developer Kit"


def test_json_round_trips(written: ReportFiles, report: FleetReport) -> None:
    assert read_report(written.json) == report
    doc = json.loads(written.json.read_text(encoding="utf-8"))
    assert doc["created_at_utc"] == "2026-01-01 00:15:00 UTC"
    assert len(doc["summary"]) == 20 and doc["summary"][0].keys() == set(CSV_FIELDS)
    assert {f["device"] for f in doc["failures"]} == {FAILED}


def test_html_is_self_contained(written: ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    for external in ('src="http', "src='http", 'href="http', "<link", "<script", "url(", "@import", "//fonts."):
        assert external not in page.lower(), external
    images = _dom(page).images
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    for src in images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
            assert img.format == "PNG" and img.width > 400 and img.height > 250
    for section in ('id="summary"', 'id="plots"', 'id="telemetry"', 'id="failures"', 'id="devices"'):
        assert section in page
    assert "Orin (nvgpu), sm 8.7" in page and "MAXN_SUPER" in page  # device details
    assert 'class="num bad">-2.10 pp' in page  # the xavier fp16 accuracy drop is flagged


def test_untrusted_text_is_escaped(written: ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert "<script" not in page.lower()
    markdown = written.markdown.read_text(encoding="utf-8")
    assert XSS not in markdown and "<img src=x" not in markdown and "&lt;script&gt;" in markdown


def test_markdown_has_the_tables_and_existing_plot_files(written: ReportFiles) -> None:
    markdown = written.markdown.read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(figures) == ["accuracy.png", "latency.png", "telemetry.png", "throughput.png"]
    assert all((written.markdown.parent / f).is_file() for f in figures)
    summary = markdown.split("## Summary", 1)[1].split("##", 1)[0]
    assert len([line for line in summary.splitlines() if line.startswith("| ")]) == 1 + 1 + 18 + 2
    assert "### agx-orin-03" in markdown and "not measured" not in summary


def test_without_telemetry_or_labels_says_not_measured_and_drops_stale_plots(
    written: ReportFiles, report: FleetReport
) -> None:
    bare = replace(
        report,
        rows=tuple(replace(r, result=replace(r.result, telemetry=(), top1=None, top5=None)) for r in report.rows),
    )
    files = write_report(written.html.parent, bare)  # same folder: yesterday's telemetry.png must not linger
    assert set(files.plots) == {"latency", "throughput"}
    assert not (written.html.parent / "telemetry.png").exists()
    page = files.html.read_text(encoding="utf-8")
    assert "Telemetry: not measured" in page and "Accuracy: not measured" in page
    assert "_not measured_" in files.markdown.read_text(encoding="utf-8")
    write_report(written.html.parent, report)  # put the module's report back for the other tests


def test_partial_telemetry_reads_not_measured_per_field(report: FleetReport, tmp_path: Path) -> None:
    files = write_report(tmp_path, report)
    dom = _dom(files.html.read_text(encoding="utf-8"))
    cells = dom.cells["telemetry-table"]
    x86 = cells[cells.index(XSS) :][:9]
    assert x86[4:6] == ["not measured", "not measured"] and x86[8] == "not measured"  # GPU and power on x86
    orin = cells[cells.index("orin-nano-01") :][:9]
    assert "not measured" not in orin and orin[6] != "50.0"  # PMIC's fake 50 °C is not the hottest zone


def test_a_fleet_where_everything_failed_still_reports(tmp_path: Path) -> None:
    report = FleetReport.from_results(
        "basic_cnn", [], DEVICES, failures={f"{d}/fp32": "offline" for d in DEVICES}, created_at=T0
    )
    files = write_report(tmp_path, report)
    assert files.plots == {}
    page = files.html.read_text(encoding="utf-8")
    assert "every job failed" in page and page.count('class="failed"') >= len(DEVICES)
    assert read_report(files.json) == report
    assert {r["device"] for r in _csv_rows(files)} == set(DEVICES)


def test_a_big_fleet_is_plotted_per_device_class() -> None:
    results = [replace(r, agent=f"{r.agent}-{k}") for r in _results() for k in range(5)]
    devices = {r.agent: DEVICES[r.agent.rsplit("-", 1)[0]] for r in results}
    report = FleetReport.from_results("basic_cnn", results, devices, created_at=T0)
    plots = {p.name: p for p in render_plots(report)}
    assert "per device class" in plots["latency"].caption
    assert set(plots) == {"latency", "throughput", "accuracy", "telemetry"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("orin-01/int8/b32", ("orin-01", "int8", 32)),
        ("orin-01/fp16", ("orin-01", "fp16", None)),
        ("orin-01", ("orin-01", None, None)),
        ("lab/orin-01/fp32/b1", ("lab/orin-01", "fp32", 1)),
        ("weird/b8", ("weird/b8", None, None)),
    ],
)
def test_parse_failure_key(key: str, expected: tuple[str, str | None, int | None]) -> None:
    assert parse_failure_key(key) == expected


# --------------------------------------------------------------------------- a real browser


def _chromium_or_skip() -> str:
    """Debian's chromium (scripts/install-chromium.sh); JETFLEET_REQUIRE_CHROMIUM=1 turns the skip into a failure."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("JETFLEET_REQUIRE_CHROMIUM") == "1":
        pytest.fail("JETFLEET_REQUIRE_CHROMIUM=1 but no chromium binary is on PATH")
    pytest.skip("chromium not installed: run scripts/install-chromium.sh (JETFLEET_REQUIRE_CHROMIUM=1 makes this fail)")


def _chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless, as root in a container: no sandbox, no GPU, /tmp instead of a small /dev/shm, a private profile."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    cmd += ["--no-first-run", f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_chromium_renders_the_page(written: ReportFiles, tmp_path: Path) -> None:
    exe = _chromium_or_skip()
    url = written.html.resolve().as_uri()
    shot = tmp_path / "report.png"
    _chromium(exe, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", url)
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 15, "screenshot is (nearly) one flat colour"
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: text and plots did not render"
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 80).mean() > 0.002, "no coloured pixels: the embedded plots did not render"

    dom = _chromium(exe, tmp_path / "profile", "--dump-dom", url).stdout
    parsed = _dom(dom)
    assert parsed.rows["summary-table"] >= 1 + 18 + 2
    assert parsed.rows["failures-table"] >= 1 + 2 and parsed.rows["telemetry-table"] >= 1 + 3
    assert len(parsed.images) == 4
    assert XSS in parsed.cells["summary-table"]  # the browser shows the name as text, it did not run it
