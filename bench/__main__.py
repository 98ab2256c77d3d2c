"""`make bench`: how fast the running stack delivers, provisions and restarts, each
figure beside a reference measured in the same run on the same machine. Prints one
table and writes it as JSON to bench/results/. Load goes only to the stack's own
containers (and a reference container on the stack's network)."""

from __future__ import annotations

import imaplib
import json
import os
import platform
import smtplib
import ssl
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import delivery, imap
from bench.stack import ROOT, compose, run, vmm, wait_healthy

RESULTS = ROOT / "bench" / "results"
IMAGES = ["vmm-postgres", "vmm-postfix", "vmm-dovecot", "vmm-cli"]
PASSWORD = "bench-password"  # noqa: S105 (the bench accounts' throwaway password)


@dataclass
class Row:
    metric: str
    ours: float
    reference: float | None
    unit: str
    target: str
    met: bool

    @property
    def ratio(self) -> float | None:
        return self.ours / self.reference if self.reference else None


def _published_port(service: str, port: int) -> int:
    return int(compose("port", service, str(port)).strip().rsplit(":", 1)[1])


def prepare_accounts() -> str:
    """bench.example with u0 ... u999 (imported in one transaction); its directory."""
    if "bench.example" in vmm("listdomains"):
        vmm("domaindelete", "bench.example", "--force", "--delete-directory")
    vmm("domainadd", "bench.example", "--password-stdin", stdin=PASSWORD + "\n")
    rows = "address,password\n" + "".join(
        f"u{n}@bench.example,{PASSWORD}\n" for n in range(delivery.ACCOUNTS))
    vmm("import", "-", stdin=rows)
    return str(json.loads(vmm("domaininfo", "bench.example", "--json"))["directory"])


def provisioning_to_rcpt(smtp_port: int, rounds: int = 5) -> float:
    """Seconds from `useradd` returning to RCPT TO accepted for the new address (max)."""
    worst = 0.0
    for n in range(rounds):
        address = f"fresh{n}-{int(time.time())}@bench.example"
        vmm("useradd", address, "--password-stdin", stdin=PASSWORD + "\n")
        returned = time.monotonic()
        while True:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                client.ehlo("bench.example")
                client.mail("probe@sender.example")
                if client.rcpt(address)[0] == 250:
                    break
            if time.monotonic() - returned > 30:
                raise RuntimeError(f"{address} not accepted after 30 s")
        worst = max(worst, time.monotonic() - returned)
    return worst


def restart_to_login(imaps_port: int) -> float:
    """Seconds from a warm `docker compose restart` to all healthy and an IMAP login."""
    started = time.monotonic()
    compose("restart")
    wait_healthy()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    while True:
        try:
            client = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=context, timeout=10)
            client.login("u0@bench.example", PASSWORD)
            client.logout()
            return time.monotonic() - started
        except (OSError, imaplib.IMAP4.error):
            if time.monotonic() - started > 120:
                raise
            time.sleep(0.1)


def image_growth_mb() -> dict[str, float]:
    base = int(run("docker", "image", "inspect", "debian:trixie-slim", "--format", "{{.Size}}"))
    return {image: (int(run("docker", "image", "inspect", image, "--format", "{{.Size}}")) - base) / 1e6
            for image in IMAGES}


def idle_rss_mb() -> float:
    """Resident memory of the whole stack at rest (docker stats, after 10 s idle)."""
    time.sleep(10)
    names = compose("ps", "--format", "{{.Name}}").split()
    out = run("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *names)
    total = 0.0
    for line in out.splitlines():
        used = line.split("/")[0].strip()
        number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
        total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1024**2}[unit]
    return total


def main() -> None:
    wait_healthy()
    smtp_port, imaps_port = _published_port("postfix", 25), _published_port("dovecot", 993)
    rows: list[Row] = []
    started = time.monotonic()
    domain_dir = prepare_accounts()
    print(f"imported {delivery.ACCOUNTS} accounts in {time.monotonic() - started:.1f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch:
        master_cf = delivery.rendered_master_cf(Path(scratch))
        reference = delivery.reference(master_cf)
    rate, sql_stats = delivery.ours(domain_dir)
    rows.append(Row("1 delivered msg/s (10 KiB, 20 sessions, 1,000 accounts)", rate, reference,
                    "msg/s", "ratio >= 0.9", rate / reference >= 0.9))
    rows.append(Row("3 SQL queries per delivered recipient", sql_stats["queries_per_recipient"], None,
                    "queries", "<= 12", sql_stats["queries_per_recipient"] <= 12))
    rows.append(Row("3 new database connections during the load", sql_stats["new_connections"], None,
                    "connections", "no new connection per message",
                    sql_stats["new_connections"] * 10 < 3 * delivery.DELIVERIES))
    rows.append(Row("3 sequential scans during the load", sql_stats["seq_scans"], None, "scans",
                    "all index scans", sql_stats["seq_scans"] == 0))
    with tempfile.TemporaryDirectory() as scratch:
        reference_logins = imap.reference(Path(scratch), "vmm_tls", PASSWORD)
    users = [(f"u{n}@bench.example", PASSWORD) for n in range(delivery.ACCOUNTS)]
    logins = imap.logins_per_second(imaps_port, users)
    rows.append(Row("4 IMAP logins/s (TLS, login+select+logout, 20 clients)", logins, reference_logins,
                    "logins/s", "ratio >= 0.8", logins / reference_logins >= 0.8))
    cost = imap.hash_cost_ms(imap.bench_hashes()[0][1], PASSWORD)
    rows.append(Row("4 one check of the default scheme (BLF-CRYPT cost 10)", cost, None, "ms",
                    "deliberate, documented", True))
    latency = provisioning_to_rcpt(smtp_port)
    rows.append(Row("6 useradd returned -> RCPT accepted (worst of 5)", latency, None, "s", "< 1 s",
                    latency < 1))
    restart = restart_to_login(imaps_port)
    rows.append(Row("7 warm restart -> healthy + IMAP login", restart, None, "s", "< 5 s", restart < 5))
    for image, growth in image_growth_mb().items():
        rows.append(Row(f"8 {image} over debian:trixie-slim", growth, None, "MB", "<= 100 MB", growth <= 100))
    rss = idle_rss_mb()
    rows.append(Row("8 idle stack memory", rss, None, "MiB", "<= 150 MB", rss <= 150 / 1.048576))

    header = f"{'metric':<58} {'ours':>10} {'reference':>10} {'ratio':>6}  {'target':<30} met"
    print(header)
    print("-" * len(header))
    for row in rows:
        reference_text = f"{row.reference:10.1f}" if row.reference else f"{'-':>10}"
        ratio_text = f"{row.ratio:6.2f}" if row.ratio else f"{'-':>6}"
        print(f"{row.metric:<58} {row.ours:10.2f} {reference_text} {ratio_text}  {row.target:<30} "
              f"{'yes' if row.met else 'NO'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(
        {"machine": machine, "sql": sql_stats,
         "rows": [{**asdict(row), "ratio": row.ratio} for row in rows]}, indent=2))


if __name__ == "__main__":
    main()
