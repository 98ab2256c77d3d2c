"""`vmm status`: what a postmaster asks first on a bad morning, from the places the
answers live: each service probed on its port as its clients reach it, Postfix's queue
read from the queue volume (counts, the oldest deferred message and why it waits), the
certificate, the volumes' use, the schema, and, with the monitoring profile,
deliveries and rejects of the last hour from Prometheus."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vmm import tls
from vmm.runtime import Runtime

QUEUES = ("incoming", "active", "deferred", "hold")
# What counts as wrong; the monitoring profile's alerts use the same thresholds
# (rendered into config-templates/prometheus/alerts.yml.j2).
DEFERRED_TOO_LONG = 3600  # seconds a deferred message may wait
CERTIFICATE_DAYS = 14
VOLUME_FULL = 0.9
PROMETHEUS = "http://prometheus:9090"


def _grown(counters: str) -> str:
    """PromQL: how much the ``counters`` grew in the last hour, in whole events. mtail
    creates a labelled series at its first event, which increase() would not count."""
    return f"sum(clamp_min({counters} - ({counters} offset 1h or {counters} * 0), 0))"


# Prometheus's answers to "what happened in the last hour" (docs/monitoring.md): Postfix's
# log counted by mtail, Dovecot's own counters.
LAST_HOUR = {
    "delivered": _grown('postfix_deliveries_total{transport="lmtp", status="sent"}'),
    "sent out": _grown('postfix_deliveries_total{transport="smtp", status="sent"}'),
    "deferrals": _grown('postfix_deliveries_total{status="deferred"}'),
    "bounced": _grown('postfix_deliveries_total{status=~"bounced|expired"}'),
    "rejected": _grown("postfix_rejects_total"),
    "rejected as spam": _grown('postfix_rejects_total{reason="spam"}'),
    "failed logins": "sum(increase(dovecot_auth_failures_total[1h]))",
}
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Probe:
    service: str
    host: str
    port: int
    # What the service says first ("" : a connection is enough), or an HTTP path to GET.
    greeting: str = ""
    path: str = ""


@dataclass
class Status:
    services: dict[str, str] = field(default_factory=dict)  # service -> "ok" or why not
    queue: dict[str, int] = field(default_factory=dict)
    oldest_deferred: float | None = None  # seconds
    deferred_reason: str = ""
    last_hour: dict[str, float] | None = None  # None: no Prometheus
    certificate: dict[str, object] = field(default_factory=dict)
    volumes: dict[str, float] = field(default_factory=dict)  # share used
    schema_version: int = 0
    problems: list[str] = field(default_factory=list)


def probes(runtime: Runtime) -> list[Probe]:
    cache_host, _, cache_port = runtime.cache_server.rpartition(":")
    return [
        Probe("postgres", runtime.db_host, runtime.db_port),
        Probe("pgbouncer", runtime.db_pool_host, runtime.db_pool_port),
        Probe("postfix", runtime.postfix_host, 25, greeting="220 "),
        Probe("dovecot", runtime.dovecot_host, 143, greeting="* OK"),
        Probe("lmtp", runtime.dovecot_host, runtime.lmtp_port, greeting="220 "),
        Probe("rspamd", runtime.filter_host, runtime.controller_port, path="/ping"),
        Probe("valkey", cache_host, int(cache_port)),
        Probe("policy", runtime.policy_host, runtime.auth_policy_port, path="/ping"),
        Probe("resolver", "resolver", 53),
        Probe("mta-sts", runtime.mta_sts_host, runtime.mta_sts_port),
        Probe("web", "web", 8080),
    ]


def probe(check: Probe) -> str:
    """ "ok", or why the service did not answer as it should."""
    try:
        with socket.create_connection((check.host, check.port), timeout=PROBE_TIMEOUT) as conn:
            if check.path:
                conn.sendall(f"GET {check.path} HTTP/1.0\r\n\r\n".encode())
                first = conn.makefile("rb").readline().decode(errors="replace")
                return "ok" if " 200 " in first else f"answers {first.strip()!r}"
            if check.greeting:
                first = conn.makefile("rb").readline().decode(errors="replace")
                return "ok" if first.startswith(check.greeting) else f"greets {first.strip()!r}"
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"
    return "ok"


def _arrival(path: Path) -> float | None:
    """A queue file's arrival time: its first time record (Postfix's record format: a
    type byte, a base-128 length, the data)."""
    try:
        data = path.read_bytes()[:512]
    except OSError:
        return None
    at = 0
    while at < len(data):
        kind, at = chr(data[at]), at + 1
        length = shift = 0
        while at < len(data):
            byte, at = data[at], at + 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if kind == "T":
            return float(data[at : at + length].split()[0])
        at += length
    return None


def _defer_reason(spool: Path, queue_id: str) -> str:
    """Why Postfix deferred the message: the last reason in its defer log."""
    for path in (spool / "defer").rglob(queue_id):
        reasons = [
            line[7:] for line in path.read_text(errors="replace").splitlines() if line.startswith("reason=")
        ]
        if reasons:
            return reasons[-1]
    return ""


def read_queue(spool: Path, status: Status, now: float) -> None:
    oldest: tuple[float, str] | None = None
    for queue in QUEUES:
        files = [path for path in (spool / queue).rglob("*") if path.is_file()]
        status.queue[queue] = len(files)
        if queue != "deferred":
            continue
        for path in files:
            arrived = _arrival(path)
            if arrived is not None and (oldest is None or arrived < oldest[0]):
                oldest = (arrived, path.name)
    if oldest:
        status.oldest_deferred = now - oldest[0]
        status.deferred_reason = _defer_reason(spool, oldest[1])


def last_hour(url: str = PROMETHEUS) -> dict[str, float] | None:
    """The last hour's counts from the monitoring profile's Prometheus, None without it."""
    found: dict[str, float] = {}
    try:
        for name, promql in LAST_HOUR.items():
            query = urllib.parse.urlencode({"query": promql})
            with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=PROBE_TIMEOUT) as answer:  # noqa: S310
                result = json.load(answer)["data"]["result"]
            found[name] = float(result[0]["value"][1]) if result else 0.0
    except (OSError, ValueError, KeyError):
        return None
    return found


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.0f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def judge(status: Status) -> None:
    """What is wrong, each with a hint."""
    for service, state in status.services.items():
        if state != "ok":
            status.problems.append(f"{service}: {state}")
    deferred = status.queue.get("deferred", 0)
    if status.oldest_deferred is not None and status.oldest_deferred > DEFERRED_TOO_LONG:
        why = f": {status.deferred_reason}" if status.deferred_reason else ""
        status.problems.append(f"deferred: {deferred}, oldest {_ago(status.oldest_deferred)}{why}")
    days = status.certificate.get("days_left")
    if isinstance(days, int) and days < CERTIFICATE_DAYS:
        status.problems.append(
            f"certificate: expires in {days} days (vmm certinfo says why it was not renewed)"
        )
    for volume, used in status.volumes.items():
        if used > VOLUME_FULL:
            status.problems.append(f"volume {volume}: {used:.0%} used")


def collect(runtime: Runtime, schema_version: int, volumes: dict[str, Path], spool: Path) -> Status:
    status = Status(schema_version=schema_version)
    now = time.time()
    status.services = {check.service: probe(check) for check in probes(runtime)}
    read_queue(spool, status, now)
    status.last_hour = last_hour()
    certificate = tls.read_certificate(runtime.tls_cert)
    if certificate:
        left = certificate.not_after - datetime.now(UTC)
        status.certificate = {
            "subject": certificate.subject,
            "self_signed": certificate.self_signed,
            "not_after": certificate.not_after.isoformat(),
            "days_left": left.days,
        }
    for name, path in volumes.items():
        if path.is_dir():
            stats = os.statvfs(path)
            status.volumes[name] = 1 - stats.f_bavail / stats.f_blocks if stats.f_blocks else 0.0
    judge(status)
    return status
