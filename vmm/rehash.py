"""Rehash on login: Dovecot's Lua passdb (config-templates/dovecot/rehash.lua.j2) runs
``python3 -m vmm.rehash`` after an account with a legacy hash proved its password, and
writes ``conninfo NUL token NUL password`` to its stdin. The password is stored hashed
in the installation's scheme, unless the account changed since the lookup.

Exit status: 0 stored, 1 left alone (the account changed, or the installation's own
scheme is a legacy one), 2 an error (one line on stderr, which Dovecot logs)."""

from __future__ import annotations

import sys

import psycopg

from vmm import db
from vmm.passwords import LEGACY_SCHEMES, hash_password, split_scheme
from vmm.settings import Settings

STORED, LEFT_ALONE, FAILED = 0, 1, 2


def rehash(conn: psycopg.Connection, token: str, password: str) -> bool:
    """Store ``password`` in the installation's scheme for the row ``token`` names;
    True when stored. Never commits."""
    rows = conn.execute("SELECT name, value FROM dovecot_password_policy()").fetchall()
    policy = Settings({str(name): str(value) for name, value in rows}).password_policy(allow_weak=False)
    if split_scheme(policy.scheme)[0] in LEGACY_SCHEMES:
        return False
    new_hash = hash_password(password, policy.scheme, policy.rounds)
    row = conn.execute("SELECT dovecot_rehash(%s, %s)", (token, new_hash)).fetchone()
    return bool(row and row[0])


def main() -> int:
    try:
        conninfo, token, password = sys.stdin.buffer.read().decode("utf-8").split("\0", 2)
        with psycopg.connect(conninfo, autocommit=True) as conn, db.transaction(conn):
            return STORED if rehash(conn, token, password) else LEFT_ALONE
    # Any failure: one line for Dovecot's log, never the input.
    except Exception as exc:
        print(f"vmm.rehash: {type(exc).__name__}: {db.first_line(exc)}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
