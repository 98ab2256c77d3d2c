"""What the subcommands share of their command line: the options of vmm(1) and the
readers of what they give (details, -n/-d pairs, passwords from stdin or a prompt)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from vmm import passwords
from vmm.errors import InvalidValue, PasswordError
from vmm.limits import parse_text
from vmm.settings import Settings


def _checked_text(value: str | None) -> str | None:
    return None if value is None else parse_text(value)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys).")]
PatternOption = Annotated[
    str | None, typer.Option("-p", "--pattern", help="Limit to matches; % at start and/or end.")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]
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


def read_password(from_stdin: bool, settings: Settings) -> tuple[str, bool]:
    """The new password and whether vmm generated it. Never from argv: stdin, a hidden
    prompt (twice), or generated when account.random_password is on (never shorter than
    account.min_password_length)."""
    if from_stdin:
        return read_secret("password"), False
    if settings.flag("account.random_password"):
        length = max(
            settings.number("account.password_length"), settings.number("account.min_password_length")
        )
        return passwords.random_password(length), True
    if not sys.stdin.isatty():
        raise PasswordError("no password: give --password-stdin or run with a terminal")
    first = getpass.getpass("Enter new password: ")
    if not first:
        raise PasswordError("empty password")
    if getpass.getpass("Retype new password: ") != first:
        raise PasswordError("the passwords do not match")
    return first, False


class NewPassword:
    """Reads a new password when a command asks for it (read_password), and keeps it if
    vmm generated it, to be printed once the command has committed."""

    def __init__(self, from_stdin: bool, settings: Settings) -> None:
        self.from_stdin, self.settings = from_stdin, settings
        self.generated: str | None = None

    def __call__(self) -> str:
        password, generated = read_password(self.from_stdin, self.settings)
        if generated:
            self.generated = password
        return password
