"""`jetfleet certs init`, `jetfleet devices enroll` and `jetfleet devices revoke`.

``certs init`` works on the PKI folder directly (there is no controller yet);
enroll and revoke ask the running controller, which owns the token and
certificate tables and must stop a revoked device's calls at once.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import click
from rich.console import Console

from jetfleet.controller.fleet.cli import _call, controller_option, devices_group, json_option
from jetfleet.controller.fleet.security import FILES, TOKEN_TTL_S, default_pki_dir, init_pki
from jetfleet.proto.rpc import QUICK_S
from jetfleet.proto.v1 import admin_pb2 as adm

console = Console()


def _pki_folder(folder: Path | None) -> Path:
    return folder or Path(os.environ.get("JETFLEET_PKI") or default_pki_dir())


@click.group("certs")
def certs_group() -> None:
    """The fleet's certificate authority and manifest-signing key."""


@certs_group.command("init")
@click.option(
    "--dir", "folder", type=click.Path(path_type=Path), default=None, help="PKI folder (default: JETFLEET_HOME/pki)."
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Extra DNS name or IP address agents use to reach the controller (repeatable).",
)
@click.option("--admin", default="operator", show_default=True, help="Name in the operator's CLI certificate.")
@click.option("--force", is_flag=True, help="Replace an existing CA (every device must enroll again).")
def certs_init(folder: Path | None, hosts: tuple[str, ...], admin: str, force: bool) -> None:
    """Create the fleet CA, the controller's and the operator's certificates, and the manifest key."""
    folder = _pki_folder(folder)
    summary = init_pki(folder, hosts, admin=admin, force=force)
    console.print(f"fleet PKI written to [bold]{folder}[/] (keys readable by this user only)")
    console.print(f"  CA sha256            {summary.ca_sha256}")
    console.print(f"  manifest signing key {summary.signing_key_id}")
    console.print(f"  controller names     {', '.join(summary.hosts)}")
    console.print(f"give devices [bold]{folder / FILES['ca']}[/] with their enrollment token")


@devices_group.command("enroll")
@click.option("--name", required=True, help="The device's name in the fleet (its agent's --name).")
@click.option("--ttl", type=click.FloatRange(min=1), default=TOKEN_TTL_S, show_default=True, help="Token lifetime (s).")
@controller_option
@json_option
def devices_enroll(name: str, ttl: float, address: str, as_json: bool) -> None:
    """Print a single-use, expiring enrollment token for one device."""
    reply = _call(
        address, lambda s: s.CreateEnrollment(adm.CreateEnrollmentRequest(name=name, ttl_s=ttl), timeout=QUICK_S)
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": reply.name,
                    "token": reply.token,
                    "expires_at": reply.expires_at,
                    "enroll_address": reply.enroll_address,
                    "ca_sha256": reply.ca_sha256,
                    "controller": address,
                }
            )
        )
        return
    minutes = (reply.expires_at - time.time()) / 60
    click.echo(reply.token)
    command = [
        "jetfleet-agent", "enroll", "--name", reply.name, "--token", reply.token,
        "--enroll-address", reply.enroll_address, "--ca", "ca.pem", "--ca-sha256", reply.ca_sha256,
    ]  # fmt: skip
    console.print(f"single use, expires in {minutes:.0f} min. On {reply.name}, with the fleet's ca.pem:", style="dim")
    console.print("  " + shlex.join(command), style="dim", soft_wrap=True)


@devices_group.command("revoke")
@click.argument("name")
@controller_option
def devices_revoke(name: str, address: str) -> None:
    """Revoke a device's certificates at once and remove it from the fleet."""
    reply = _call(address, lambda s: s.RevokeDevice(adm.RevokeDeviceRequest(name=name), timeout=QUICK_S))
    console.print(f"{name}: {reply.revoked} certificate(s) revoked; its calls are refused from now on")
