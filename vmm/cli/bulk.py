"""Bulk provisioning (not in vmm(1)): `vmm import` creates many accounts in one
transaction, hashing on every core; `vmm migrate-from` moves a Virtual Mail Manager
installation in."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Annotated, TextIO

import typer

from vmm import db, movein, provisioning
from vmm.cli.app import app
from vmm.cli.options import JsonOption, read_secret
from vmm.cli.output import show, show_json, show_list
from vmm.errors import Conflict, InvalidValue, NotFound
from vmm.runtime import Runtime
from vmm.session import open_session


def _read(stream: TextIO, kind: str) -> list[tuple[str, str]]:
    """(address, password or {SCHEME}hash) rows from CSV (header address,password) or a
    JSON list of {"address": ..., "password": ...}."""
    try:
        if kind == "json":
            items = json.load(stream)
            return [(str(item["address"]), str(item["password"])) for item in items]
        reader = csv.DictReader(stream)
        if not {"address", "password"} <= set(reader.fieldnames or []):
            raise InvalidValue("the CSV input needs the header line: address,password")
        return [(row["address"], row["password"]) for row in reader]
    except (KeyError, TypeError, ValueError, csv.Error) as exc:
        raise InvalidValue(f"cannot read the {kind} input: {exc}") from None


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="A CSV or JSON file, or - for stdin.")],
    kind: Annotated[str, typer.Option("--format", help="csv (address,password) or json.")] = "csv",
    as_json: JsonOption = False,
) -> None:
    """Create many accounts at once, in one transaction: all or none. A password that is
    a ready {SCHEME}hash is stored as it is; others are hashed with
    misc.password_scheme on every core. Domains must exist."""
    if kind not in ("csv", "json"):
        raise InvalidValue("--format is csv or json")
    if source == "-":
        rows = _read(sys.stdin, kind)
    else:
        try:
            with open(source, newline="", encoding="utf-8") as stream:
                rows = _read(stream, kind)
        except OSError as exc:
            raise NotFound(f"cannot read {source}: {exc.strerror}") from None
    with open_session() as session:
        report = provisioning.import_accounts(session, rows)
        started = time.monotonic()
        with typer.progressbar(report.created, label="Creating Maildirs", file=sys.stderr) as progress:
            for uid, gid, home in progress:
                provisioning.create_maildir(session, home, uid, gid)
    # The phases, for the postmaster (and `make bench`, from --json): hashing runs on
    # every core.
    rest = time.monotonic() - started
    if report.weak_hashes:
        typer.echo(f"Warning: {report.weak_hashes} imported accounts have weak password hashes", err=True)
    if as_json:
        show_json(
            {
                "imported": report.imported,
                "hashed": report.hashed,
                "hash_seconds": round(report.hash_seconds, 3),
                "workers": report.workers,
                "store_seconds": round(report.store_seconds, 3),
                "rest_seconds": round(rest, 3),
                "weak_hashes": report.weak_hashes,
            }
        )
        return
    typer.echo(
        f"hashed {report.hashed} passwords in {report.hash_seconds:.3f} s on {report.workers} processes; "
        f"stored {report.imported} rows in {report.store_seconds:.3f} s; "
        f"created the Maildirs and committed in {rest:.3f} s",
        err=True,
    )
    typer.echo(f"imported {report.imported} accounts")


@app.command("migrate-from")
def migrate_from(
    dsn: Annotated[
        str | None,
        typer.Argument(help="The old database, e.g. 'host=old.example dbname=mailsys user=vmm'."),
    ] = None,
    dump: Annotated[
        Path | None, typer.Option("--dump", help="A plain pg_dump of the old database, instead of DSN.")
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option("--password-file", help="The old database's password: a file, or - for stdin."),
    ] = None,
    maildirs: Annotated[
        Path | None, typer.Option("--maildirs", help="The old mail root, mounted here read-only.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The old vmm.cfg.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the report; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Move a Virtual Mail Manager installation (vmm 0.5, 0.6 or 0.7-dev) in: domains,
    alias domains, accounts with their password hashes as stored, aliases, catch-alls,
    relocated users, with --config the vmm.cfg options that still mean something, and with
    --maildirs the users' mail (UIDs and flags kept). All or
    nothing; refused where anything is in the way (see the report)."""
    if (dsn is None) == (dump is None):
        raise InvalidValue("give the old database as DSN or as --dump FILE, one of them")
    password = ""
    if password_file == "-":  # noqa: S105 (stdin, not a password)
        password = read_secret("password of the old database")
    elif password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise NotFound(f"cannot read {password_file}: {exc.strerror}") from None
    taken, left = movein.read_config(config) if config else ({}, {})
    with db.connect(Runtime.from_env()) if dump else movein.connect(str(dsn), password) as old_conn:
        if dump:
            movein.load_dump(old_conn, dump)
        old = movein.read_only(old_conn)
    with open_session() as session:
        report = movein.check(session.conn, old, maildirs, session.runtime.allow_weak_schemes)
        report.config, report.config_left = taken, left
        _show_report(report, as_json)
        if report.blocked:
            raise Conflict(f"nothing moved: {len(report.conflicts)} conflicts (listed above)")
        if dry_run:
            return
        base = Path(session.settings.get("misc.base_directory"))
        movein.store(session.conn, old, base, session.runtime.lmtp_transport, taken)
        movein.provision(session, old, maildirs, lambda line: typer.echo(line, err=True))
    typer.echo(f"moved {report.counts['accounts']} accounts of {report.counts['domains']} domains", err=True)


def _show_report(report: movein.Report, as_json: bool) -> None:
    if as_json:
        show_json(
            {
                "version": report.version,
                "counts": report.counts,
                "conflicts": report.conflicts,
                "unverifiable_hashes": report.unverifiable,
                "weak_hashes": report.weak,
                "disk_bytes": report.disk_bytes,
                "config": report.config,
                "config_left": report.config_left,
            }
        )
        return
    rows: list[tuple[str, object]] = [("Schema", f"vmm {report.version}")]
    rows += [(kind.capitalize(), count) for kind, count in report.counts.items()]
    rows.append(("Disk needed", f"{report.disk_bytes / 2**20:.1f} MiB"))
    show("Moving from Virtual Mail Manager", rows)
    for title, items in (
        ("Conflicts", report.conflicts),
        (
            "Hashes Dovecot cannot verify (set a new password)",
            [f"{a}: {w}" for a, w in report.unverifiable.items()],
        ),
        ("Weak hashes (need VMM_ALLOW_WEAK_SCHEMES=yes)", [f"{a}: {s}" for a, s in report.weak.items()]),
    ):
        if items:
            show_list(title, items)
