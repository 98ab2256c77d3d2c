"""The list commands: vmm's ``%`` patterns and the addresses of every kind that match."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmm.db import Connection
from vmm.errors import InvalidValue

KINDS = {"u": "account", "a": "alias", "r": "relocated"}
_PART = re.compile(r"%?[a-z0-9!#$&'*+=?^_`{|}~.-]*%?")


@dataclass(frozen=True)
class Pattern:
    """LIKE patterns for the local part and the domain; None matches everything."""

    local: str | None
    domain: str | None


def _like(part: str, text: str) -> str:
    if not _PART.fullmatch(part) or part in ("%", "%%"):
        raise InvalidValue(f"invalid pattern {text!r}: % may stand only at the start and the end")
    core = part.strip("%")
    escaped = core.replace("\\", "\\\\").replace("_", "\\_")
    return ("%" if part.startswith("%") else "") + escaped + ("%" if part.endswith("%") and core else "")


def parse_pattern(text: str | None, domains_only: bool = False) -> Pattern:
    """vmm(1): ``example.com`` is a domain, ``%master@%`` a local part in any domain."""
    if text is None:
        return Pattern(None, None)
    lowered = text.strip().lower()
    if not lowered or lowered.count("@") > 1 or (domains_only and "@" in lowered):
        raise InvalidValue(f"invalid pattern {text!r}")
    if "@" not in lowered:
        return Pattern(None, _like(lowered, text))
    local, _, domain = lowered.partition("@")
    return Pattern(
        _like(local, text) if local not in ("", "%") else None,
        _like(domain, text) if domain not in ("", "%") else None,
    )


@dataclass(frozen=True)
class Listed:
    kind: str  # u, a or r
    primary: bool  # False for an address in an alias domain
    address: str


def addresses(conn: Connection, kinds: str, pattern: Pattern) -> list[Listed]:
    rows = conn.execute(
        """SELECT x.kind, n.is_primary, x.local_part || '@' || n.domainname
             FROM (SELECT 'u' AS kind, gid, local_part FROM users
                   UNION SELECT 'a', gid, address FROM alias WHERE address <> ''
                   UNION ALL SELECT 'r', gid, address FROM relocated) x
             JOIN domain_name n ON n.gid = x.gid
            WHERE x.kind = ANY(%(kinds)s)
              AND (%(local)s::text IS NULL OR x.local_part LIKE %(local)s)
              AND (%(domain)s::text IS NULL OR n.domainname LIKE %(domain)s)
            ORDER BY n.domainname, x.local_part, x.kind""",
        {"kinds": list(kinds), "local": pattern.local, "domain": pattern.domain},
    ).fetchall()
    return [Listed(str(kind), bool(primary), str(address)) for kind, primary, address in rows]
