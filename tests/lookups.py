"""The daemons' lookups at scale, for the integration test and the benchmark: every query
Postfix's maps and Dovecot's passdb and userdb send, read from their templates, and the
SQL that fills the database with a million accounts besides. Plain Python, no pytest."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = [
    *sorted((ROOT / "config-templates" / "postfix" / "sql").glob("*.j2")),
    ROOT / "config-templates" / "dovecot" / "dovecot.conf.j2",
]
# Where the added domains start: far above the identity's (70000 up) in any test stack.
FIRST_GID = 900_000
DOMAIN = "d{n}.scale.example"


def queries(local: str, domain: str) -> list[str]:
    """Every lookup query, as its template sends it (Dovecot's in each role), for one address."""
    found = []
    for template in TEMPLATES:
        found += re.findall(r"^\s*query = (.+)$", template.read_text(), re.MULTILINE)
    values = {
        "%s": f"{local}@{domain}",
        "%u": local,
        "%d": domain,
        "%{user|username}": local,
        "%{user|domain}": domain,
        "%{protocol}": "imap",
        "{{ recipient_delimiter }}": "+",
        "{{ legacy_schemes }}": "{PLAIN-MD5}",
    }
    pattern = re.compile("|".join(re.escape(key) for key in values))
    return [pattern.sub(lambda match: values[match.group(0)], query) for query in found]


def populate(accounts: int, backend: str | None = None) -> str:
    """SQL adding ``accounts`` accounts u0, u1, ... over a thousand domains d0.scale.example
    ... (the first hundred with an alias domain d0.scale.example.net ...), an alias for
    every tenth, a relocated user for every hundredth and ten catch-alls; then ANALYZE,
    as autovacuum would after such a load."""
    domains = 1000
    gid = f"{FIRST_GID} + n % {domains}"
    name = "'d' || n || '.scale.example'"
    on = f"'{backend}'" if backend else "NULL"
    return f"""
        INSERT INTO domain_data (gid, domaindir, transport)
        SELECT {FIRST_GID} + n, '/srv/mail/scale/' || n, 'lmtp:inet:dovecot:24'
          FROM generate_series(0, {domains - 1}) n;
        INSERT INTO domain_name (domainname, gid, is_primary)
        SELECT {name}, {FIRST_GID} + n, true FROM generate_series(0, {domains - 1}) n
        UNION ALL SELECT {name} || '.net', {FIRST_GID} + n, false FROM generate_series(0, 99) n;
        INSERT INTO users (gid, local_part, passwd, backend)
        SELECT {gid}, 'u' || n, '{{BLF-CRYPT}}$2y$05$x', {on} FROM generate_series(0, {accounts - 1}) n;
        INSERT INTO alias (gid, address, destination)
        SELECT {gid}, 'a' || n, 'u' || n || '@d' || n % {domains} || '.scale.example'
          FROM generate_series(0, {accounts // 10 - 1}) n
        UNION ALL SELECT {FIRST_GID} + n, '', 'u' || n || '@' || {name} FROM generate_series(0, 9) n;
        INSERT INTO relocated (gid, address, destination)
        SELECT {gid}, 'r' || n, 'r' || n || '@elsewhere.example'
          FROM generate_series(0, {accounts // 100 - 1}) n;
        ANALYZE"""  # noqa: S608 (our own numbers and names)


def depopulate() -> str:
    """SQL removing what :func:`populate` added."""
    return f"""
        DELETE FROM relocated WHERE gid >= {FIRST_GID};
        DELETE FROM alias WHERE gid >= {FIRST_GID};
        DELETE FROM users WHERE gid >= {FIRST_GID};
        DELETE FROM domain_data WHERE gid >= {FIRST_GID}"""  # noqa: S608 (our own numbers)
