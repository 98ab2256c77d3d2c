"""Issue 20's scale on paper: what one lookup costs PostgreSQL with the bench's 1,000
accounts, and again with a million more in a thousand other domains. Timed inside
PostgreSQL, as the daemons send them (text queries whose function plans each connection
keeps): the same addresses both times, so the difference is the tables' size alone."""

from __future__ import annotations

from bench.stack import sql
from tests import lookups

ROUNDS = 200
# The bench's own accounts, one unknown in its domain and one from elsewhere: looked up
# before and after the million are added.
ADDRESSES = [("u1", "bench.example"), ("u500", "bench.example"), ("nobody", "bench.example"),
             ("nobody", "elsewhere.example")]  # fmt: skip

# A function of this psql session only: runs every query once (each function's plan is
# then cached, as on a daemon's connection), then ROUNDS times over, timed.
_TIMER = """
CREATE FUNCTION pg_temp.per_lookup_us(queries text[], rounds integer) RETURNS float8
LANGUAGE plpgsql AS $f$
DECLARE
    started timestamptz;
    query text;
BEGIN
    FOREACH query IN ARRAY queries LOOP EXECUTE query; END LOOP;
    started := clock_timestamp();
    FOR round IN 1..rounds LOOP
        FOREACH query IN ARRAY queries LOOP EXECUTE query; END LOOP;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - started) * 1e6 / (rounds * cardinality(queries));
END
$f$;
"""


def per_lookup_us() -> float:
    """The mean time of one lookup, in microseconds, over every query and address."""
    queries = [query for local, domain in ADDRESSES for query in lookups.queries(local, domain)]
    array = "ARRAY[" + ", ".join(f"$q${query}$q$" for query in queries) + "]"
    # psql prints each statement's result: the timing is the last line.
    return float(sql(f"{_TIMER} SELECT pg_temp.per_lookup_us({array}, {ROUNDS})")[-1][0])


def at_scale(accounts: int) -> tuple[float, float]:
    """(µs a lookup now, µs a lookup with ``accounts`` more accounts); the added
    accounts are removed again."""
    before = per_lookup_us()
    sql(lookups.populate(accounts))
    try:
        return before, per_lookup_us()
    finally:
        sql(lookups.depopulate())
