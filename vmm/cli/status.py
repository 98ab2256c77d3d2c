"""`vmm status`: the stack's health on one screen (not in vmm(1))."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from vmm import db, status
from vmm.cli.app import command
from vmm.cli.options import JsonOption
from vmm.cli.output import show, show_json, show_list
from vmm.errors import DatabaseError, Unhealthy
from vmm.runtime import Runtime

# Where compose.yaml mounts the volumes into the vmm container.
SPOOL = Path("/var/spool/postfix")
VOLUMES = {"mail": Path("/srv/mail"), "db": Path("/volumes/db"), "queue": SPOOL}


@command("status", "st")
def status_command(as_json: JsonOption = False) -> None:
    """Show each service's health, Postfix's queue (and why the oldest deferred message
    waits), the last hour's deliveries and rejects (with the monitoring profile), the
    certificate, the volumes' use and the schema; exits 11 when something is wrong."""
    runtime = Runtime.from_env()
    try:
        with db.connect(runtime) as conn:
            version = db.schema_version(conn)
    except DatabaseError:
        version = 0  # the postgres probe says why
    found = status.collect(runtime, version, VOLUMES, SPOOL)
    if as_json:
        show_json(asdict(found))
    else:
        _show(found)
    if found.problems:
        raise Unhealthy(f"{len(found.problems)} problems (listed above)")


def _show(found: status.Status) -> None:
    queue = ", ".join(f"{name} {count}" for name, count in found.queue.items())
    rows: list[tuple[str, object]] = [
        ("Services", ", ".join(f"{name} {state}" for name, state in found.services.items())),
        ("Queue", queue),
    ]
    if found.oldest_deferred is not None:
        rows.append(
            ("Oldest deferred", f"{found.oldest_deferred / 60:.0f} min: {found.deferred_reason or '?'}")
        )
    if found.last_hour is None:
        rows.append(("Last hour", "unknown (the monitoring profile counts it)"))
    else:
        rows.append(
            ("Last hour", ", ".join(f"{name} {value:.0f}" for name, value in found.last_hour.items()))
        )
    if found.certificate:
        cert = found.certificate
        rows.append(
            ("Certificate", f"{cert['subject']}, until {cert['not_after']} ({cert['days_left']} days)")
        )
    rows.append(("Volumes", ", ".join(f"{name} {used:.0%} used" for name, used in found.volumes.items())))
    rows.append(("Schema", f"version {found.schema_version}"))
    show("Status", rows)
    if found.problems:
        show_list("Problems", found.problems)
