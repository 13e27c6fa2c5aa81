"""The ``jetfleet-agent`` command (the device daemon arrives with the agent issue)."""

from __future__ import annotations

import click

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


def main() -> None:
    cli(prog_name="jetfleet-agent")
