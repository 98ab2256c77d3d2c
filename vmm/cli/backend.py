"""Mail backend subcommands (not in vmm(1)): the Dovecot servers that each hold the mail
of the accounts pinned to them, behind the proxy tier (vmm/backends.py)."""

from __future__ import annotations

import typer

from vmm import accounts, backends, doveadm
from vmm.addresses import EmailAddress
from vmm.cli.app import command
from vmm.cli.options import JsonOption
from vmm.cli.output import show_json
from vmm.errors import ToolError
from vmm.session import open_session


@command("backendadd", "ba")
def backendadd(name: str, host: str) -> None:
    """Add a mail backend NAME that the proxies reach at HOST. New accounts are placed on
    the accepting backend with the fewest accounts; the first backend added receives
    every account that has none yet (the mail of the stack's one Dovecot until now)."""
    with open_session() as session:
        received = backends.add(session.conn, name, host)
    if received:
        typer.echo(f"{received} existing accounts are now on {name}")


@command("backendaccept", "bx")
def backendaccept(name: str, accepting: bool) -> None:
    """Whether new accounts may be placed on the backend NAME (yes or no); its accounts
    stay where they are."""
    with open_session() as session:
        backends.set_accepting(session.conn, name, accepting)


@command("backenddelete", "bd")
def backenddelete(name: str) -> None:
    """Delete a backend that holds no accounts."""
    with open_session() as session:
        backends.delete(session.conn, name)


@command("backendlist", "bl")
def backendlist(as_json: JsonOption = False) -> None:
    """List the mail backends: host, whether they accept new accounts, how many they hold."""
    with open_session() as session:
        found = backends.listing(session.conn)
    if as_json:
        show_json([vars(backend) for backend in found])
        return
    typer.echo("Mail backends\n-------------")
    for backend in found:
        state = "accepting" if backend.accepting else "closed to new accounts"
        typer.echo(f"\t{backend.name}  {backend.host}  {state}  {backend.accounts} accounts")
    if not found:
        typer.echo("\tNone (one Dovecot holds every mailbox)")


@command("usermove", "um")
def usermove(address: str, backend: str) -> None:
    """Move the mailbox of ADDRESS to the backend BACKEND with Dovecot's dsync, which keeps
    its UIDs and flags. For the seconds of the last copy and the switch its mail is held
    (deferred with a temporary failure, never bounced) and its logins are refused."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        move = backends.plan_move(session.conn, accounts.get(session.conn, parsed), backend)
        dovecot = doveadm.Doveadm.from_runtime(session.runtime)
    source, destination = move.source_host, move.destination_host
    # The bulk of the mailbox while its mail still flows: under the hold, only what
    # arrived since is left to copy.
    dovecot.copy(move.user, source, destination)
    with open_session() as session:
        backends.hold(session.conn, move)
    try:
        # No proxy may route the user from a cached lookup, nor keep a session open.
        dovecot.drain(move.user)
        dovecot.copy(move.user, source, destination)
        with open_session() as session:
            backends.switch(session.conn, move)
    except BaseException:
        with open_session() as session:
            backends.release(session.conn, move)
        raise
    moved = f"{move.user} moved from {move.source} to {move.destination}"
    # A delivery that had reached the source before the hold may have finished after
    # the last copy: add it, keeping what the destination has received since.
    try:
        dovecot.copy(move.user, source, destination, merge=True)
    except ToolError as exc:
        raise ToolError(f"{moved}, but adding a late delivery failed: {exc}") from None
    typer.echo(moved)
