"""Moving in (issue 17): `vmm migrate-from` of a generated Virtual Mail Manager 0.6
installation (tests/oldvmm.py) into the bench stack, the whole command timed as a
postmaster runs it: reading the old database, the report, the rows, the DKIM keys and
every home directory copied. No peer moves a vmm installation: no reference."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from bench.stack import ROOT, exec_in, vmm
from tests import oldvmm
from vmm import passwords

DOMAIN = "movein.bench.example"
GID = 89001
FIRST_UID = 89010
# About the mean size of a message in a mailbox (mostly text, some attachments aside).
MESSAGE = "Subject: moved\r\n\r\n" + ("x" * 76 + "\r\n") * 50


def _old_installation(root: Path, accounts: int, messages: int) -> None:
    ready = passwords.hash_password("moved-in")
    users = ",\n".join(
        f"('u{n}', {oldvmm.sql_literal(ready)}, {FIRST_UID + n}, {GID})" for n in range(accounts)
    )
    rows = (
        f"INSERT INTO domain_data (gid, domaindir) VALUES ({GID}, '/srv/mail/b/{GID}');\n"  # noqa: S608
        f"INSERT INTO domain_name VALUES ('{DOMAIN}', {GID}, true);\n"
        f"INSERT INTO users (local_part, passwd, uid, gid) VALUES {users};\n"
    )
    exec_in("postgres", *oldvmm.PSQL, stdin=oldvmm.database(rows))
    for n in range(accounts):
        mail = {uid: (f"17000{uid:05d}.M{uid}P1.old:2,S", MESSAGE) for uid in range(1, messages + 1)}
        oldvmm.maildir(root / "b" / str(GID) / str(FIRST_UID + n) / "Maildir", mail, messages + 1, 1700000000)


def migrate(accounts: int, messages: int) -> dict[str, float]:
    """Seconds for ``migrate-from`` of ``accounts`` accounts with ``messages`` each."""
    with tempfile.TemporaryDirectory() as scratch:
        _old_installation(Path(scratch), accounts, messages)
        started = time.monotonic()
        subprocess.run(
            oldvmm.migrate_from(Path(scratch)),
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        seconds = time.monotonic() - started
    vmm("domaindelete", DOMAIN, "--force", "--delete-directory")
    exec_in("postgres", *oldvmm.PSQL, stdin=oldvmm.DROP)
    return {"accounts": accounts, "messages": accounts * messages, "seconds": seconds}
