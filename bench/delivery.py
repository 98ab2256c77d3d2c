"""Metrics 1 and 3: delivered messages per second with Postfix's smtp-source as the
load (20 sessions, 10 KiB, 1,000 accounts), against Postfix with static hash maps and
its own virtual(8) on the same machine; and the SQL each delivered recipient costs."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cost
from bench.stack import FILTER_NETWORK, NETWORK, compose, run, sql, start_container

SESSIONS = 20
SIZE = 10 * 1024
# smtp-source numbers the recipients u0@ ... across the messages: with two recipients
# each, half as many messages as accounts reach every account once per run.
RECIPIENTS = 2
REFERENCE = "vmmbench-reference"
# The stage a postmaster would run instead (docker-mailserver's pipeline: Postfix with
# hash maps, LMTP into Dovecot, the milter): metric 1's reference.
DMS_LIKE = "LMTP + our rspamd milter (no SQL)"

# Runs inside the container that holds the Maildirs, so that counting costs the load
# little: it re-lists a new/ directory only when its mtime moved (or moved lately, since
# two renames within one clock tick share an mtime), and times from "go" on its stdin.
_WATCH = """
import os, sys, time
root, folder, expected, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
seen = {}
def count():
    total, now = 0, time.time_ns()
    for home in os.scandir(root) if os.path.isdir(root) else []:
        new = os.path.join(home.path, folder, 'new')
        try:
            mtime = os.stat(new).st_mtime_ns
            if new not in seen or seen[new][0] != mtime or now - mtime < 200_000_000:
                seen[new] = (mtime, len(os.listdir(new)))
        except OSError:
            continue
        total += seen[new][1]
    return total
target = count() + expected
print('ready', flush=True)
sys.stdin.readline()
started = time.monotonic()
while count() < target:
    if time.monotonic() - started > limit:
        sys.exit(f'only {count() - target + expected} of {expected} arrived in {limit} s')
    time.sleep(0.05)
