"""Bulk provisioning (not in vmm(1)): `vmm import` creates many accounts in one
transaction, hashing on every core."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, TextIO

import typer

from vmm import accounts, domains, passwords
from vmm.addresses import EmailAddress
from vmm.cli.app import app
from vmm.cli.options import JsonOption
from vmm.cli.output import show_json
from vmm.cli.provision import create_maildir
from vmm.cli.session import open_session
from vmm.errors import AlreadyExists, InvalidValue, NotFound, PasswordError


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


def _hash(job: tuple[str, str, passwords.Rounds]) -> str:
    password, scheme, cost = job
    return passwords.hash_password(password, scheme, cost)


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
    if not rows:
        raise InvalidValue("no accounts in the input")
    parsed = [EmailAddress.parse(address) for address, _ in rows]
    if len({str(address) for address in parsed}) != len(parsed):
        raise AlreadyExists("the input names an address twice")
    with open_session() as session:
        policy = session.password_policy
        passwords.writable_scheme(policy.scheme, policy.allow_weak)
        found: dict[str, domains.Domain] = {}
        for address in parsed:
            if address.domain.ace not in found:
                domain = domains.get(session.conn, address.domain)
                domains.lock(session.conn, domain)
                found[address.domain.ace] = domain
        pairs = [(found[a.domain.ace].gid, a.local_part) for a in parsed]
        taken = accounts.addresses_in_use(session.conn, pairs)
        if taken:
            raise AlreadyExists(f"{len(taken)} addresses already exist, e.g. {taken[0]}")
        hashes: list[str] = [""] * len(rows)
        plain, weak_hashes = [], 0
        for index, (_, secret) in enumerate(rows):
            if secret.startswith("{"):
                hashed, weak = policy.ready_hash(secret)
                hashes[index] = hashed
                weak_hashes += weak
            elif not secret:
                raise InvalidValue(f"empty password for {parsed[index]}")
            else:
                try:
                    policy.check_length(secret)
                except PasswordError as exc:
                    raise PasswordError(f"{parsed[index]}: {exc}") from None
                plain.append(index)
        started = time.monotonic()
        workers = len(os.sched_getaffinity(0))  # a process a core this container may use
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = [(rows[index][1], policy.scheme, policy.rounds) for index in plain]
            for index, hashed in zip(plain, pool.map(_hash, jobs, chunksize=64), strict=True):
                hashes[index] = hashed
        hashed_in = time.monotonic() - started
        created = accounts.add_many(
            session.conn, [(gid, local, hashed) for (gid, local), hashed in zip(pairs, hashes, strict=True)]
        )
        stored_in = time.monotonic() - started - hashed_in
        domain_dirs = {domain.gid: domain.domaindir for domain in found.values()}
        with typer.progressbar(created, label="Creating Maildirs", file=sys.stderr) as progress:
            for uid, gid, _ in progress:
                create_maildir(session, Path(domain_dirs[gid]) / str(uid), uid, gid)
    # The phases, for the postmaster (and `make bench`, from --json): hashing runs on
    # every core.
    rest = time.monotonic() - started - hashed_in - stored_in
    if weak_hashes:
        typer.echo(f"Warning: {weak_hashes} imported accounts have weak password hashes", err=True)
    if as_json:
        show_json(
            {
                "imported": len(created),
                "hashed": len(plain),
                "hash_seconds": round(hashed_in, 3),
                "workers": workers,
                "store_seconds": round(stored_in, 3),
                "rest_seconds": round(rest, 3),
                "weak_hashes": weak_hashes,
            }
        )
        return
    typer.echo(
        f"hashed {len(plain)} passwords in {hashed_in:.3f} s on {workers} processes; "
        f"stored {len(created)} rows in {stored_in:.3f} s; "
        f"created the Maildirs and committed in {rest:.3f} s",
        err=True,
    )
    typer.echo(f"imported {len(created)} accounts")
