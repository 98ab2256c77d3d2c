"""Postfix's local copy of the hosted domain names (images/postfix/vmm-domains).

Postfix's address resolver asks whether a recipient's domain is hosted here for every
recipient, twice (for smtpd, then for qmgr). main.cf lists this table before the SQL
lookup, so a hosted name is answered without a query. PostgreSQL stays the source: a
name added since the last refresh is not here and is asked of PostgreSQL as before; a
removed one lingers until the next refresh, at most REFRESH_SECONDS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vmm.runtime import Runtime

# Postfix reads PATH.db (hash:PATH in main.cf). Not in Postfix's own directories, whose
# files `postfix check` wants owned by postfix: this is root's, as /etc/postfix is.
PATH = Path("/var/lib/vmm/domains")
REFRESH_SECONDS = 30


def table(names: list[str]) -> str:
    """The source of the Postfix table: one hosted name a line."""
    return "".join(f"{name} hosted\n" for name in sorted(names))


def refresh(runtime: Runtime, path: Path = PATH) -> None:
    """Write the table anew if the names changed; Postfix's daemons notice the new
    file and restart themselves. Without the database the last copy stays (vmm-domains
    starts with an empty one): PostgreSQL answers what it lacks."""
    # Imported here: vmm.render reads PATH, and psycopg would slow every container's start.
    from vmm import db
    from vmm.errors import VmmError

    try:
        with db.connect(runtime, role="postfix") as conn, db.transaction(conn):
            names = [str(name) for (name,) in conn.execute("SELECT * FROM postfix_domains()")]
    except VmmError as exc:
        print(f"vmm-domains: keeping the last copy: {exc}", file=sys.stderr, flush=True)
        return
    source = table(names)
    if path.exists() and path.read_text() == source:
        return
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(source)
    subprocess.run(["postmap", f"hash:{fresh}"], check=True)
    # The database first, by rename: a daemon opens either the old file or the new one.
    os.replace(fresh.with_name(fresh.name + ".db"), path.with_suffix(".db"))
    os.replace(fresh, path)


if __name__ == "__main__":
    refresh(Runtime.from_env())
