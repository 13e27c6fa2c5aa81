"""`jetfleet demo`: a whole fleet on this machine, from training to the benchmark report.

Everything runs for real, as separate processes on loopback: a controller
and three agents (each with its own data folder, name and tags, standing in
for a Nano, a Xavier NX and an Orin), ``basic_cnn`` trained on the embedded
digits, exported and quantized into the demo's own registry, deployed as
INT8 with a canary gate, benchmarked at FP32 and INT8 across batch sizes,
and summarized in a report. Nothing is downloaded and nothing outside the
demo folder is touched.

The fleet is secured as a real one is: ``jetfleet certs init`` makes the
demo's CA, the controller serves mutual TLS, each agent enrolls once with a
single-use token from ``devices enroll`` (its own key, a certificate from the
CA, the manifest key pinned), and every deployment carries a manifest signed
by the controller that the agents verify.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.procs import Daemon, executable
from jetfleet.controller.fleet.security import FleetPKI
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, make_channel
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc

AGENTS = (("jetson-nano-01", "nano"), ("jetson-xavier-02", "xavier-nx"), ("jetson-orin-03", "orin"))
BATCH_SIZES = (1, 8, 32)
PRECISIONS = ("fp32", "int8")


@dataclass
class Fleet:
    controller: Daemon
    agents: list[Daemon]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.controller.port}"

    def stop(self) -> None:
        for daemon in [*self.agents, self.controller]:
            daemon.stop()


def run_demo(out: Path, epochs: int, keep_running: bool, console: Console) -> Path:
    """Run the whole demo in ``out``; returns the report's HTML path."""
    out = out.resolve()
    home = out / "home"
    env = {**os.environ, "JETFLEET_HOME": str(home), "JETFLEET_DB": f"sqlite:///{home / 'registry.db'}"}
    env.setdefault("OMP_NUM_THREADS", "1")  # four processes share the machine's cores
    start = time.monotonic()
    _train(out, epochs, env, console)
    fleet_pki = _init_pki(home, env, console)
    fleet = _start_controller(out, env, console)
    try:
        channel = make_channel(
            fleet.address, credentials=fleet_pki.admin_credentials(), server_name=CONTROLLER_TLS_NAME
        )
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        _start_agents(fleet, stub, fleet_pki, out, env, console)
        _wait_online(stub, len(AGENTS), console)
        _canary_deploy(stub, console)
        report = _bench(stub, out / "report", console)
        console.print(f"\n[bold green]demo finished in {time.monotonic() - start:.0f} s[/]; report: {report}")
        if keep_running:
            _keep_running(fleet, fleet_pki.folder, console)
        return report
    finally:
        fleet.stop()


def _train(out: Path, epochs: int, env: dict[str, str], console: Console) -> None:
    console.rule("1. train basic_cnn on digits, register, export ONNX, quantize FP16/INT8")
    cmd = [executable("jetfleet"), "train", "--model", "basic_cnn", "--dataset", "digits", "--epochs", str(epochs),
           "--out", str(out / "run"), "--overwrite", "--register-as", "basic_cnn"]  # fmt: skip
    if subprocess.run(cmd, env=env).returncode != 0:
        raise JetfleetError("training failed (its output is above)")


def _init_pki(home: Path, env: dict[str, str], console: Console) -> FleetPKI:
    console.rule("2. create the fleet CA and the manifest-signing key")
    cmd = [executable("jetfleet"), "certs", "init", "--dir", str(home / "pki"), "--force"]
    if subprocess.run(cmd, env=env).returncode != 0:
        raise JetfleetError("`jetfleet certs init` failed (its output is above)")
    return FleetPKI(home / "pki")


def _start_controller(out: Path, env: dict[str, str], console: Console) -> Fleet:
    console.rule("3. start a controller (mutual TLS) and enroll three agents (separate processes on loopback)")
    controller = Daemon(
        [executable("jetfleet"), "controller", "serve", "--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0",
         "--heartbeat-interval", "1", "--offline-after", "15"],
        out / "logs" / "controller.log",
        env,
    )  # fmt: skip
    console.print(f"controller on port {controller.port}; logs in {out / 'logs'}")
    return Fleet(controller, [])