print(time.monotonic() - started)
"""


class Arrivals:
    """Watches a domain's Maildirs from inside their container: started before a load,
    :meth:`wait` returns the seconds from :meth:`go` until ``expected`` more messages are
    in new/."""

    def __init__(
        self,
        exec_prefix: list[str],
        domain_dir: str,
        expected: int,
        limit: float = 300,
        folder: str = "Maildir",
    ) -> None:
        self._process = subprocess.Popen(
            [*exec_prefix, "python3", "-c", _WATCH, domain_dir, folder, str(expected), str(limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin and self._process.stdout
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"arrivals watcher: {self._process.communicate()[1].strip()}")

    def go(self) -> None:
        assert self._process.stdin
        self._process.stdin.write("go\n")
        self._process.stdin.flush()

    def wait(self) -> float:
        out, err = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"arrivals watcher: {err.strip()}")
        return float(out)


def arrivals(
    domain_dir: str,
    exec_prefix: tuple[str, ...] = ("docker", "compose", "exec", "-T", "dovecot"),
) -> Callable[[int], Arrivals]:
    """Watchers of a domain's Maildirs; by default the stack's, in its dovecot container."""
    return lambda expected: Arrivals(list(exec_prefix), domain_dir, expected)


def _timed_run(host: str, watch: Callable[[int], Arrivals], accounts: int) -> float:
    """Deliveries per second: from the first connection until the last file is in."""
    messages = accounts // RECIPIENTS
    deliveries = messages * RECIPIENTS
    watcher = watch(deliveries)
    watcher.go()
    run(
        "docker",
        "run",
        "--rm",
        "--network",
        NETWORK,
        "--entrypoint",
        "smtp-source",
        "vmm-postfix",
        "-s",
        str(SESSIONS),
        "-l",
        str(SIZE),
        "-m",
        str(messages),
        "-r",
        str(RECIPIENTS),
        "-f",
        "load@sender.example",
        "-t",
        "u@bench.example",
        f"{host}:25",
    )
    return deliveries / watcher.wait()


@dataclass
class Delivered:
    rate: float  # the median over the runs, msg/s
    sql: dict[str, float]
    cpu_ms: dict[str, float]  # CPU a delivery, by component (bench.cost)
    log: dict[str, tuple[float, float]]  # lines and bytes a message, by service


def ours(domain_dir: str, accounts: int, runs: int = 3) -> Delivered:
    """The median rate over ``runs``, and the SQL, CPU and logging those runs cost."""
    sql("SELECT pg_stat_statements_reset()")
    [[sessions_before]] = sql("SELECT sessions FROM pg_stat_database WHERE datname = 'mailsys'")
    [[seq_before, idx_before]] = sql(
        "SELECT sum(seq_scan), sum(coalesce(idx_scan, 0)) FROM pg_stat_user_tables"
    )
    before = cost.Snapshot.take()
    rates = [_timed_run("postfix", arrivals(domain_dir), accounts) for _ in range(runs)]
    after = cost.Snapshot.take()
    [[calls, exec_ms]] = sql(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0)"
        " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
        " WHERE r.rolname IN ('postfix', 'dovecot') AND s.toplevel"
    )
    [[sessions_after]] = sql("SELECT sessions FROM pg_stat_database WHERE datname = 'mailsys'")
    [[seq_after, idx_after]] = sql(
        "SELECT sum(seq_scan), sum(coalesce(idx_scan, 0)) FROM pg_stat_user_tables"
    )
    messages = runs * (accounts // RECIPIENTS)
    deliveries = messages * RECIPIENTS
    sql_stats = {
        "queries_per_recipient": int(calls) / deliveries,
        # What one lookup costs PostgreSQL (planning aside), on average over all of them.
        "ms_per_query": float(exec_ms) / max(int(calls), 1),
        "new_connections": int(sessions_after) - int(sessions_before),
        "seq_scans": int(seq_after) - int(seq_before),
        "index_scans": int(idx_after) - int(idx_before),
    }
    return Delivered(
        statistics.median(rates),
        sql_stats,
        cost.cpu_ms_per_delivery(before, after, deliveries),
        cost.log_per_message(before, after, messages),
    )


def reference(
    master_cf: Path,
    accounts: int,
    runs: int = 3,
    stage: list[str] | None = None,
    domain_dir: str | None = None,
) -> float:
    """The same load into Postfix with hash maps, in the same image: by default delivering
    with its own virtual(8) (metric 1's reference). ``stage`` adds main.cf lines (e.g. the
    stack's LMTP transport and milter); with ``domain_dir`` the arrivals are counted in the
    stack's Maildirs, where the stack's Dovecot writes them."""
    vmailbox = "".join(f"u{n}@bench.example bench.example/u{n}/Maildir/\n" for n in range(accounts))
    lines = [
        "compatibility_level = 3.10",
        "myhostname = reference.bench.example",
        "mydestination =",
        "local_recipient_maps =",
        "alias_maps =",
        "inet_protocols = ipv4",
        "maillog_file = /dev/stdout",
        "smtpd_peername_lookup = no",
        "virtual_mailbox_domains = bench.example",
        "virtual_mailbox_maps = hash:/etc/postfix/vmailbox",
        "virtual_mailbox_base = /srv/ref",
        "virtual_uid_maps = static:70000",
        "virtual_gid_maps = static:70000",
        "virtual_minimum_uid = 70000",
        "virtual_transport = virtual",
        # The stack's master.cf puts postscreen in front of port 25; the stack lets the
        # bench's load past it (VMM_THROTTLE_EXEMPT), and so does the reference.
        "postscreen_access_list = static:permit",
        *(stage or []),
    ]
    # A stage's setting replaces the reference's own: a duplicate in main.cf would make
    # every Postfix process of the run log "overriding earlier entry".
    settings = {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in lines)}
    main_cf = "".join(f"{name} = {value}\n" for name, value in settings.items())
    script = (
        "set -e; cat >/etc/postfix/main.cf <<'EOF'\n" + main_cf + "EOF\n"
        "cat >/etc/postfix/vmailbox <<'EOF'\n" + vmailbox + "EOF\n"
        "cp /bench/master.cf /etc/postfix/master.cf; postmap /etc/postfix/vmailbox\n"
        "mkdir -p /srv/ref && chown 70000:70000 /srv/ref; exec postfix start-fg\n"
    )
    start_container(
        REFERENCE,
        "--network",
        NETWORK,
        "-v",
        f"{master_cf.parent}:/bench:ro",
        "--entrypoint",
        "sh",
        "vmm-postfix",
        "-c",
        script,
    )
    # The milter stage reaches the stack's rspamd, which is on its own network.
    run("docker", "network", "connect", FILTER_NETWORK, REFERENCE)
    try:
        deadline = time.monotonic() + 60
        while "220" not in run(
            "docker",
            "exec",
            REFERENCE,
            "python3",
            "-c",
            "import socket; print(socket.create_connection(('127.0.0.1', 25), 2).recv(64).decode())",
            check=False,
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the reference Postfix did not start")
            time.sleep(0.5)

        watch = (
            arrivals(domain_dir)
            if domain_dir
            else arrivals("/srv/ref/bench.example", ("docker", "exec", "-i", REFERENCE))
        )
        return statistics.median(_timed_run(REFERENCE, watch, accounts) for _ in range(runs))
    finally:
        run("docker", "rm", "-f", REFERENCE, check=False)


def stack_stages() -> dict[str, list[str]]:
    """Where metric 1's ratio goes: the reference's Postfix (hash maps) handing over to
    the stack's Dovecot as ours does, then also through the stack's milter. The lines are
    read from the stack's own main.cf, so the stages cannot drift from it."""
    lmtp = ["virtual_transport"]
    milter = [*lmtp, "smtpd_milters", "milter_protocol", "milter_default_action", "milter_mail_macros"]

    def settings(names: list[str]) -> list[str]:
        return compose("exec", "-T", "postfix", "postconf", *names).splitlines()

    return {
        "LMTP to our Dovecot (no SQL, no filter)": settings(lmtp),
        DMS_LIKE: settings(milter),
    }


def rendered_master_cf(directory: Path) -> Path:
    path = directory / "master.cf"
    path.write_text(compose("exec", "-T", "postfix", "cat", "/etc/postfix/master.cf"))
    return path
