"""The typer application, the command session (one transaction, with the file-system
steps that belong to it), password input, output helpers, and the one error boundary."""

from __future__ import annotations

import getpass
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from vmm import db, mailboxes, passwords
from vmm.config import Runtime
from vmm.errors import InvalidValue, PasswordError, VmmError
from vmm.limits import parse_text
from vmm.settings import Settings

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="vmm: manage the domains, accounts, aliases and relocated users of the mail stack.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys).")]
PatternOption = Annotated[
    str | None, typer.Option("-p", "--pattern", help="Limit to matches; % at start and/or end.")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]


def _checked_text(value: str | None) -> str | None:
    return None if value is None else parse_text(value)


NoteOption = Annotated[
    str | None, typer.Option("-n", "--note", help="The note to set.", callback=_checked_text)
]
ForceOption = Annotated[bool, typer.Option("--force", help="Also apply to what depends on it.")]
DeleteOption = Annotated[bool, typer.Option("-d", "--delete", help="Delete the value.")]
MessagesOption = Annotated[str, typer.Option("-m", "--messages", help="Message limit (0 = unlimited).")]
# vmm(1) writes `-s imap pop3`: the first service is the option's, the rest are arguments.
ServiceOption = Annotated[
    list[str] | None, typer.Option("-s", "--service", help="A service to enable: imap, pop3, sieve, smtp.")
]
ServiceArgs = Annotated[list[str] | None, typer.Argument(help="More services after -s.")]


def command(name: str, short: str) -> Callable[[F], F]:
    """Register a subcommand under its long and its (hidden) short name, as vmm(1) does."""

    def register(function: F) -> F:
        doc = inspect.cleandoc(function.__doc__ or "")
        app.command(name, help=f"{doc}\n\nShort form: {short}")(function)
        app.command(short, hidden=True, help=f"{doc}\n\nLong form: {name}")(function)
        return function

    return register


@dataclass
class Session:
    """What one command works with. File-system steps register how to undo them if the
    transaction fails, and what to finish once it has committed."""

    conn: db.Connection
    config: Settings
    runtime: Runtime
    on_rollback: list[Callable[[], None]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def password_policy(self) -> passwords.Policy:
        return self.config.password_policy(self.runtime.allow_weak_schemes)

    def created(self, path: Path) -> None:
        self.on_rollback.append(lambda: mailboxes.remove_tree(path))

    def remove_later(self, path: Path) -> None:
        retired = mailboxes.retire(path)
        if retired is not None:
            self.on_rollback.append(lambda: mailboxes.restore(retired, path))
            self.after_commit.append(lambda: mailboxes.remove_tree(retired))


@contextmanager
def session(attempts: int = 1) -> Iterator[Session]:
    """A command's connection and single transaction, with the settings in force."""
    runtime = Runtime.from_env()
    with db.connect(runtime, attempts=attempts) as conn:
        current: Session | None = None
        try:
            with db.transaction(conn):
                db.share_with_writers(conn)
                current = Session(conn, Settings.load(conn), runtime)
                yield current
        except BaseException:
            for undo in reversed(current.on_rollback if current else []):
                undo()
            raise
        for finish in current.after_commit:
            finish()


NameOption = Annotated[
    str | None, typer.Option("-n", "--name", help="The user's real name.", callback=_checked_text)
]


def details_wanted(details: str | None, allowed: tuple[str, ...]) -> set[str]:
    """vmm(1)'s ``-d details``: one of ``allowed``, where the last one, ``full``, means all."""
    if details is None:
        return set()
    if details not in allowed:
        raise InvalidValue(f"invalid details {details!r} ({', '.join(allowed)})")
    return set(allowed[:-1]) if details == allowed[-1] else {details}


def one_of(value: str | None, delete: bool, option: str) -> str | None:
    """vmm(1)'s ``-n VALUE | -d``: exactly one of them; None means delete."""
    if delete == (value is not None):
        raise InvalidValue(f"give either {option} or -d")
    return value


def read_secret(what: str) -> str:
    """One line of stdin: a password or a hash, which never travel in argv."""
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise PasswordError(f"no {what} on stdin")
    return secret


def read_password(from_stdin: bool, config: Settings) -> tuple[str, bool]:
    """The new password and whether vmm generated it. Never from argv: stdin, a hidden
    prompt (twice), or generated when account.random_password is on (never shorter than
    account.min_password_length)."""
    if from_stdin:
        return read_secret("password"), False
    if config.flag("account.random_password"):
        length = max(config.number("account.password_length"), config.number("account.min_password_length"))
        return passwords.random_password(length), True
    if not sys.stdin.isatty():
        raise PasswordError("no password: give --password-stdin or run with a terminal")
    first = getpass.getpass("Enter new password: ")
    if not first:
        raise PasswordError("empty password")
    if getpass.getpass("Retype new password: ") != first:
        raise PasswordError("the passwords do not match")
    return first, False


def show(title: str, rows: list[tuple[str, object]]) -> None:
    """vmm's info layout: a title, a rule, and dotted labels."""
    width = max(len(label) for label, _ in rows) + 3
    typer.echo(f"{title}\n{'-' * len(title)}")
    for label, value in rows:
        typer.echo(f"\t{label.ljust(width, '.')}: {value}")


def show_list(title: str, items: list[str], empty: str = "None") -> None:
    typer.echo(f"{title}\n{'-' * len(title)}")
    for item in items or [empty]:
        typer.echo(f"\t{item}")


def show_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def main() -> None:
    """The error boundary: every VmmError becomes one line on stderr and its exit code."""
    try:
        app(standalone_mode=False)
    except VmmError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.code)
    except (click.exceptions.Abort, KeyboardInterrupt, EOFError):
        typer.echo("Error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
