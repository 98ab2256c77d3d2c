"""Metric 5: bulk provisioning. `vmm import` of many accounts against PostgreSQL's own
COPY of the same rows (the database phase), single `useradd` runs extrapolated to the
same count, and how much faster than one core the import hashes passwords."""

from __future__ import annotations

import json
import time

from passlib.hash import bcrypt

from bench.stack import compose, exec_in, vmm
from vmm import passwords  # noqa: F401 (quiets passlib's logger as the CLI does)

DOMAIN = "bulk.bench.example"
# Ready hashes: the database phase is measured without hashing, which has its own row.
READY = "{BLF-CRYPT}" + bcrypt.using(rounds=4).hash("bulk")
_COPY = """
import sys, time, psycopg
rows = sys.stdin.read()
with psycopg.connect("dbname=mailsys") as conn, conn.transaction(force_rollback=True):
    started = time.monotonic()
    with conn.cursor().copy("COPY users (gid, local_part, passwd) FROM STDIN") as copy:
        copy.write(rows)
    print(time.monotonic() - started)
"""


def _import(rows: str) -> dict[str, float]:
    """`vmm import --json` of ``rows`` (CSV); its phases in seconds, as it reports them."""
    started = time.monotonic()
    output = vmm("import", "-", "--json", stdin=rows)
    wall = time.monotonic() - started
    report = json.loads(output)
    # The command reports milliseconds: a tiny (smoke) import may take less.
    return {
        "hashed": report["hashed"],
        "hash_s": max(report["hash_seconds"], 1e-3),
        "workers": report["workers"],
        "stored": report["imported"],
        "store_s": max(report["store_seconds"], 1e-3),
        "rest_s": report["rest_seconds"],
        "wall_s": wall,
    }


def _fresh_domain() -> int:
    if DOMAIN in vmm("listdomains"):
        vmm("domaindelete", DOMAIN, "--force", "--delete-directory")
    vmm("configset", "domain.auto_postmaster", "false")
    try:
        vmm("domainadd", DOMAIN)
    finally:
        vmm("configset", "domain.auto_postmaster", "true")
    return int(json.loads(vmm("domaininfo", DOMAIN, "--json"))["gid"])


def bulk(count: int) -> dict[str, float]:
    """Import ``count`` accounts with ready hashes; COPY the same rows (rolled back)."""
    gid = _fresh_domain()
    copy_rows = "".join(f"{gid}\tb{n}\t{READY}\n" for n in range(count))
    copy_s = float(
        exec_in("postgres", "runuser", "-u", "postgres", "--", "python3", "-c", _COPY, stdin=copy_rows)
    )
    # Maildirs without the extra folders: at 100,000 accounts the directories, not the
    # database, take the time (five instead of twenty-one directories an account).
    folders = vmm("configget", "mailbox.folders").partition(" = ")[2].strip()
    vmm("configset", "mailbox.folders", "")
    try:
        phases = _import("address,password\n" + "".join(f"b{n}@{DOMAIN},{READY}\n" for n in range(count)))
    finally:
        vmm("configset", "mailbox.folders", folders)
    return {**phases, "copy_s": copy_s}


def singles(count: int) -> float:
    """Seconds per `useradd` process (hash included), run back to back in one container:
    what a shell loop of useradds costs without `docker compose run` each time."""
    script = "".join(
        f"echo bench-pw{n}-secret | vmm useradd single{n}@{DOMAIN} --password-stdin >/dev/null\n"
        for n in range(count)
    )
    started = time.monotonic()
    compose("run", "--rm", "-T", "--entrypoint", "sh", "vmm", "-e", stdin=script)
    loop = time.monotonic() - started
    started = time.monotonic()
    compose("run", "--rm", "-T", "--entrypoint", "true", "vmm")
    return (loop - (time.monotonic() - started)) / count


def hashing(count: int) -> dict[str, float]:
    """Import ``count`` accounts with plain passwords: hashes per second on every core."""
    rows = "".join(f"h{n}@{DOMAIN},bench-pw{n}-secret\n" for n in range(count))
    phases = _import("address,password\n" + rows)
    return {"per_second": phases["hashed"] / phases["hash_s"], "workers": phases["workers"]}


def cleanup() -> None:
    vmm("domaindelete", DOMAIN, "--force", "--delete-directory")
