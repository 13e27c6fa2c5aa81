"""How both entry points (`jetfleet`, `jetfleet-agent`) end: one line per user error, a meaningful exit status."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from jetfleet.common.errors import JetfleetError

if TYPE_CHECKING:
    from rich.console import Console


def run(group: click.Group, prog_name: str, argv: list[str] | None, interrupted: str = "interrupted") -> None:
    """Run ``group``: a ``JetfleetError`` prints one ``error:`` line and exits 1, never a traceback.

    Usage errors keep click's message and exit 2; Ctrl-C exits 130 with ``interrupted``.
    Anything else is a bug and keeps its traceback.
    """
    try:
        code = group.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except JetfleetError as exc:
        _stderr().print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        _stderr().print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _stderr().print(interrupted)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _stderr() -> Console:
    """A rich console on stderr, made only when there is an error to show (rich costs the agent ~1.7 MiB)."""
    from rich.console import Console

    return Console(stderr=True)
