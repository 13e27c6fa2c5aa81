"""The ``jetfleet-agent`` command: the device daemon and its set-up helpers.

jetfleet-agent serve --config /etc/jetfleet/agent.toml   # what systemd runs
jetfleet-agent info                                       # what the agent detects here
jetfleet-agent doctor                                     # is this device ready? each problem with its fix
jetfleet-agent install-service --controller ws:50050 --venv /opt/jetfleet   # venv + unit + config file
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any  # rich is imported where a command prints: it stays off the serve path

import click

from jetfleet.agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from jetfleet.common.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="jetfleet-agent")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """jetfleet-agent: the daemon that runs models on a Jetson device."""
    if ctx.invoked_subcommand is None:
        click.echo(f"jetfleet-agent {__version__}")


@cli.command()
def version() -> None:
    """Print the agent's version."""
    click.echo(f"jetfleet-agent {__version__}")


def config_options(func: Any) -> Any:
    """The options that override the config file (each defaults to "not given")."""
    options = [
        click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file."),
        click.option("--name", help="Agent name (default: the hostname)."),
        click.option("--listen", help="host:port to serve on (port 0 = any free port)."),
        click.option("--advertise", help="host:port the controller should dial."),
        click.option("--controller", help="Controller address host:port (absent = standalone)."),
        click.option("--data-dir", help="Where artifacts, engines and state live."),
        click.option("--tag", "tags", multiple=True, help="key=value label, repeatable."),
        click.option("--backend", "backends", help="Engine backends in preference order, e.g. onnxruntime,tensorrt."),
        click.option("--smoke-margin", type=float, help="Allowed smoke-test accuracy drop, in points."),
        click.option("--job-threads", type=int, help="Inference threads (0 = backend decides)."),
        click.option("--log-level", help="debug, info, warning or error."),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Unenrolled: plaintext gRPC and unsigned manifests (local development only).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(config_path: Path | None, overrides: dict[str, Any]) -> AgentConfig:
    if config_path is None and DEFAULT_CONFIG_PATH.exists():
        config_path = DEFAULT_CONFIG_PATH
    return load_config(config_path, overrides)


@cli.command()
@config_options
def serve(config_path: Path | None, **overrides: Any) -> None:
    """Serve models to the controller until SIGTERM/SIGINT."""
    config = _load(config_path, overrides)
    Agent = _import_daemon()
    from jetfleet.agent.doctor import serve_preflight

    for warning in serve_preflight(config):
        click.echo(f"warning: {warning}", err=True)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    agent = Agent(config)
    port = agent.start()
    click.echo(f"jetfleet-agent {config.name} listening on port {port} (backend {agent.backend.name})", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    click.echo("stopping: finishing in-flight calls", err=True)
    agent.stop(grace=5.0)


def _import_daemon() -> Any:
    """The daemon class; a dependency without a wheel for this Python/platform is one line, not a traceback."""
    try:
        from jetfleet.agent.daemon import Agent
    except ImportError as exc:
        import platform

        from jetfleet.common.errors import JetfleetError

        raise JetfleetError(
            f"the agent cannot start: {exc} (Python {platform.python_version()} on {platform.machine()})",
            f"{sys.prefix}/bin/pip install 'jetfleet[agent]'; `jetfleet-agent doctor` names every missing piece",
        ) from None
    return Agent


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--name", help="The device name the token was made for (default: the config's name).")
@click.option("--data-dir", help="Where the identity is stored (default: the config's data folder).")
@click.option("--enroll-address", required=True, help="host:port of the controller's enrollment service.")
@click.option(
    "--token", envvar="JETFLEET_ENROLL_TOKEN", required=True, help="From `jetfleet devices enroll` (or the env var)."
)
@click.option(
    "--ca", "ca_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
    help="The fleet CA certificate (ca.pem from the controller's PKI folder).",
)  # fmt: skip
@click.option("--ca-sha256", default=None, help="Expected sha256 of the CA file, as `devices enroll` printed it.")
def enroll(
    config_path: Path | None,
    name: str | None,
    data_dir: str | None,
    enroll_address: str,
    token: str,
    ca_path: Path,
    ca_sha256: str | None,
) -> None:
    """Enroll this device once: its own key, a certificate from the fleet CA, the pinned manifest key."""
    from jetfleet.agent.identity import enroll as do_enroll

    config = _load(config_path, {"name": name, "data_dir": data_dir, "insecure": True})
    identity = do_enroll(Path(config.data_dir), config.name, enroll_address, token, ca_path.read_bytes(), ca_sha256)
    click.echo(f"enrolled as {identity.name}; identity stored in {identity.folder}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Print what the agent detects about this device: board, software, backends, load."""
    import json
    import time

    from jetfleet.agent.engines.choose import backend_report, import_report, onnxruntime_providers
    from jetfleet.agent.telemetry import Telemetry, detect_device, find_tensorrt_bindings, format_info

    device = detect_device(__version__)
    telemetry = Telemetry.start(interval_s=0.5)
    try:
        time.sleep(0.6)  # one sample interval, so CPU load is a measurement and not a placeholder
        sample = telemetry.latest()
    finally:
        telemetry.close()
    backends = backend_report()
    ort = {**import_report("onnxruntime").to_dict(), "providers": list(onnxruntime_providers())}
    trt = {
        **import_report("tensorrt").to_dict(),
        "system_bindings": [{"path": b.path, "python": b.python} for b in find_tensorrt_bindings()],
    }
    if as_json:
        document = {
            "device": device.to_dict(),
            "telemetry": sample.to_dict(),
            "backends": backends,
            "onnxruntime": ort,
            "tensorrt": trt,
        }
        click.echo(json.dumps(document, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(format_info(device, sample))
    for name, (ok, why) in backends.items():
        console.print(f"backend {name}: {'[green]usable[/]' if ok else '[yellow]unavailable[/]'} ({why})")
    console.print(_providers_line(ort["providers"], device.is_jetson), highlight=False)
    console.print(_tensorrt_line(trt), highlight=False)


def _providers_line(providers: list[str], is_jetson: bool) -> str:
    """ONNX Runtime's providers, with the note a Jetson owner needs when only the CPU one is there."""
    line = "ONNX Runtime providers: " + (", ".join(providers) or "none (onnxruntime does not import)")
    if is_jetson and providers and "CUDAExecutionProvider" not in providers:
        line += " [yellow](the PyPI build: CUDA needs NVIDIA's Jetson wheel; `jetfleet-agent doctor` names it)[/]"
    return line


def _tensorrt_line(trt: dict[str, Any]) -> str:
    """TensorRT's presence and version, and JetPack's bindings when this Python cannot import them."""
    if trt["error"] is None:
        return f"TensorRT: {trt['version']} ({trt['path']})"
    line = f"TensorRT: does not import ({trt['error']})"
    if trt["system_bindings"]:
        found = ", ".join(f"{b['path']} (Python {b['python'] or '?'})" for b in trt["system_bindings"])
        line += f"; JetPack's bindings: {found}: see `jetfleet-agent doctor`"
    return line


@cli.command("install-service")
@config_options
@click.option("--unit-dir", type=click.Path(path_type=Path), default=Path("/etc/systemd/system"), show_default=True)
@click.option("--config-out", type=click.Path(path_type=Path), default=DEFAULT_CONFIG_PATH, show_default=True)
@click.option("--exe", help="Absolute path of jetfleet-agent (default: this installation's).")
@click.option(
    "--venv",
    type=click.Path(path_type=Path),
    help="Create the service's venv here (e.g. /opt/jetfleet): from JetPack's Python, seeing its TensorRT.",
)
@click.option("--user", default="jetfleet", show_default=True, help="Dedicated user the service runs as.")
@click.option("--enable", is_flag=True, help="Also run systemctl daemon-reload and enable --now.")
@click.option("--force", is_flag=True, help="Overwrite different existing files.")
def install_service_cmd(
    config_path: Path | None,
    unit_dir: Path,
    config_out: Path,
    exe: str | None,
    venv: Path | None,
    user: str,
    enable: bool,
    force: bool,
    **overrides: Any,
) -> None:
    """Write the systemd unit and its config file (optionally make its venv, and enable the service)."""
    from jetfleet.agent.config import SYSTEM_DATA_DIR
    from jetfleet.agent.systemd import install_service, installation_note, plan_venv

    if overrides.get("data_dir") is None:
        overrides["data_dir"] = str(SYSTEM_DATA_DIR)
    config = load_config(config_path, overrides)
    plan = plan_venv(venv, force=force) if venv is not None else None
    if plan is not None:
        click.echo(f"venv {plan.target}: {plan.reason}" + ("" if plan.reuse else f"; installing {plan.requirement}"))
    elif exe is None:
        note = installation_note(config.backends)
        if note:
            click.echo(note, err=True)
    written = install_service(config, unit_dir, config_out, exe=exe, user=user, enable=enable, force=force, venv=plan)
    for path in written:
        click.echo(f"wrote {path}")
    if plan is not None:
        exe = plan.exe
        if plan.system_site_packages:  # a Jetson: PyPI's onnxruntime is CPU-only there
            click.echo(
                f"ONNX Runtime with CUDA is NVIDIA's Jetson wheel; `{plan.target}/bin/jetfleet-agent doctor` names it"
            )
    from jetfleet.agent.identity import AgentIdentity

    if not config.insecure and AgentIdentity.load(Path(config.data_dir)) is None:
        click.echo(
            f"the agent is not enrolled yet; as the service user, run:\n  sudo -u {user} {exe or 'jetfleet-agent'} enroll "
            f"--config {config_out} --token TOKEN --enroll-address CONTROLLER:50049 --ca ca.pem\n"
            "(TOKEN from `jetfleet devices enroll --name " + config.name + "` on the controller)"
        )
    if not enable:
        click.echo("enable it with: systemctl daemon-reload && systemctl enable --now jetfleet-agent")


_STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--name", help="Agent name (default: the config's, else the hostname).")
@click.option("--data-dir", help="The agent's data folder (identity, store).")
@click.option("--controller", help="Controller address host:port, to check it answers.")
@click.option(
    "--enroll-address", help="The controller's enrollment host:port (default: the enrolled one, else :50049)."
)
@click.option(
    "--ca", "ca_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The fleet CA (ca.pem), to check the clock against the controller before enrolling.",
)  # fmt: skip
@click.option("--backend", "backends", help="Engine backends in preference order, as serve takes them.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(
    ctx: click.Context,
    config_path: Path | None,
    ca_path: Path | None,
    enroll_address: str | None,
    as_json: bool,
    **overrides: Any,
) -> None:
    """Check this device before enrolling it (and whenever something is wrong): each problem with its fix.

    Exit status 1 when any check fails.
    """
    import json

    from jetfleet.agent.doctor import DoctorOptions, report, run_doctor

    config = _load(config_path, overrides)
    options = DoctorOptions(ca_pem=ca_path.read_bytes() if ca_path else None, enroll_address=enroll_address)
    checks = run_doctor(config, options)
    document = report(checks)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        _print_checks(checks, document["counts"])  # type: ignore[arg-type]
    if not document["ok"]:
        ctx.exit(1)


def _print_checks(checks: list[Any], counts: dict[str, int]) -> None:
    """One line per check (status, name, detail), the fix indented under it; long lines wrap in their column."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    for check in checks:
        grid.add_row(Text(check.status, style=_STATUS_STYLE[check.status]), check.name, Text(check.detail))
        if check.fix:
            grid.add_row("", "", Text.assemble(("fix: ", "bold"), check.fix))
    from rich.console import Console

    console = Console(highlight=False)
    console.print(grid)
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit 1."""
    from jetfleet.common.cli import run

    run(cli, "jetfleet-agent", argv)
