"""Fleet commands: `jetfleet controller serve`, `devices ...`, `deploy`, `status`.

Every command except ``controller serve`` is a thin client of the controller
daemon's admin service (``--controller``, ``$JETFLEET_CONTROLLER``, default
127.0.0.1:50050): the daemon owns the fleet, the CLI only asks.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from jetfleet.common.errors import JetfleetError
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, QUICK_S, make_channel
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc

DEFAULT_CONTROLLER = "127.0.0.1:50050"
INSECURE_ENV = "JETFLEET_INSECURE"  # "1": talk plaintext to a controller started with --insecure


def _remember_insecure(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["jetfleet.insecure"] = True


def controller_option(fn: Any) -> Any:
    """``--controller`` and ``--insecure`` for every command that calls the controller."""
    fn = click.option(
        "--insecure",
        is_flag=True,
        expose_value=False,
        callback=_remember_insecure,
        help=f"Plaintext, for a controller started with --insecure (also ${INSECURE_ENV}=1).",
    )(fn)
    return click.option(
        "--controller",
        "address",
        default=lambda: os.environ.get("JETFLEET_CONTROLLER", DEFAULT_CONTROLLER),
        show_default="$JETFLEET_CONTROLLER or 127.0.0.1:50050",
        help="Address of the controller daemon.",
    )(fn)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def insecure_requested() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("jetfleet.insecure")) or os.environ.get(INSECURE_ENV, "") not in ("", "0")


def admin_channel(address: str, insecure: bool | None = None) -> grpc.Channel:
    """Mutual TLS with the operator's certificate from the PKI folder, unless plaintext was asked for."""
    if insecure_requested() if insecure is None else insecure:
        return make_channel(address)
    from jetfleet.controller.fleet.security import FleetPKI, default_pki_dir

    folder = Path(os.environ.get("JETFLEET_PKI") or default_pki_dir())
    return make_channel(address, credentials=FleetPKI(folder).admin_credentials(), server_name=CONTROLLER_TLS_NAME)


def _stub(address: str) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(admin_channel(address))


def _call(address: str, fn: Any) -> Any:
    """Run an admin call; turn "nobody there" and refusals into one clear line."""
    try:
        return fn(_stub(address))
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise JetfleetError(
                f"cannot reach the controller at {address}", "start it with `jetfleet controller serve`"
            ) from None
        raise JetfleetError(exc.details() or exc.code().name) from None


def _dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _ago(ts: float) -> str:
    secs = max(0.0, time.time() - ts)
    return f"{secs:.0f} s ago" if secs < 120 else f"{secs / 60:.0f} min ago"


def _serving(view: adm.DeviceView) -> str:
    return ", ".join(f"{s.spec.model}:{s.spec.version}/{s.spec.precision}" for s in view.active) or "-"


# ---------------------------------------------------------------------------------- controller serve
@click.group("controller")
def controller_group() -> None:
    """The controller daemon."""


