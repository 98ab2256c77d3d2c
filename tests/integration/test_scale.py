"""Scale (issue 20): with a million accounts every lookup the daemons make is still read
through an index, never by a sequential scan. What each costs at 1,000 and at 1,000,000
accounts is `make bench`'s to measure (docs/scaling.md)."""

from __future__ import annotations

from tests import lookups
from tests.integration.conftest import Cli

ACCOUNTS = 1_000_000


def test_a_million_accounts_are_looked_up_through_indexes_only(cli: Cli) -> None:
    cli.ok("ba", "mail1", "dovecot-1")
    cli.sql(lookups.populate(ACCOUNTS, backend="mail1"))
    addresses = [
        ("u123456", "d456.scale.example"),  # an account
        ("u77", "d77.scale.example.net"),  # an account, under an alias domain
        ("a4242", "d242.scale.example"),  # an alias
        ("r99", "d99.scale.example"),  # a relocated user
        ("nobody", "d3.scale.example"),  # a catch-all's domain
        ("nobody", "d500.scale.example"),  # unknown, in a hosted domain
        ("nobody", "elsewhere.example"),  # not hosted here
    ]
    queries = [query for local, domain in addresses for query in lookups.queries(local, domain)]
    # One transaction: pg_stat_xact_user_tables counts its scans before they are flushed.
    # Not the backends' table: a handful of rows on one page, read whole, as it should be.
    counts = """SELECT sum(seq_scan)::int, sum(coalesce(idx_scan, 0))::int FROM pg_stat_xact_user_tables
                 WHERE relname <> 'mail_backend'"""
    [(sequential, by_index)] = cli.sql(";\n".join([*queries, counts]))
    # Postfix's nine maps, Dovecot's passdb and userdb, the proxy's lookup: all found.
    assert len(queries) >= len(addresses) * 12
    assert sequential == 0 and isinstance(by_index, int) and by_index >= len(queries)