def _start_agents(
    fleet: Fleet, stub: admin_pb2_grpc.AdminServiceStub, fleet_pki: FleetPKI, out: Path, env: dict[str, str],
    console: Console,
) -> None:  # fmt: skip
    """Enroll each agent with its own single-use token (as an operator would), then serve it."""
    for name, board in AGENTS:
        data_dir = out / "agents" / name
        if not (data_dir / "identity" / "enrolled.json").exists():
            token = stub.CreateEnrollment(adm.CreateEnrollmentRequest(name=name, ttl_s=600), timeout=10)
            cmd = [executable("jetfleet-agent"), "enroll", "--name", name, "--data-dir", str(data_dir),
                   "--enroll-address", token.enroll_address, "--ca", str(fleet_pki.folder / "ca.pem"),
                   "--ca-sha256", token.ca_sha256]  # fmt: skip
            done = subprocess.run(
                cmd, env={**env, "JETFLEET_ENROLL_TOKEN": token.token}, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise JetfleetError(f"enrolling {name} failed: {done.stderr.strip()}")
        fleet.agents.append(
            Daemon(_agent_args(name, board, fleet.controller.port, out), out / "logs" / f"{name}.log", env)
        )
        console.print(f"agent {name} (board={board}) enrolled, serving on port {fleet.agents[-1].port}")


def _agent_args(name: str, board: str, controller_port: int, out: Path) -> list[str]:
    return [
        executable("jetfleet-agent"), "serve", "--name", name, "--listen", "127.0.0.1:0",
        "--controller", f"127.0.0.1:{controller_port}", "--data-dir", str(out / "agents" / name),
        "--backend", "onnxruntime", "--job-threads", "1", "--tag", f"board={board}", "--tag", "site=demo",
    ]  # fmt: skip


def _wait_online(stub: admin_pb2_grpc.AdminServiceStub, n: int, console: Console, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        devices = stub.ListDevices(adm.ListDevicesRequest(), timeout=10).devices
        if sum(d.liveness == "online" for d in devices) >= n:
            console.print(f"{n} agents registered and online")
            return
        time.sleep(0.3)
    raise JetfleetError(f"the agents did not register within {timeout:.0f} s (see the logs folder)")


def _canary_deploy(stub: admin_pb2_grpc.AdminServiceStub, console: Console) -> None:
    console.rule("4. deploy INT8 to all devices (signed manifests): canary first, gated on smoke-test accuracy")
    request = adm.FleetDeployRequest(model="basic_cnn", precision="int8", selector="all", canary=1, min_accuracy=0.9)
    failed = []
    for ev in stub.Deploy(request):
        if ev.phase in ("planned", "wave", "gate", "halted"):
            console.print(f"{ev.phase}: {ev.message}")
        elif ev.phase in ("active", "failed", "blocked", "offline", "timeout"):
            console.print(f"{ev.device}: [bold]{ev.phase}[/] {ev.message}")
            if ev.phase != "active":
                failed.append(ev.device)
    if failed:
        raise JetfleetError(f"the deployment failed on {', '.join(failed)} (see the logs folder)")


def _bench(stub: admin_pb2_grpc.AdminServiceStub, out: Path, console: Console) -> Path:
    from jetfleet.controller.fleet.bench import run_bench, write_bench_report

    console.rule(f"5. fleet benchmark: {', '.join(PRECISIONS)} × batch {', '.join(map(str, BATCH_SIZES))}")
    run = run_bench(stub, "basic_cnn", "all", BATCH_SIZES, PRECISIONS, log=console.print)
    files = write_bench_report(out, run)
    _summary(run, console)
    return files.html


def _summary(run: object, console: Console) -> None:
    table = Table("device", "precision", "batch", "top-1", "p50 ms", "p99 ms", "items/s")
    for r in sorted(run.results, key=lambda r: (r.agent, r.model.spec.precision, r.batch_size)):  # type: ignore[attr-defined]
        table.add_row(
            r.agent,
            r.model.spec.precision,
            str(r.batch_size),
            f"{r.top1:.2%}" if r.top1 is not None else "-",
            f"{r.latency.median_ms:.2f}",
            f"{r.latency.p99_ms:.2f}",
            f"{r.throughput:.0f}",
        )
    console.print(table)


def _keep_running(fleet: Fleet, fleet_pki_dir: Path, console: Console) -> None:
    console.print(
        f"\nthe fleet keeps running; try, in another shell:\n"
        f"  export JETFLEET_CONTROLLER={fleet.address} JETFLEET_PKI={fleet_pki_dir}\n"
        f"  jetfleet devices list\n  jetfleet status\n  jetfleet deploy --model basic_cnn --precision fp32\n"
        f"  jetfleet jobs run --model basic_cnn --dataset digits-test\n"
        f"press Ctrl-C to stop it"
    )
    try:
        while all(d.proc.poll() is None for d in [fleet.controller, *fleet.agents]):
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping the fleet")
