"""Bulk provisioning (not in vmm(1)): `vmm import` creates many accounts in one
transaction, hashing on every core."""

from __future__ import annotations

import csv
import json
import sys
import time
from typing import Annotated, TextIO

import typer

from vmm import provisioning
from vmm.cli.app import app
from vmm.cli.options import JsonOption
from vmm.cli.output import show_json
from vmm.errors import InvalidValue, NotFound
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
                "imported": len(report.created),
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
        f"stored {len(report.created)} rows in {report.store_seconds:.3f} s; "
        f"created the Maildirs and committed in {rest:.3f} s",
        err=True,
    )
    typer.echo(f"imported {len(report.created)} accounts")
