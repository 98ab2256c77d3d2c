"""The monitoring profile: a real Prometheus scrapes every service and the exporters,
counts what the stack does (deliveries, failed logins), and fires the shipped alerts.
Everything is asked of Prometheus's HTTP API, as a postmaster's dashboard would; the
stack scrapes every second and holds each alert for a second (the product: 30 s and
each rule's own hold, config-templates/prometheus/alerts.yml.j2)."""

from __future__ import annotations

import imaplib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack, wait_until_delivered
from tests.mail import message
from vmm.errors import ExitCode

STACK_ENV = {"COMPOSE_PROFILES": "monitoring", "VMM_METRICS_INTERVAL": "1", "VMM_ALERT_FOR": "1"}
JOBS = {"prometheus", "dovecot", "rspamd", "postfix", "postfix-log", "postgres", "volumes", "certificates"}
PW = "monitored password"


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = f"http://127.0.0.1:{stack.port(9090)}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a loopback URL)
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for(
    stack: Stack, promql: str, good: Callable[[list[dict[str, Any]]], bool], timeout: float = 90
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not good(result := query(stack, promql)):
        assert time.monotonic() < deadline, f"{promql}: {result}"
        time.sleep(1)
    return result


def value(result: list[dict[str, Any]]) -> float:
    return sum(float(sample["value"][1]) for sample in result)


def test_every_target_is_up(stack: Stack) -> None:
    up = wait_for(stack, "up", lambda r: {s["metric"]["job"] for s in r if s["value"][1] == "1"} == JOBS)
    assert len(up) == len(JOBS) + 2  # the certificates job probes three ports
    probes = wait_for(stack, "probe_success", lambda r: len(r) == 3 and value(r) == 3)
    assert {s["metric"]["instance"] for s in probes} == {"postfix:465", "dovecot:993", "web:8443"}
    expiry = query(stack, "probe_ssl_earliest_cert_expiry - time()")
    assert all(float(s["value"][1]) > 14 * 86400 for s in expiry) and len(expiry) == 3


def test_deliveries_rejects_failed_logins_and_accounts_are_counted(stack: Stack) -> None:
    stack.add_account("watched@example.test", PW)
    for n in range(3):
        stack.send("s@sender.example", ["watched@example.test"], message("watched@example.test", f"#{n}"))
    assert len(wait_until_delivered(stack, "watched@example.test", PW, count=3)) == 3
    assert stack.rcpt("nobody@example.test")[0] == 550
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error):
            stack.imap_login("watched@example.test", "not the password")
    wait_for(stack, "sum(dovecot_lmtp_deliveries_count)", lambda r: value(r) >= 3)
    # Postfix's side, from its log: deliveries by transport and status, rejects by reason.
    wait_for(stack, 'postfix_deliveries_total{transport="lmtp", status="sent"}', lambda r: value(r) >= 3)
    rejected = 'postfix_rejects_total{stage="RCPT", code="550", reason="unknown recipient"}'
    wait_for(stack, rejected, lambda r: value(r) >= 1)
    wait_for(stack, "sum(dovecot_auth_failures_total)", lambda r: value(r) >= 2)
    wait_for(stack, 'pg_stat_user_tables_n_live_tup{relname="users"}', lambda r: value(r) >= 1)
    mail = wait_for(stack, 'node_filesystem_avail_bytes{mountpoint="/volumes/mail"}', lambda r: len(r) == 1)
    assert value(mail) > 0


def test_status_of_a_healthy_stack(stack: Stack) -> None:
    healthy = json.loads(stack.vmm_ok("status", "--json"))
    assert set(healthy["services"].values()) == {"ok"} and "dovecot" in healthy["services"]
    assert healthy["problems"] == [] and healthy["schema_version"] >= 10
    # From Prometheus, after the test above.
    assert healthy["last_hour"]["delivered"] >= 3 and healthy["last_hour"]["rejected"] >= 1
    assert set(healthy["volumes"]) == {"mail", "db", "queue"}
    assert healthy["certificate"]["days_left"] > 14


def test_a_stopped_dovecot_fires_the_queue_and_service_alerts(stack: Stack) -> None:
    stack.add_account("queued@example.test", PW)
    stack.compose_ok("stop", "dovecot")
    try:
        stack.send("s@sender.example", ["queued@example.test"], message("queued@example.test"))
        broken = stack.vmm("status")
        assert broken.returncode == ExitCode.UNHEALTHY, broken.stderr
        assert "dovecot: unreachable" in broken.stdout and "problems (listed above)" in broken.stderr
        queued = json.loads(stack.vmm("status", "--json").stdout)
        assert sum(queued["queue"].values()) >= 1
        for alert in ("MailDeferred", "ServiceDown"):
            firing = wait_for(
                stack, f'ALERTS{{alertname="{alert}", alertstate="firing"}}', lambda r: len(r) > 0, 180
            )
            if alert == "ServiceDown":
                assert {s["metric"].get("job") for s in firing} >= {"dovecot"}
        deferred = 'postfix_deliveries_total{transport="lmtp", status="deferred"}'
        wait_for(stack, deferred, lambda r: value(r) >= 1)
    finally:
        stack.compose_ok("start", "dovecot")
    # Nothing lost: once Dovecot is back, the deferred message is delivered (flushed).
    stack.exec("postfix", "postqueue", "-f")
    assert len(wait_until_delivered(stack, "queued@example.test", PW, timeout=120)) == 1
