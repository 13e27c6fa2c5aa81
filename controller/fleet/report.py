"""The fleet benchmark report: one self-contained HTML page, Markdown, JSON and CSV.

``jetfleet bench`` ends here. The page is what an operator opens (or mails,
or attaches to a ticket), so it embeds everything: inline CSS, plots as
base64 PNG data URIs, no scripts, no fonts, nothing fetched from anywhere.
The Markdown carries the same tables for a README or a pull request, with
the plots as PNG files beside it; JSON holds every figure and reads back into
the identical :class:`FleetReport` (:func:`read_report`); CSV is one flat row
per device × precision × batch size for a spreadsheet or pandas.

Decisions, so that readers of the report know what they look at:

- Input is a :class:`FleetReport`: a tuple of :class:`BenchRow` (one
  finished job: device name, its :class:`DeviceInfo`, its tags, its
  :class:`JobResult`) plus what failed (:class:`DeviceFailure`). A device
  that failed is listed as failed, in the summary table, the CSV, the JSON
  and a failures section; it never silently drops out of a fleet report.
- Rows are ordered by device name, then precision (fp32, fp16, int8), then
  batch size, so two reports of the same fleet diff cleanly.
- Latency is per batch (what the device measured around one inference call),
  in milliseconds; throughput is items ÷ wall time (DESIGN.md "Reports").
- "Δ vs registry" is the device's top-1 minus the registry's top-1 for the
  same precision, in percentage points; drops beyond
  :data:`ACCURACY_DROP_WARN_PP` are flagged.
- Plots draw each device while the fleet has at most :data:`MAX_PLOT_SERIES`
  devices; a larger fleet is drawn per device class (median over the class's
  devices), because a thousand bars are unreadable. Tables always list every
  device. Telemetry (a time series) cannot be aggregated that way, so it
  shows the hottest :data:`MAX_PLOT_SERIES` devices.
- Telemetry fields that are ``None`` were not measurable on that device
  (see :mod:`jetfleet.common.device`): they read "not measured" and are never
  drawn as zero.
- Every piece of text that came from a device (names, tags, error strings)
  is escaped: device names are chosen by whoever runs the agent.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path
from jetfleet.common.fleet import PRECISIONS, ItemError, JobResult, ModelSlot, Prediction
from jetfleet.common.latency import LatencyStats
from jetfleet.common.metrics import ClassMetrics

SCHEMA_VERSION = 1
"""Bumped when results.json changes shape, so old reports are refused rather than misread."""
MAX_PLOT_SERIES = 12
"""Beyond about a dozen bar groups or lines a plot stops being readable (and tab10 runs out of colours)."""
ACCURACY_DROP_WARN_PP = 1.0
"""FP16 and calibrated INT8 engines normally stay within 1 pp of the FP32 model; more deserves a look."""
PLOT_DPI = 100
"""Sharp enough on a laptop screen while keeping the self-contained page small enough to mail."""
GAP_FACTOR = 5.0
"""Telemetry samples further apart than this many typical intervals are a pause between jobs: break the line."""
NOT_MEASURED = "not measured"
MISSING = "—"
PLOT_NAMES = ("latency", "throughput", "accuracy", "telemetry")
LATENCY_STAGES = ("latency", "host_to_device", "compute", "device_to_host")
LATENCY_FIELDS = ("count", "min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
CSV_FIELDS = (
    "device",
    "status",
    "failure_reason",
    "board",
    "device_class",
    "backend",
    "model",
    "version",
    "precision",
    "batch_size",
    "items",
    "warmup",
    "iterations",
    "wall_s",
    "throughput_items_per_s",
    "top1",
    "top5",
    "reference_top1",
    "top1_delta_pp",
    "errors",
    *(f"{stage}_{f}" for stage in LATENCY_STAGES for f in LATENCY_FIELDS),
)
"""results.csv columns: everything a row knows, latency stages flattened (``compute_p99_ms``)."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BenchRow:
    """One finished benchmark job on one device, with the device facts needed to read it.

    ``info`` is ``None`` when the controller no longer knows the device (it
    was removed while the bench ran); the job's numbers are still worth showing.
    """

    device: str
    info: DeviceInfo | None
    result: JobResult
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def precision(self) -> str:
        return self.result.model.spec.precision

    @property
    def batch_size(self) -> int:
        return self.result.batch_size

    def sort_key(self) -> tuple[str, int, str, int]:
        return (self.device, _precision_rank(self.precision), self.precision, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "info": self.info.to_dict() if self.info else None,
            "tags": dict(self.tags),
            "result": self.result.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchRow:
        return cls(d["device"], _info_from(d.get("info")), job_result_from_dict(d["result"]), dict(d.get("tags", {})))


@dataclass(frozen=True)
class DeviceFailure:
    """Something that did not produce a result: a whole device, one precision, or one batch size.

    ``precision``/``batch_size`` are ``None`` when the failure covered all of
    them (e.g. the device was offline before anything was deployed).
    """

    device: str
    reason: str
    precision: str | None = None
    batch_size: int | None = None
    info: DeviceInfo | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def sort_key(self) -> tuple[str, int, str, int]:
        precision = self.precision or ""
        return (self.device, _precision_rank(precision), precision, self.batch_size or 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "info": self.info.to_dict() if self.info else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceFailure:
        return cls(
            device=d["device"],
            reason=d["reason"],
            precision=d.get("precision"),
            batch_size=d.get("batch_size"),
            info=_info_from(d.get("info")),
            tags=dict(d.get("tags", {})),
        )


@dataclass(frozen=True)
class FleetReport:
    """Everything one ``jetfleet bench`` run measured, and what failed.

    ``model`` is the reference the operator asked for (``basic_cnn``,
    ``basic_cnn:3``); ``reference_accuracy`` maps a precision to the
    registry's top-1 (0-1) for that artifact, ``None`` when the registry has
    none; ``created_at`` is Unix time (seconds), shown in UTC.
    """

    model: str
    created_at: float
    rows: tuple[BenchRow, ...]
    reference_accuracy: dict[str, float | None] = field(default_factory=dict)
    failures: tuple[DeviceFailure, ...] = ()

    @classmethod
    def from_results(
        cls,
        model: str,
        results: Iterable[JobResult],
        devices: Mapping[str, DeviceInfo],
        tags: Mapping[str, Mapping[str, str]] | None = None,
        failures: Mapping[str, str] | None = None,
        reference_accuracy: Mapping[str, float | None] | None = None,
        created_at: float | None = None,
    ) -> FleetReport:
        """Assemble a report from what ``run_bench`` collects (results keyed by ``JobResult.agent``).

        ``failures`` maps ``"device/precision[/b<batch>]"`` (or just
        ``"device"``) to a reason, the keys ``jetfleet bench`` records.
        """
        tags = tags or {}
        rows = tuple(BenchRow(r.agent, devices.get(r.agent), r, dict(tags.get(r.agent, {}))) for r in results)
        failed = []
        for key, reason in (failures or {}).items():
            device, precision, batch = parse_failure_key(key)
            failed.append(
                DeviceFailure(device, reason, precision, batch, devices.get(device), dict(tags.get(device, {})))
            )
        return cls(
            model=model,
            created_at=datetime.now(UTC).timestamp() if created_at is None else created_at,
            rows=tuple(sorted(rows, key=BenchRow.sort_key)),
            reference_accuracy=dict(reference_accuracy or {}),
            failures=tuple(sorted(failed, key=DeviceFailure.sort_key)),
        )

    @property
    def devices(self) -> list[str]:
        """Every device the report mentions, measured or failed, by name."""
        return sorted({r.device for r in self.rows} | {f.device for f in self.failures})

    @property
    def failed_devices(self) -> list[str]:
        """Devices without a single result: they failed as a whole."""
        measured = {r.device for r in self.rows}
        return sorted({f.device for f in self.failures} - measured)

    @property
    def precisions(self) -> list[str]:
        return sorted({r.precision for r in self.rows}, key=lambda p: (_precision_rank(p), p))

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({r.batch_size for r in self.rows})

    @property
    def versions(self) -> list[int]:
        return sorted({r.result.model.spec.version for r in self.rows})

    def sorted_rows(self) -> list[BenchRow]:
        return sorted(self.rows, key=BenchRow.sort_key)

    def device_facts(self) -> dict[str, tuple[DeviceInfo | None, dict[str, str]]]:
        """Name → (facts, tags) for every device; a row's facts win over a failure's (they are fresher)."""
        facts: dict[str, tuple[DeviceInfo | None, dict[str, str]]] = {}
        for f in self.failures:
            facts.setdefault(f.device, (f.info, f.tags))
        for r in self.rows:
            if r.info is not None or r.device not in facts:
                facts[r.device] = (r.info, r.tags)
        return dict(sorted(facts.items()))

    def reference_for(self, precision: str) -> float | None:
        return self.reference_accuracy.get(precision)

    def to_dict(self) -> dict[str, Any]:
        """The results.json document: the report itself plus a flat ``summary`` (the CSV rows)."""
        return {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "created_at": self.created_at,
            "created_at_utc": _utc(self.created_at),
            "reference_accuracy": dict(self.reference_accuracy),
            "rows": [r.to_dict() for r in self.rows],
            "failures": [f.to_dict() for f in self.failures],
            "summary": summary_records(self),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FleetReport:
        if d.get("schema") != SCHEMA_VERSION:
            raise JetfleetError(f"fleet report schema {d.get('schema')!r} is not {SCHEMA_VERSION}")
        return cls(
            model=d["model"],
            created_at=float(d["created_at"]),
            rows=tuple(BenchRow.from_dict(r) for r in d["rows"]),
            reference_accuracy=dict(d.get("reference_accuracy", {})),
            failures=tuple(DeviceFailure.from_dict(f) for f in d.get("failures", ())),
        )


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put things; ``plots`` holds only the plots that had data."""

    html: Path
    markdown: Path
    json: Path
    csv: Path
    plots: dict[str, Path]


def parse_failure_key(key: str) -> tuple[str, str | None, int | None]:
    """``"dev/int8/b32"`` → ``("dev", "int8", 32)``; read from the right so a ``/`` in a device name survives."""
    parts = key.split("/")
    batch = None
    if len(parts) >= 3 and parts[-1].startswith("b") and parts[-1][1:].isdigit():
        batch = int(parts.pop()[1:])
    precision = parts.pop() if len(parts) >= 2 and parts[-1] in PRECISIONS else None
    return "/".join(parts), precision, batch


# --------------------------------------------------------------------------- JSON decoding


def job_result_from_dict(d: Mapping[str, Any]) -> JobResult:
    """Rebuild a :class:`JobResult` from ``JobResult.to_dict()`` (after a JSON round trip: lists, not tuples)."""
    return JobResult(
        **{
            **d,
            "model": ModelSlot.from_dict(d["model"]),
            "latency": LatencyStats(**d["latency"]),
            "errors": tuple(ItemError(**e) for e in d.get("errors", ())),
            "per_class": tuple(ClassMetrics(**c) for c in d.get("per_class", ())),
            "predictions": tuple(Prediction(**p) for p in d.get("predictions", ())),
            "host_to_device": _latency_from(d.get("host_to_device")),
            "compute": _latency_from(d.get("compute")),
            "device_to_host": _latency_from(d.get("device_to_host")),
            "telemetry": tuple(_telemetry_from(t) for t in d.get("telemetry", ())),
        }
    )


def read_report(path: Path) -> FleetReport:
    """Read a results.json back into the :class:`FleetReport` it was written from."""
    try:
        return FleetReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JetfleetError(f"cannot read fleet report {path}: {exc}") from exc


def _latency_from(d: Mapping[str, Any] | None) -> LatencyStats | None:
    return LatencyStats(**d) if d is not None else None


def _telemetry_from(d: Mapping[str, Any]) -> TelemetrySample:
    return TelemetrySample(**{**d, "cpu_core_percent": tuple(d.get("cpu_core_percent", ()))})


def _info_from(d: Mapping[str, Any] | None) -> DeviceInfo | None:
    return DeviceInfo(**d) if d is not None else None


# --------------------------------------------------------------------------- flat rows (CSV, JSON summary)


def summary_records(report: FleetReport) -> list[dict[str, Any]]:
    """One flat dict per device × precision × batch size (then one per failure), keyed by :data:`CSV_FIELDS`."""
    return [_row_record(report, r) for r in report.sorted_rows()] + [
        _failure_record(f) for f in sorted(report.failures, key=DeviceFailure.sort_key)
    ]


def _row_record(report: FleetReport, row: BenchRow) -> dict[str, Any]:
    res, spec = row.result, row.result.model.spec
    reference = report.reference_for(spec.precision)
    record: dict[str, Any] = dict.fromkeys(CSV_FIELDS)
    record.update(
        device=row.device,
        status="ok",
        failure_reason="",
        board=row.info.board if row.info else None,
        device_class=row.info.device_class if row.info else None,
        backend=res.model.backend,
        model=spec.model,
        version=spec.version,
        precision=spec.precision,
        batch_size=res.batch_size,
        items=res.items,
        warmup=res.warmup,
        iterations=res.iterations,
        wall_s=res.wall_s,
        throughput_items_per_s=res.throughput,
        top1=res.top1,
        top5=res.top5,
        reference_top1=reference,
        top1_delta_pp=_delta_pp(res.top1, reference),
        errors=len(res.errors),
    )
    for stage in LATENCY_STAGES:
        stats: LatencyStats | None = getattr(res, stage)
        for f in LATENCY_FIELDS:
            record[f"{stage}_{f}"] = getattr(stats, f) if stats else None
    return record


def _failure_record(failure: DeviceFailure) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(CSV_FIELDS)
    record.update(
        device=failure.device,
        status="failed",
        failure_reason=failure.reason,
        board=failure.info.board if failure.info else None,
        device_class=failure.info.device_class if failure.info else None,
        precision=failure.precision,
        batch_size=failure.batch_size,
    )
    return record


def _delta_pp(top1: float | None, reference: float | None) -> float | None:
    return None if top1 is None or reference is None else (top1 - reference) * 100.0


def render_csv(report: FleetReport) -> str:
    """results.csv: floats written with ``repr`` so they read back to the exact measured value."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in summary_records(report):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buf.getvalue()


def render_json(report: FleetReport) -> str:
    return json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- tables (shared by HTML and Markdown)


@dataclass(frozen=True)
class _Cell:
    """Plain (unescaped) text; the renderer escapes it for its format."""

    text: str
    num: bool = False
    cls: str = ""
    span: int = 1


@dataclass(frozen=True)
class _Table:
    headers: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: list[tuple[tuple[_Cell, ...], str]]  # (cells, row CSS class)


SUMMARY_HEADERS: tuple[tuple[str, bool], ...] = (
    ("Device", False),
    ("Board", False),
    ("Backend", False),
    ("Precision", False),
    ("Batch", True),
    ("Items", True),
    ("Errors", True),
    ("Top-1", True),
    ("Top-5", True),
    ("Δ vs registry", True),
    ("min ms", True),
    ("p50 ms", True),
    ("p90 ms", True),
    ("p95 ms", True),
    ("p99 ms", True),
    ("items/s", True),
)


def _summary_table(report: FleetReport) -> _Table:
    """The main table: one row per device × precision × batch size, then the failures, in red."""
    rows = [(_summary_cells(report, r), "") for r in report.sorted_rows()]
    rows += [(_failure_summary_cells(f), "failed") for f in sorted(report.failures, key=DeviceFailure.sort_key)]
    headers, numeric = zip(*SUMMARY_HEADERS, strict=True)
    return _Table(headers, numeric, rows)


def _summary_cells(report: FleetReport, row: BenchRow) -> tuple[_Cell, ...]:
    res = row.result
    delta = _delta_pp(res.top1, report.reference_for(row.precision))
    lat = res.latency
    return (
        _Cell(row.device),
        _Cell(row.info.board if row.info else MISSING, cls="wrap"),
        _Cell(res.model.backend),
        _Cell(row.precision),
        _Cell(str(res.batch_size), True),
        _Cell(f"{res.items:,}", True),
        _Cell(str(len(res.errors)), True, "bad" if res.errors else ""),
        _Cell(_pct(res.top1), True),
        _Cell(_pct(res.top5), True),
        _Cell(_pp(delta), True, "bad" if delta is not None and delta < -ACCURACY_DROP_WARN_PP else ""),
        *(_Cell(_ms(v), True) for v in (lat.min_ms, lat.median_ms, lat.p90_ms, lat.p95_ms, lat.p99_ms)),
        _Cell(f"{res.throughput:,.1f}", True),
    )


def _failure_summary_cells(failure: DeviceFailure) -> tuple[_Cell, ...]:
    rest = len(SUMMARY_HEADERS) - 5
    return (
        _Cell(failure.device),
        _Cell(failure.info.board if failure.info else MISSING, cls="wrap"),
        _Cell(MISSING),
        _Cell(failure.precision or "all"),
        _Cell(str(failure.batch_size) if failure.batch_size else "all", True),
        _Cell(f"FAILED: {failure.reason}", cls="reason", span=rest),
    )


def _failures_table(report: FleetReport) -> _Table:
    rows = [
        ((_Cell(f.device), _Cell(f.precision or "all"), _Cell(str(f.batch_size or "all")), _Cell(f.reason)), "failed")
        for f in sorted(report.failures, key=DeviceFailure.sort_key)
    ]
    return _Table(("Device", "Precision", "Batch", "Reason"), (False, False, False, False), rows)


TELEMETRY_HEADERS = (
    "Device",
    "Samples",
    "CPU mean (%)",
    "CPU peak (%)",
    "GPU mean (%)",
    "GPU peak (%)",
    "Temp peak (°C)",
    "RAM peak (MB)",
    "Power mean (W)",
)


def _telemetry_table(report: FleetReport) -> _Table:
    """Per device: how loaded, hot and hungry it was during its jobs; "not measured" where it cannot tell."""
    rows = []
    for device, samples in _telemetry_by_device(report).items():
        cpu, gpu = _values(samples, _cpu), _values(samples, _gpu)
        temp, ram, power = _values(samples, _hottest_c), _values(samples, _ram), _values(samples, _power_w)
        cells = (
            _Cell(device),
            _Cell(str(len(samples)), True),
            _Cell(_stat(cpu, statistics.fmean, "{:.0f}"), True),
            _Cell(_stat(cpu, max, "{:.0f}"), True),
            _Cell(_stat(gpu, statistics.fmean, "{:.0f}"), True),
            _Cell(_stat(gpu, max, "{:.0f}"), True),
            _Cell(_stat(temp, max, "{:.1f}"), True),
            _Cell(_stat(ram, max, "{:,.0f}"), True),
            _Cell(_stat(power, statistics.fmean, "{:.2f}"), True),
        )
        rows.append((cells, ""))
    return _Table(TELEMETRY_HEADERS, (False, *([True] * (len(TELEMETRY_HEADERS) - 1))), rows)


def _device_facts(info: DeviceInfo | None, tags: Mapping[str, str], status: str) -> list[tuple[str, str]]:
    """What a person comparing two devices' numbers needs to know about them, in reading order."""
    facts = [("Status", status)]
    if info is None:
        return [*facts, ("Facts", "not reported (the controller no longer knows this device)")]
    facts += [
        ("Board", info.board),
        ("Device class", info.device_class),
        ("Hostname", info.hostname),
        ("JetPack", info.jetpack or MISSING),
        ("L4T", info.l4t_release or MISSING),
        ("Power mode", info.power_mode or MISSING),
        ("GPU", _join(info.gpu_name, info.compute_capability and f"sm {info.compute_capability}")),
        ("CUDA", info.cuda_version or MISSING),
        ("TensorRT", info.tensorrt_version or MISSING),
        ("ONNX Runtime", info.onnxruntime_version or MISSING),
        ("CPU", f"{info.cpu_model} × {info.cpu_count}"),
        ("Memory", f"{info.memory_total_mb:,} MB"),
        ("OS", _join(info.os_release, info.kernel and f"kernel {info.kernel}")),
        ("Python", info.python),
        ("Agent", info.agent_version),
    ]
    tag_text = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
    return [*facts, ("Tags", tag_text or MISSING)]


def _device_status(report: FleetReport, device: str) -> str:
    jobs = sum(r.device == device for r in report.rows)
    failed = sum(f.device == device for f in report.failures)
    if not jobs:
        return "failed"
    return f"ok ({jobs} jobs)" if not failed else f"partial ({jobs} jobs, {failed} failed)"


# --------------------------------------------------------------------------- formatting


def _ms(v: float) -> str:
    return f"{v:.2f}"


def _pct(v: float | None) -> str:
    return MISSING if v is None else f"{v * 100:.2f} %"


def _pp(v: float | None) -> str:
    return MISSING if v is None else f"{v:+.2f} pp"


def _stat(values: Sequence[float], fn: Callable[[Sequence[float]], float], fmt: str) -> str:
    return fmt.format(fn(values)) if values else NOT_MEASURED


def _join(*parts: str | None) -> str:
    return ", ".join(p for p in parts if p) or MISSING


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _precision_rank(precision: str) -> int:
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def _header_facts(report: FleetReport) -> list[tuple[str, str]]:
    """The header: what was measured, where and when, before any number."""
    measured = len(report.devices) - len(report.failed_devices)
    refs = ", ".join(f"{p} {_pct(v)}" for p, v in report.reference_accuracy.items()) or MISSING
    return [
        ("Model", report.model),
        ("Versions", ", ".join(map(str, report.versions)) or MISSING),
        ("Precisions", ", ".join(report.precisions) or MISSING),
        ("Batch sizes", ", ".join(map(str, report.batch_sizes)) or MISSING),
        ("Devices", f"{len(report.devices)} ({measured} measured, {len(report.failed_devices)} failed)"),
        ("Jobs", f"{len(report.rows)} finished, {len(report.failures)} failed"),
        ("Registry top-1", refs),
        ("Created", _utc(report.created_at)),
    ]


# --------------------------------------------------------------------------- plots


@dataclass(frozen=True)
class Plot:
    """One rendered figure: the PNG bytes go into the page (data URI) and beside the Markdown (file)."""

    name: str
    title: str
    caption: str
    png: bytes


def render_plots(report: FleetReport) -> list[Plot]:
    """Every plot that has data to show, in page order."""
    series = _plot_series(report)
    aggregated = len({r.device for r in report.rows}) > MAX_PLOT_SERIES
    grouped = "per device class (median over its devices)" if aggregated else "per device"
    plots: list[Plot] = []
    if report.rows:
        plots.append(
            Plot(
                "latency",
                "Latency",
                f"Latency per batch {grouped}: bar = p50, dot = p95, whisker top = p99.",
                _png(_latency_figure(report, series)),
            )
        )
        plots.append(
            Plot(
                "throughput",
                "Throughput",
                f"Throughput (items/s) {grouped} and batch size.",
                _png(_throughput_figure(report, series)),
            )
        )
    if any(r.result.top1 is not None for r in report.rows):
        plots.append(
            Plot(
                "accuracy",
                "Accuracy",
                f"Top-1 {grouped} and precision; dashed lines are the registry's figures.",
                _png(_accuracy_figure(report, series)),
            )
        )
    telemetry = _telemetry_by_device(report)
    if telemetry:
        plots.append(
            Plot(
                "telemetry",
                "Telemetry",
                "Load, hottest thermal zone and input power during the jobs, seconds since each device's first sample.",
                _png(_telemetry_figure(telemetry)),
            )
        )
    return plots


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)
    return buf.getvalue()


def _plot_series(report: FleetReport) -> dict[str, list[BenchRow]]:
    """Label → rows drawn as one bar group: each device, or each device class once the fleet is too big."""
    by_device: dict[str, list[BenchRow]] = {}
    for r in report.sorted_rows():
        by_device.setdefault(r.device, []).append(r)
    if len(by_device) <= MAX_PLOT_SERIES:
        return by_device
    by_class: dict[str, list[BenchRow]] = {}
    for r in report.sorted_rows():
        by_class.setdefault(r.info.device_class if r.info else "unknown", []).append(r)
    return {f"{k} (n={len({r.device for r in v})})": v for k, v in sorted(by_class.items())}


def _pick(
    rows: Sequence[BenchRow], precision: str, batch: int | None, get: Callable[[BenchRow], float | None]
) -> float:
    """The median of ``get`` over matching rows (one row per device; many per class); NaN = nothing to draw."""
    values = [
        v
        for r in rows
        if r.precision == precision and (batch is None or r.batch_size == batch) and (v := get(r)) is not None
    ]
    return float(statistics.median(values)) if values else math.nan


def _label(text: str, limit: int = 22) -> str:
    """Device names are untrusted: ``$`` would switch matplotlib to mathtext (and can make it raise)."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return short.replace("$", r"\$")


def _precision_axes(report: FleetReport, n_series: int) -> tuple[Figure, list[Axes]]:
    """One panel per precision, sharing the y axis so panels compare at a glance."""
    precisions = report.precisions
    width = max(10.0, min(22.0, 2.0 + n_series * len(precisions) * (0.35 + 0.2 * len(report.batch_sizes))))
    fig = Figure(figsize=(width, 4.6), layout="constrained")
    axes = fig.subplots(1, len(precisions), squeeze=False, sharey=True)[0]
    for ax, precision in zip(axes, precisions, strict=True):
        ax.set_title(precision)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig, list(axes)


def _grouped_bars(
    ax: Axes,
    series: Mapping[str, Sequence[BenchRow]],
    batches: Sequence[int],
    precision: str,
    get: Callable[[BenchRow], float | None],
) -> list[tuple[np.ndarray, int]]:
    """Bars per series (x) and batch size (hue); returns each batch's bar positions for overlays."""
    width = 0.8 / len(batches)
    colors = _batch_colors(len(batches))
    base = np.arange(len(series))
    positions = []
    for j, batch in enumerate(batches):
        x = base - 0.4 + width * (j + 0.5)
        values = [_pick(rows, precision, batch, get) for rows in series.values()]
        ax.bar(x, values, width * 0.92, color=colors[j], label=f"batch {batch}")
        positions.append((x, batch))
    _device_ticks(ax, list(series))
    return positions


def _device_ticks(ax: Axes, labels: Sequence[str]) -> None:
    """Slant the labels once they would collide: device names are long (``jetson-orin-nano-lab-a-017``)."""
    slant = len(labels) > 3 or max(map(len, labels), default=0) > 12
    ax.set_xticks(
        np.arange(len(labels)),
        [_label(s) for s in labels],
        rotation=25 if slant else 0,
        ha="right" if slant else "center",
    )


def _batch_colors(n: int) -> list[tuple[float, float, float, float]]:
    """A sequential palette: bigger batches are darker, which reads as "more" without a legend lookup."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 - 0.7 * i / max(1, n - 1)) for i in range(n)]


def _latency_figure(report: FleetReport, series: Mapping[str, Sequence[BenchRow]]) -> Figure:
    fig, axes = _precision_axes(report, len(series))
    batches = report.batch_sizes
    for ax, precision in zip(axes, report.precisions, strict=True):
        for x, batch in _grouped_bars(ax, series, batches, precision, lambda r: r.result.latency.median_ms):
            rows = [_rows_of(rs, precision, batch) for rs in series.values()]
            p50 = [_median_of(rs, "median_ms") for rs in rows]
            p95 = [_median_of(rs, "p95_ms") for rs in rows]
            p99 = [_median_of(rs, "p99_ms") for rs in rows]
            ax.vlines(x, p50, p99, color="#222", linewidth=1)
            ax.scatter(x, p99, marker="_", color="#222", s=40, zorder=3)
            ax.scatter(x, p95, marker="o", color="white", edgecolors="#222", s=14, zorder=3)
    axes[0].set_ylabel("latency per batch (ms)")
    if _spread(report, lambda r: r.result.latency.median_ms) > 30:
        axes[0].set_yscale("log")
    handles, _ = axes[0].get_legend_handles_labels()
    handles += [
        Line2D([], [], color="#222", marker="o", markerfacecolor="white", linestyle="", label="p95"),
        Line2D([], [], color="#222", marker="_", linestyle="-", label="p99"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle("Latency per batch: bar p50, dot p95, whisker p99")
    return fig


def _rows_of(rows: Sequence[BenchRow], precision: str, batch: int) -> list[BenchRow]:
    return [r for r in rows if r.precision == precision and r.batch_size == batch]


def _median_of(rows: Sequence[BenchRow], stat: str) -> float:
    return float(statistics.median(getattr(r.result.latency, stat) for r in rows)) if rows else math.nan


def _spread(report: FleetReport, get: Callable[[BenchRow], float]) -> float:
    """max/min of a positive quantity: above ~30 a linear axis flattens the small bars to nothing."""
    values = [v for r in report.rows if (v := get(r)) > 0]
    return max(values) / min(values) if values else 1.0


def _throughput_figure(report: FleetReport, series: Mapping[str, Sequence[BenchRow]]) -> Figure:
    fig, axes = _precision_axes(report, len(series))
    for ax, precision in zip(axes, report.precisions, strict=True):
        _grouped_bars(ax, series, report.batch_sizes, precision, lambda r: r.result.throughput)
    axes[0].set_ylabel("throughput (items/s)")
    handles, _ = axes[0].get_legend_handles_labels()
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle("Throughput (items ÷ wall time)")
    return fig


PRECISION_COLORS = {"fp32": "tab:blue", "fp16": "tab:orange", "int8": "tab:green"}


def _accuracy_figure(report: FleetReport, series: Mapping[str, Sequence[BenchRow]]) -> Figure:
    """Dots, not bars: accuracies differ by tenths of a point, which bars from 0 would hide."""
    fig = Figure(figsize=(max(9.0, min(22.0, 3.0 + 0.9 * len(series))), 4.4), layout="constrained")
    ax = fig.subplots()
    precisions = report.precisions
    base = np.arange(len(series))
    step = 0.6 / max(1, len(precisions))
    for i, precision in enumerate(precisions):
        color = PRECISION_COLORS.get(precision, f"C{i + 3}")
        values = [_pick(rows, precision, None, lambda r: r.result.top1) * 100 for rows in series.values()]
        ax.scatter(base - 0.3 + step * (i + 0.5), values, color=color, s=50, zorder=3, label=f"{precision} on device")
        reference = report.reference_for(precision)
        if reference is not None:
            ax.axhline(reference * 100, color=color, linestyle="--", linewidth=1, label=f"{precision} registry")
    _device_ticks(ax, list(series))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    ax.set_title("Top-1 accuracy per device and precision vs the registry")
    return fig


def _telemetry_figure(telemetry: Mapping[str, Sequence[TelemetrySample]]) -> Figure:
    """CPU, GPU, temperature and power over time, one line per device (the hottest ones on a big fleet)."""
    devices = _hottest(telemetry, MAX_PLOT_SERIES)
    fig = Figure(figsize=(11.0, 9.0), layout="constrained")
    axes = fig.subplots(len(TELEMETRY_PANELS), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, get) in zip(axes, TELEMETRY_PANELS, strict=True):
        drawn = False
        for i, device in enumerate(devices):
            t, v = _series_over_time(telemetry[device], get)
            if np.isfinite(v).any():
                ax.plot(t, v, color=f"C{i % 10}", linewidth=1.2, label=_label(device, 30))
                drawn = True
        ax.set_ylabel(title, fontsize="small")
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, NOT_MEASURED, transform=ax.transAxes, ha="center", va="center", color="#888")
    axes[-1].set_xlabel("seconds since the device's first sample")
    handles, labels = _legend_entries(axes)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    shown = f" (hottest {len(devices)} of {len(telemetry)})" if len(devices) < len(telemetry) else ""
    fig.suptitle(f"Telemetry during the benchmark{shown}")
    return fig


def _legend_entries(axes: Sequence[Axes]) -> tuple[list[Any], list[str]]:
    """One legend entry per device, whichever panel happened to draw it."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def _hottest(telemetry: Mapping[str, Sequence[TelemetrySample]], n: int) -> list[str]:
    """The ``n`` devices with the highest peak temperature (unmeasured last), those an operator worries about."""

    def peak(device: str) -> float:
        values = _values(telemetry[device], _hottest_c)
        return max(values) if values else -math.inf

    return sorted(telemetry, key=lambda d: (-peak(d), d))[:n]


def _series_over_time(
    samples: Sequence[TelemetrySample], get: Callable[[TelemetrySample], float | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds since the first sample and values (NaN = not measured), with NaN breaks across pauses."""
    t = np.array([s.timestamp for s in samples], dtype=float) - samples[0].timestamp
    v = np.array([math.nan if (x := get(s)) is None else x for s in samples], dtype=float)
    if len(t) < 3:
        return t, v
    dt = np.diff(t)
    typical = float(np.median(dt[dt > 0])) if (dt > 0).any() else 0.0
    gaps = np.flatnonzero(dt > GAP_FACTOR * typical) + 1 if typical > 0 else np.array([], dtype=int)
    return np.insert(t, gaps, np.nan), np.insert(v, gaps, np.nan)


def _telemetry_by_device(report: FleetReport) -> dict[str, list[TelemetrySample]]:
    """Every sample a device sent during its jobs, in time order; devices without samples are left out."""
    out: dict[str, dict[float, TelemetrySample]] = {}
    for r in report.sorted_rows():
        for s in r.result.telemetry:
            out.setdefault(r.device, {})[s.timestamp] = s  # jobs may share a sample at their boundary
    return {d: [by_ts[t] for t in sorted(by_ts)] for d, by_ts in sorted(out.items())}


def _values(samples: Iterable[TelemetrySample], get: Callable[[TelemetrySample], float | None]) -> list[float]:
    return [v for s in samples if (v := get(s)) is not None]


def _cpu(s: TelemetrySample) -> float | None:
    return s.cpu_percent


def _gpu(s: TelemetrySample) -> float | None:
    return s.gpu_percent


def _ram(s: TelemetrySample) -> float | None:
    return s.ram_used_mb


def _hottest_c(s: TelemetrySample) -> float | None:
    """The hottest zone, ignoring PMIC: tegrastats reports a constant 50 °C there, not a measurement."""
    values = [v for k, v in s.temperatures_c.items() if not k.lower().startswith("pmic")]
    return max(values) if values else None


INPUT_RAILS = ("vdd_in", "pom_5v_in")
"""Jetson's board input rail (Orin: VDD_IN, Nano/Xavier: POM_5V_IN) already includes every other rail."""


def _power_w(s: TelemetrySample) -> float | None:
    """Board power in watts: the input rail when reported, otherwise the sum of the rails there are."""
    if not s.power_mw:
        return None
    for name, mw in s.power_mw.items():
        if name.lower() in INPUT_RAILS:
            return mw / 1000.0
    return sum(s.power_mw.values()) / 1000.0


TELEMETRY_PANELS: tuple[tuple[str, Callable[[TelemetrySample], float | None]], ...] = (
    ("CPU load (%)", _cpu),
    ("GPU load (%)", _gpu),
    ("hottest zone (°C)", _hottest_c),
    ("power (W)", _power_w),
)


# --------------------------------------------------------------------------- HTML


CSS = """
:root { --fg: #1d2433; --muted: #5b6475; --line: #dde2ea; --head: #f1f4f8; --bad: #b42318; --badbg: #fef3f2; }
* { box-sizing: border-box; }
body { margin: 0; background: #eef1f5; color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1440px; margin: 0 auto; padding: 20px 20px 40px; background: #fff; min-height: 100vh; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
nav a { color: #1f5fbf; margin-right: 14px; text-decoration: none; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px 24px; margin: 0 0 12px; }
.facts dt { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .05em; }
.facts dd { margin: 0; font-weight: 600; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: var(--head); font-weight: 600; white-space: normal; vertical-align: bottom; }
.scroll table { font-size: 13px; }
td.wrap { white-space: normal; min-width: 130px; }
.num { text-align: right; }
tbody tr:nth-child(even) { background: #fafbfd; }
tbody tr:hover { background: #eef4ff; }
tr.failed td { background: var(--badbg); color: var(--bad); }
td.reason { white-space: normal; }
.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
figure { margin: 12px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.devices { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
.device { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.device.failed { border-color: var(--bad); }
.device th { width: 34%; background: none; color: var(--muted); font-weight: normal; }
.device td { white-space: normal; word-break: break-word; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: _Table, table_id: str) -> str:
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
        for h, num in zip(table.headers, table.numeric, strict=True)
    )
    body = "\n".join(f"<tr{_class_attr(cls)}>{''.join(_html_cell(c) for c in cells)}</tr>" for cells, cls in table.rows)
    return f'<div class="scroll"><table id="{_e(table_id)}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def _html_cell(cell: _Cell) -> str:
    attrs = _class_attr("num" if cell.num else "", cell.cls) + (f' colspan="{cell.span}"' if cell.span > 1 else "")
    return f"<td{attrs}>{_e(cell.text)}</td>"


def _class_attr(*classes: str) -> str:
    joined = " ".join(c for c in classes if c)
    return f' class="{_e(joined)}"' if joined else ""


def _html_header(report: FleetReport) -> str:
    facts = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in _header_facts(report))
    links = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (("summary", "Summary"), ("plots", "Plots"), ("telemetry", "Telemetry"), ("failures", "Failures"))
    )
    return (
        f"<header><h1>Fleet benchmark: {_e(report.model)}</h1>"
        f'<dl class="facts">{facts}</dl><nav>{links}<a href="#devices">Devices</a></nav></header>'
    )


def _html_plots(plots: Sequence[Plot], report: FleetReport) -> str:
    figures = [_html_figure(p) for p in plots if p.name != "telemetry"]
    if not any(p.name == "accuracy" for p in plots) and report.rows:
        figures.append(f'<p class="muted">Accuracy: {NOT_MEASURED} (the jobs had no labelled test set).</p>')
    return (
        "\n".join(figures)
        or '<p class="muted">No results to plot: every job failed (see <a href="#failures">failures</a>).</p>'
    )


def _html_figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure id="plot-{_e(plot.name)}"><img alt="{_e(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(plot.caption)}</figcaption></figure>"
    )


def _html_telemetry(plots: Sequence[Plot], report: FleetReport) -> str:
    plot = next((p for p in plots if p.name == "telemetry"), None)
    if plot is None:
        return f'<p class="muted">Telemetry: {NOT_MEASURED} (no device sent samples during its jobs).</p>'
    return _html_figure(plot) + _html_table(_telemetry_table(report), "telemetry-table")


def _html_failures(report: FleetReport) -> str:
    if not report.failures:
        return '<p class="muted">No failures: every device finished every job.</p>'
    return _html_table(_failures_table(report), "failures-table")


def _html_devices(report: FleetReport) -> str:
    cards = []
    for device, (info, tags) in report.device_facts().items():
        status = _device_status(report, device)
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _device_facts(info, tags, status))
        failed = " failed" if status == "failed" else ""
        cards.append(f'<section class="device{failed}"><h3>{_e(device)}</h3><table>{rows}</table></section>')
    return f'<div class="devices">{"".join(cards)}</div>'


def render_html(report: FleetReport, plots: Sequence[Plot]) -> str:
    """The self-contained page: inline CSS, PNGs as data URIs, no script, every device string escaped."""
    sections = (
        ("summary", "Summary", _html_table(_summary_table(report), "summary-table")),
        ("plots", "Latency, throughput and accuracy", _html_plots(plots, report)),
        ("telemetry", "Telemetry during the run", _html_telemetry(plots, report)),
        ("failures", f"Failures ({len(report.failures)})", _html_failures(report)),
        ("devices", f"Devices ({len(report.devices)})", _html_devices(report)),
    )
    body = "\n".join(
        f'<section id="{sid}"><h2>{_e(title)}</h2>\n{content}</section>' for sid, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Fleet benchmark: {_e(report.model)}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{_html_header(report)}\n{body}\n"
        f'<footer class="muted"><p>jetfleet bench report, schema {SCHEMA_VERSION}; every figure is in results.json.</p></footer>'
        "</main></body></html>\n"
    )


# --------------------------------------------------------------------------- Markdown


def _md(text: object) -> str:
    """Escape for Markdown: raw HTML would render, ``|`` split a cell, ``$`` start maths, newlines end a row."""
    escaped = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|$":
        escaped = escaped.replace(ch, "\\" + ch)
    return " ".join(escaped.split())


def _md_table(table: _Table) -> str:
    lines = [
        "| " + " | ".join(_md(h) for h in table.headers) + " |",
        "| " + " | ".join("---:" if num else "---" for num in table.numeric) + " |",
    ]
    for cells, _cls in table.rows:
        texts = [t for c in cells for t in [c.text, *[""] * (c.span - 1)]]
        lines.append("| " + " | ".join(_md(t) for t in texts) + " |")
    return "\n".join(lines)


def render_markdown(report: FleetReport, plot_files: Mapping[str, str]) -> str:
    """The same tables in Markdown, for a README or a pull request; plots are the PNG files beside it."""
    parts = [f"# Fleet benchmark: {_md(report.model)}", ""]
    parts += [f"- **{_md(k)}**: {_md(v)}" for k, v in _header_facts(report)]
    parts += ["", "## Summary", "", _md_table(_summary_table(report)), ""]
    for name, title in (("latency", "Latency"), ("throughput", "Throughput"), ("accuracy", "Accuracy")):
        parts += [f"## {title}", ""]
        parts.append(f"![{title}]({plot_files[name]})" if name in plot_files else f"_{NOT_MEASURED}_")
        parts.append("")
    parts += ["## Telemetry during the run", ""]
    if "telemetry" in plot_files:
        parts += [f"![Telemetry]({plot_files['telemetry']})", "", _md_table(_telemetry_table(report))]
    else:
        parts.append(f"_{NOT_MEASURED}_ (no device sent samples during its jobs)")
    parts += ["", f"## Failures ({len(report.failures)})", ""]
    parts.append(_md_table(_failures_table(report)) if report.failures else "No failures.")
    parts += ["", f"## Devices ({len(report.devices)})", ""]
    for device, (info, tags) in report.device_facts().items():
        facts = _device_facts(info, tags, _device_status(report, device))
        table = _Table(("Fact", "Value"), (False, False), [((_Cell(k), _Cell(v)), "") for k, v in facts])
        parts += [f"### {_md(device)}", "", _md_table(table), ""]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- writing


def write_report(out_dir: Path, report: FleetReport) -> ReportFiles:
    """Write report.html, report.md (+ PNGs), results.json and results.csv into ``out_dir``; return the paths.

    Every file is written atomically, and the page comes last, so someone
    refreshing report.html never sees a half-written report. PNGs of plots
    that have no data this time are removed, so report.md never shows a
    stale figure from an earlier run in the same folder.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = render_plots(report)
    plot_paths = _write_plots(out_dir, plots)
    files = ReportFiles(
        html=out_dir / "report.html",
        markdown=out_dir / "report.md",
        json=out_dir / "results.json",
        csv=out_dir / "results.csv",
        plots=plot_paths,
    )
    _write(files.csv, render_csv(report).encode())
    _write(files.json, render_json(report).encode())
    _write(files.markdown, render_markdown(report, {k: p.name for k, p in plot_paths.items()}).encode())
    _write(files.html, render_html(report, plots).encode())
    return files


def _write_plots(out_dir: Path, plots: Sequence[Plot]) -> dict[str, Path]:
    paths = {}
    for plot in plots:
        paths[plot.name] = out_dir / f"{plot.name}.png"
        _write(paths[plot.name], plot.png)
    for name in set(PLOT_NAMES) - set(paths):
        (out_dir / f"{name}.png").unlink(missing_ok=True)
    return paths


def _write(path: Path, data: bytes) -> None:
    """Write atomically with the permissions of any file the user creates.

    The temporary file behind :func:`atomic_path` is mkstemp's 0600, which
    would hide a report from the colleague or web server meant to read it.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o666 & ~_umask())


def _umask() -> int:
    """The process umask; reading it means setting it, so it is put straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
