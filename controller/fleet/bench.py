"""`jetfleet bench`: benchmark jobs across the fleet, per precision and batch size, into a report.

For each precision the model is deployed (and waited for) on the selected
devices; then every batch size runs as one fleet job: ``warmup`` untimed
batches and ``iterations`` timed ones cycling over the test set, after an
accuracy pass over all of it. The results (stored by the controller too)
become the fleet report: HTML, Markdown, JSON and CSV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jetfleet.common.device import DeviceInfo
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import JobResult
from jetfleet.proto import convert
from jetfleet.proto.rpc import QUICK_S
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc

if TYPE_CHECKING:
    from jetfleet.controller.fleet.report import ReportFiles

Log = Callable[[str], None]


@dataclass
class BenchRun:
    """Everything a fleet benchmark measured, and what failed."""

    model: str
    results: list[JobResult] = field(default_factory=list)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # "device/precision[/batch]" -> reason
    reference: dict[str, float | None] = field(default_factory=dict)  # precision -> the registry's top-1


def iterations_for(batch_size: int, budget_items: int = 512) -> int:
    """Timed batches per job: about ``budget_items`` images, at least 20 batches for stable p99s."""
    return max(20, budget_items // batch_size)


def run_bench(
    stub: admin_pb2_grpc.AdminServiceStub,
    model: str,
    selector: str,
    batch_sizes: Sequence[int],
    precisions: Sequence[str],
    log: Log = print,
    budget_items: int = 512,
) -> BenchRun:
    """Deploy each precision, run every batch size on every device, collect the results."""
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise JetfleetError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    run = BenchRun(model)
    name = model.split(":")[0].split("@")[0]
    for precision in precisions:
        active = _deploy(stub, model, selector, precision, run, log)
        if not active:
            continue
        for batch in batch_sizes:
            log(f"{precision}, batch {batch}: benchmarking on {', '.join(sorted(active))}")
            request = adm.FleetJobRequest(
                model=name,
                selector=",".join(sorted(active)),
                batch_size=batch,
                warmup=5,
                iterations=iterations_for(batch, budget_items),
            )
            for ev in stub.RunJobs(request):
                if ev.phase == "done":
                    run.results.append(convert.job_result_from_pb(ev.result))
                elif ev.phase == "failed":
                    run.failures[f"{ev.device}/{precision}/b{batch}"] = ev.message
    for view in stub.ListDevices(adm.ListDevicesRequest(selector=selector), timeout=QUICK_S).devices:
        run.devices[view.name] = convert.device_from_pb(view.device)
        run.tags[view.name] = dict(view.tags)
    return run


def _deploy(
    stub: admin_pb2_grpc.AdminServiceStub, model: str, selector: str, precision: str, run: BenchRun, log: Log
) -> set[str]:
    """Deploy ``precision`` and wait; the devices where it is active."""
    log(f"deploying {model} ({precision})")
    active = set()
    for ev in stub.Deploy(adm.FleetDeployRequest(model=model, precision=precision, selector=selector, wait=True)):
        if ev.phase == "planned" and ev.spec.HasField("reference_accuracy"):
            run.reference[precision] = ev.spec.reference_accuracy
        elif ev.phase == "active":
            active.add(ev.device)
        elif ev.phase in ("failed", "blocked", "offline", "timeout"):
            run.failures[f"{ev.device}/{precision}"] = f"{ev.phase}: {ev.message}"
            log(f"{ev.device}: {ev.phase} {ev.message}")
    return active


def write_bench_report(out_dir: Path, run: BenchRun) -> ReportFiles:
    """The fleet report of ``run`` (HTML, Markdown, JSON, CSV) in ``out_dir``."""
    from jetfleet.controller.fleet.report import FleetReport, write_report

    report = FleetReport.from_results(run.model, run.results, run.devices, run.tags, run.failures, run.reference)
    return write_report(out_dir, report)
