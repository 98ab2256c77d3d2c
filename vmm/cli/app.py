"""The typer application, the registration of subcommands under vmm(1)'s long and short
names, and the one error boundary that turns every error into its exit code."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer

from vmm.errors import ExitCode, VmmError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="vmm: manage the domains, accounts, aliases and relocated users of the mail stack.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
F = TypeVar("F", bound=Callable[..., Any])


def command(name: str, short: str) -> Callable[[F], F]:
    """Register a subcommand under its long and its (hidden) short name, as vmm(1) does."""

    def register(function: F) -> F:
        doc = inspect.cleandoc(function.__doc__ or "")
        app.command(name, help=f"{doc}\n\nShort form: {short}")(function)
        app.command(short, hidden=True, help=f"{doc}\n\nLong form: {name}")(function)
        return function

    return register


def main() -> None:
    """The error boundary: every VmmError becomes one line on stderr and its exit code."""
    try:
        app(standalone_mode=False)
    except VmmError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.code)
    except (click.exceptions.Abort, KeyboardInterrupt, EOFError):
        typer.echo("Error: aborted", err=True)
        sys.exit(ExitCode.ABORTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