@controller_group.command("serve")
@click.option("--listen", default="0.0.0.0:50050", show_default=True, help="host:port for agents and the CLI.")
@click.option("--db", default=None, help="Database URL (default: the embedded SQLite registry).")
@click.option("--fanout", default=32, show_default=True, help="Devices pushed to at once.")
@click.option("--offline-after", default=90.0, show_default=True, help="Seconds without heartbeats before offline.")
@click.option("--heartbeat-interval", default=10.0, show_default=True, help="Seconds between agent heartbeats.")
@click.option(
    "--enroll-listen", default="0.0.0.0:50049", show_default=True, help="host:port where devices enroll (TLS)."
)
@click.option(
    "--pki",
    "pki_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The fleet's PKI folder (default: $JETFLEET_PKI or JETFLEET_HOME/pki, made by `jetfleet certs init`).",
)
@click.option("--insecure", is_flag=True, help="Plaintext, no enrollment, unsigned manifests: local development only.")
def serve_cmd(
    listen: str,
    db: str | None,
    fanout: int,
    offline_after: float,
    heartbeat_interval: float,
    enroll_listen: str,
    pki_dir: Path | None,
    insecure: bool,
) -> None:
    """Serve agents and the CLI over mutual TLS; reconcile the fleet until SIGTERM/SIGINT."""
    import logging

    from jetfleet.controller.fleet.daemon import Controller, ControllerSettings
    from jetfleet.controller.fleet.security import FleetPKI, default_pki_dir
    from jetfleet.controller.registry.store import Registry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ControllerSettings(
        listen=listen,
        fanout=fanout,
        heartbeat_interval_s=heartbeat_interval,
        offline_after_s=offline_after,
        stale_after_s=min(30.0, offline_after / 3),
        enroll_listen=enroll_listen,
    )
    fleet_pki = None if insecure else FleetPKI(pki_dir or Path(os.environ.get("JETFLEET_PKI") or default_pki_dir()))
    controller = Controller(Registry.open(db), settings, fleet_pki)
    port = controller.start()
    if insecure:
        click.echo("WARNING: plaintext gRPC, no client certificates, unsigned manifests (--insecure)", err=True)
    else:
        click.echo(f"jetfleet controller enrollment on {controller.enroll_address}", err=True)
    click.echo(f"jetfleet controller listening on port {port}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    click.echo("stopping the controller", err=True)
    controller.stop()


# ---------------------------------------------------------------------------------- devices
@click.group("devices")
def devices_group() -> None:
    """The fleet's devices, as the controller knows them."""


@devices_group.command("list")
@click.option("--devices", "selector", default="all", show_default=True, help="all, name1,name2 or tag=key=value")
@controller_option
@json_option
def devices_list(selector: str, address: str, as_json: bool) -> None:
    """Every registered device: liveness, board, what it serves."""
    reply = _call(address, lambda s: s.ListDevices(adm.ListDevicesRequest(selector=selector), timeout=QUICK_S))
    if as_json:
        click.echo(json.dumps([_dict(d) for d in reply.devices], indent=2))
        return
    table = Table("device", "state", "board", "backend", "serving", "tags", "last seen")
    colors = {"online": "green", "stale": "yellow", "offline": "red"}
    for d in reply.devices:
        table.add_row(
            d.name,
            f"[{colors.get(d.liveness, 'white')}]{d.liveness}[/]",
            d.device.board,
            ",".join(d.backends[:1]) or "-",
            _serving(d),
            " ".join(f"{k}={v}" for k, v in sorted(d.tags.items())),
            _ago(d.last_seen),
        )
    Console().print(table)


@devices_group.command("show")
@click.argument("name")
@controller_option
@json_option
def devices_show(name: str, address: str, as_json: bool) -> None:
    """Everything the controller knows about one device."""
    reply = _call(address, lambda s: s.ListDevices(adm.ListDevicesRequest(selector=name), timeout=QUICK_S))
    (view,) = reply.devices
    data = _dict(view)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    console.print(f"[bold]{view.name}[/] ({view.liveness}, {view.address}), last seen {_ago(view.last_seen)}")
    for key, value in sorted(data.get("device", {}).items()):
        console.print(f"  {key}: {value}")
    console.print(f"  serving: {_serving(view)}")
    console.print(f"  tags: {' '.join(f'{k}={v}' for k, v in sorted(view.tags.items())) or '-'}")


@devices_group.command("tag")
@click.argument("name")
@click.argument("tags", nargs=-1, required=True)
@controller_option
@json_option
def devices_tag(name: str, tags: tuple[str, ...], address: str, as_json: bool) -> None:
    """Set tags (key=value) or remove them (key-) on a device."""
    add, remove = {}, []
    for item in tags:
        if item.endswith("-") and "=" not in item:
            remove.append(item[:-1])
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise JetfleetError(f"tag {item!r} is neither key=value nor key- (to remove)")
        add[key] = value
    view = _call(
        address, lambda s: s.TagDevice(adm.TagDeviceRequest(name=name, add=add, remove=remove), timeout=QUICK_S)
    )
    click.echo(
        json.dumps(_dict(view)["tags"])
        if as_json
        else f"{name}: {' '.join(f'{k}={v}' for k, v in sorted(view.tags.items()))}"
    )


@devices_group.command("remove")
@click.argument("name")
@controller_option
def devices_remove(name: str, address: str) -> None:
    """Forget a device (it registers again if its agent still runs)."""
    _call(address, lambda s: s.RemoveDevice(adm.RemoveDeviceRequest(name=name), timeout=QUICK_S))
    click.echo(f"removed {name}")


# ---------------------------------------------------------------------------------- deploy / status
@click.command("deploy")
@click.option("--model", required=True, help="Registry reference: name, name:version or name@alias.")
@click.option("--devices", "selector", default="all", show_default=True, help="all, name1,name2 or tag=key=value")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow progress until every device is done.")
@click.option("--timeout", default=0.0, help="With --wait: stop watching after this many seconds (0 = no limit).")
@click.option("--canary", default=0, show_default=True, help="Deploy to N devices first and check the gates.")
@click.option("--wave-size", default=0, show_default=True, help="Then proceed in waves of N (0 = the rest at once).")
@click.option(
    "--min-accuracy", type=float, default=None, help="Gate: smoke-test top-1 (0-1) on every device of a wave."
)
@click.option("--max-p99-ms", type=float, default=None, help="Gate: batch-1 p99 latency on every device of a wave.")
@click.option("--plan", is_flag=True, help="Show what would happen (cached engines, builds, waves); change nothing.")
@controller_option
@json_option
def deploy_cmd(
    model: str,
    selector: str,
    precision: str,
    wait: bool,
    timeout: float,
    canary: int,
    wave_size: int,
    min_accuracy: float | None,
    max_p99_ms: float | None,
    plan: bool,
    address: str,
    as_json: bool,
) -> None:
    """Make the selected devices serve MODEL; offline devices converge when they return.

    With --canary/--wave-size the rollout is staged: each wave must be active
    and within the gates, or the rollout halts and the touched devices go
    back to what they served before.
    """
    request = adm.FleetDeployRequest(
        model=model,
        precision=precision,
        selector=selector,
        wait=wait,
        timeout_s=timeout,
        canary=canary,
        wave_size=wave_size,
        plan=plan,
    )
    if min_accuracy is not None:
        request.min_accuracy = min_accuracy
    if max_p99_ms is not None:
        request.max_p99_ms = max_p99_ms
    outcomes: dict[str, adm.FleetDeployEvent] = {}
    console = Console(stderr=as_json)
    halted = []

    def follow(stub: admin_pb2_grpc.AdminServiceStub) -> None:
        for ev in stub.Deploy(request):
            if ev.phase == "planned":
                console.print(f"planned: {ev.message}")
            elif ev.phase in ("wave", "gate", "halted"):
                console.print(f"[bold]{ev.phase}[/] {ev.message}")
                if ev.phase == "halted":
                    halted.append(ev.message)
            elif ev.phase == "rolled-back":
                outcomes[ev.device] = ev
                console.print(f"{ev.device}: rolled back ({ev.message})")
            elif ev.phase == "step":
                console.print(f"{ev.device}: {ev.message}", style="dim")
            elif ev.phase in ("active", "failed", "blocked", "offline", "timeout"):
                outcomes[ev.device] = ev
                console.print(f"{ev.device}: [bold]{ev.phase}[/] {ev.message}")
            elif ev.phase == "uploading":
                console.print(f"{ev.device}: {ev.message}", style="dim")

    _call(address, follow)
    if plan:
        return
    _outcome_table(outcomes, as_json, wait or bool(canary or wave_size))
    if halted or any(ev.phase in ("failed", "blocked", "timeout") for ev in outcomes.values()):
        raise SystemExit(1)


def _outcome_table(outcomes: dict[str, adm.FleetDeployEvent], as_json: bool, wait: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({k: {"phase": v.phase, "message": v.message} for k, v in sorted(outcomes.items())}, indent=2)
        )
        return
    if not wait:
        click.echo("accepted: the controller deploys in the background (`jetfleet status` shows progress)")
        return
    table = Table("device", "outcome", "detail")
    colors = {"active": "green", "offline": "yellow", "rolled-back": "yellow"}
    for name, ev in sorted(outcomes.items()):
        table.add_row(name, f"[{colors.get(ev.phase, 'red')}]{ev.phase}[/]", ev.message)
    Console().print(table)


@click.command("status")
@controller_option
@json_option
def status_cmd(address: str, as_json: bool) -> None:
    """Fleet overview: devices, what they serve, what they should serve, recent deployments."""
    status = _call(address, lambda s: s.Status(adm.FleetStatusRequest(), timeout=QUICK_S))
    if as_json:
        click.echo(json.dumps(_dict(status), indent=2))
        return
    console = Console()
    online = sum(d.liveness == "online" for d in status.devices)
    console.print(f"[bold]{len(status.devices)} device(s)[/], {online} online")
    table = Table("device", "state", "serving", "desired", "decision")
    desired = {d.device: d for d in status.desired}
    for d in status.devices:
        want = desired.get(d.name)
        table.add_row(
            d.name,
            d.liveness,
            _serving(d),
            f"{want.spec.model}:{want.spec.version}/{want.spec.precision}" if want else "-",
            f"{want.decision} {want.reason}".strip() if want else "-",
        )
    console.print(table)


@click.command("rollback")
@click.option("--model", required=True, help="Model name.")
@click.option("--devices", "selector", default="all", show_default=True, help="all, name1,name2 or tag=key=value")
@controller_option
@json_option
def rollback_cmd(model: str, selector: str, address: str, as_json: bool) -> None:
    """Return the selected devices to the version of MODEL they served before."""
    request = adm.FleetRollbackRequest(model=model, selector=selector)
    outcomes: dict[str, adm.FleetDeployEvent] = {}

    def follow(stub: admin_pb2_grpc.AdminServiceStub) -> None:
        for ev in stub.Rollback(request):
            if ev.device:
                outcomes[ev.device] = ev

    _call(address, follow)
    _outcome_table(outcomes, as_json, wait=True)
    if any(ev.phase != "active" for ev in outcomes.values()):
        raise SystemExit(1)


@click.group("jobs")
def jobs_group() -> None:
    """Classification jobs on devices; results are kept in the controller's database."""


DATASETS = ("test-set", "digits-test")  # the served version's own test set (digits-test: the demo's name for it)


@jobs_group.command("run")
@click.option("--model", required=True, help="Model name: each device runs the version it serves.")
@click.option("--devices", "selector", default="all", show_default=True)
@click.option("--dataset", type=click.Choice(DATASETS), default="test-set", show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--warmup", default=2, show_default=True)
@click.option("--iterations", default=0, show_default=True, help="Timed batches (0 = one pass over the data).")
@controller_option
@json_option
def jobs_run(
    model: str, selector: str, dataset: str, batch_size: int, warmup: int, iterations: int, address: str, as_json: bool
) -> None:
    """Classify the model's test set on every selected device and report accuracy and latency."""
    request = adm.FleetJobRequest(
        model=model, selector=selector, batch_size=batch_size, warmup=warmup, iterations=iterations
    )
    results, failures = run_jobs(address, request)
    if as_json:
        click.echo(json.dumps({"results": [_dict(r) for r in results], "failures": failures}, indent=2))
    else:
        _jobs_table(results, failures)
    if failures:
        raise SystemExit(1)


def run_jobs(address: str, request: adm.FleetJobRequest) -> tuple[list[Any], dict[str, str]]:
    """Run a fleet job through the controller: (JobResult messages, {device: failure})."""
    results, failures = [], {}

    def follow(stub: admin_pb2_grpc.AdminServiceStub) -> None:
        for ev in stub.RunJobs(request):
            if ev.phase == "done":
                results.append(ev.result)
            elif ev.phase == "failed":
                failures[ev.device] = ev.message

    _call(address, follow)
    return sorted(results, key=lambda r: r.agent), failures


def _jobs_table(results: list[Any], failures: dict[str, str]) -> None:
    table = Table("job", "device", "model", "items", "top-1", "top-5", "p50 ms", "p99 ms", "items/s")
    for r in results:
        spec = r.model.spec
        table.add_row(
            r.job_id,
            r.agent,
            f"{spec.model}:{spec.version}/{spec.precision}",
            str(r.items),
            f"{r.top1:.2%}" if r.HasField("top1") else "-",
            f"{r.top5:.2%}" if r.HasField("top5") else "-",
            f"{r.latency.median_ms:.2f}",
            f"{r.latency.p99_ms:.2f}",
            f"{r.throughput:.0f}",
        )
    for device, why in sorted(failures.items()):
        table.add_row("-", device, "[red]failed[/]", why, "", "", "", "", "")
    Console().print(table)


@jobs_group.command("list")
@click.option("--limit", default=20, show_default=True)
@controller_option
@json_option
def jobs_list(limit: int, address: str, as_json: bool) -> None:
    """The most recent job results, newest first."""
    reply = _call(address, lambda s: s.ListJobs(adm.ListJobsRequest(limit=limit), timeout=QUICK_S))
    if as_json:
        click.echo(json.dumps([_dict(r) for r in reply.results], indent=2))
    else:
        _jobs_table(list(reply.results), {})


@jobs_group.command("show")
@click.argument("job_id")
@controller_option
@json_option
def jobs_show(job_id: str, address: str, as_json: bool) -> None:
    """Every device's result of one job."""
    reply = _call(address, lambda s: s.ListJobs(adm.ListJobsRequest(job_id=job_id, limit=1000), timeout=QUICK_S))
    if not reply.results:
        raise JetfleetError(f"no job {job_id!r}", "list them with `jetfleet jobs list`")
    if as_json:
        click.echo(json.dumps([_dict(r) for r in reply.results], indent=2))
    else:
        _jobs_table(sorted(reply.results, key=lambda r: r.agent), {})


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise JetfleetError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise JetfleetError("give at least one batch size")
    return values


@click.command("bench")
@click.option("--model", required=True, help="Registry reference: name, name:version or name@alias.")
@click.option("--devices", "selector", default="all", show_default=True)
@click.option("--batch-sizes", default="1,8,32", show_default=True)
@click.option("--precisions", default="fp32,int8", show_default=True)
@click.option(
    "--report", "report_dir", type=click.Path(path_type=Path), default=Path("reports/bench"), show_default=True
)
@controller_option
def bench_cmd(model: str, selector: str, batch_sizes: str, precisions: str, report_dir: Path, address: str) -> None:
    """Benchmark MODEL across the fleet per precision and batch size; write HTML/Markdown/JSON/CSV."""
    from jetfleet.controller.fleet.bench import run_bench, write_bench_report

    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    unknown = set(chosen) - {"fp32", "fp16", "int8"}
    if unknown or not chosen:
        raise JetfleetError(f"unknown precision {', '.join(sorted(unknown)) or '(none)'}; choose from fp32, fp16, int8")
    console = Console()
    run = _call(
        address, lambda stub: run_bench(stub, model, selector, _int_list(batch_sizes), chosen, log=console.print)
    )
    files = write_bench_report(report_dir, run)
    console.print(f"report: {files.html}")
    if run.failures:
        for key, why in sorted(run.failures.items()):
            console.print(f"[red]failed[/] {key}: {why}")
        raise SystemExit(1)


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo-fleet"), show_default=True)
@click.option("--epochs", default=10, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave the controller and agents up afterwards.")
def demo_cmd(out: Path, epochs: int, keep_running: bool) -> None:
    """A whole fleet on this machine: train, quantize, canary deploy to 3 agents, benchmark, report."""
    from jetfleet.controller.fleet.demo import run_demo

    run_demo(out, epochs, keep_running, Console())


def attach(cli: click.Group) -> None:
    from jetfleet.controller.fleet.security_cli import certs_group  # also adds `devices enroll|revoke`

    for command in (
        certs_group,
        controller_group,
        devices_group,
        deploy_cmd,
        rollback_cmd,
        status_cmd,
        jobs_group,
        bench_cmd,
        demo_cmd,
    ):
        cli.add_command(command)
