"""Mail leaving the stack, to another server on this machine (tests/e2e/remote.yaml): found
by its MX record in the signed test zone, sent over TLS that DANE verifies, DKIM-signed;
a TLSA mismatch defers it, a permanent refusal comes back to the sender as one bounce, a
temporary one stays queued for a retry; and mail keeps flowing while DNS is gone."""

from __future__ import annotations

import email
import json
import time
import uuid

import dkim
import pytest

from tests.e2e.conftest import Stack, rspamd_verdict, wait_for_log, wait_until_delivered
from tests.e2e.remote import REMOTE_MAILDIR, received_remotely
from tests.mail import message

pytestmark = pytest.mark.e2e

STACK_FILES = ["tests/e2e/remote.yaml"]
PW = "outbound sender password"
SENDER = "ann@example.test"  # the default domain, with its DKIM key since the first start


@pytest.fixture(scope="module")
def outbound(stack: Stack) -> Stack:
    stack.add_account(SENDER, PW)
    # DANE-EE: the remote server's own key, by its SHA-256 (TLSA 3 1 1).
    digest, _, _ = stack.exec(
        "remote",
        "sh",
        "-c",
        "openssl x509 -in /etc/postfix/cert.pem -noout -pubkey"
        " | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
    )
    assert len(digest.strip()) == 64
    stack.publish(
        "remote.test.\t60\tIN\tMX\t10 mx.remote.test.\n"
        f"mx.remote.test.\t60\tIN\tA\t{stack.net}.120\n"
        f"_25._tcp.mx.remote.test.\t60\tIN\tTLSA\t3 1 1 {digest.strip()}\n"
        # The same server under another name, whose TLSA record names another key.
        "mismatch.test.\t60\tIN\tMX\t10 mx2.remote.test.\n"
        f"mx2.remote.test.\t60\tIN\tA\t{stack.net}.120\n"
        f"_25._tcp.mx2.remote.test.\t60\tIN\tTLSA\t3 1 1 {'0' * 64}\n"
        # The same server as sts.test's MX, without TLSA records; sts.test's MTA-STS
        # policy (served by the remote) says "enforce", plain.test has none.
        f"mx3.remote.test.\t60\tIN\tA\t{stack.net}.120\n"
        "sts.test.\t60\tIN\tMX\t10 mx3.remote.test.\n"
        '_mta-sts.sts.test.\t60\tIN\tTXT\t"v=STSv1; id=20261130"\n'
        f"mta-sts.sts.test.\t60\tIN\tA\t{stack.net}.120\n"
        "plain.test.\t60\tIN\tMX\t10 mx3.remote.test.\n"
    )
    return stack


def send_from_ann(stack: Stack, recipient: str) -> str:
    """Submit a message from SENDER to ``recipient``; returns its subject, a fresh marker."""
    subject = uuid.uuid4().hex
    stack.submit(SENDER, PW, [recipient], message(recipient, sender=SENDER, subject=subject))
    return subject


def test_mail_to_another_domain_goes_out_over_tls_and_dkim_signed(outbound: Stack) -> None:
    subject = send_from_ann(outbound, "bob@remote.test")
    raw = received_remotely(outbound, subject)
    parsed = email.message_from_bytes(raw)
    # The remote's own Received header: from our Postfix, over TLS.
    assert "(using TLS" in str(parsed["Received"]), parsed["Received"]
    records = json.loads(outbound.vmm_ok("dnsrecords", "example.test", "--json"))
    keys = {r["name"].rstrip("."): r["value"] for r in records if "._domainkey." in r["name"]}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return str(keys[name.decode().rstrip(".")]).encode()

    assert dkim.verify(raw.replace(b"\n", b"\r\n"), dnsfunc=dns)
    log = wait_for_log(outbound, "to=<bob@remote.test>, relay=mx.remote.test")
    assert "status=sent" in log.split("to=<bob@remote.test>, relay=mx.remote.test")[-1]
    # DANE: the key the signed zone names is the one the server showed.
    assert "Verified TLS connection established to mx.remote.test" in log


def assert_unverified_and_kept(stack: Stack, recipient: str) -> None:
    """Mail to ``recipient`` meets a server certificate that fails verification: it is
    deferred, and the remote side receives nothing."""
    subject = send_from_ann(stack, recipient)
    log = wait_for_log(stack, f"to=<{recipient}>")
    tail = log.split(f"to=<{recipient}>")[-1]
    assert "status=deferred" in tail and "Server certificate not verified" in tail, tail
    names, _, _ = stack.exec("remote", "sh", "-c", f"grep -l {subject} {REMOTE_MAILDIR}/* 2>/dev/null")
    assert names.strip() == ""


def test_a_tlsa_mismatch_defers_and_sends_nothing(outbound: Stack) -> None:
    assert_unverified_and_kept(outbound, "carl@mismatch.test")


def test_an_mta_sts_enforce_domain_gets_verified_tls_or_nothing(outbound: Stack) -> None:
    # Without a policy the same server takes the mail over opportunistic TLS.
    received_remotely(outbound, send_from_ann(outbound, "pat@plain.test"))
    # sts.test's policy: verified TLS to mx3.remote.test, whose self-signed certificate
    # no CA vouches for: deferred, nothing sent.
    table, _, _ = outbound.exec("postfix", "postconf", "-h", "smtp_tls_policy_maps")
    policy, _, _ = outbound.exec("postfix", "postmap", "-q", "sts.test", table.strip())
    assert policy.startswith("secure match=mx3.remote.test"), policy
    assert_unverified_and_kept(outbound, "sam@sts.test")


def test_a_permanent_refusal_bounces_to_the_sender_once(outbound: Stack) -> None:
    subject = send_from_ann(outbound, "refuse@remote.test")
    [bounce] = wait_until_delivered(outbound, SENDER, PW)
    report = email.message_from_bytes(bounce)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert b"550 5.1.1" in bounce and b"No such user here" in bounce and subject.encode() in bounce
    time.sleep(2)  # a second bounce would come at once, from the same delivery attempt
    assert len(wait_until_delivered(outbound, SENDER, PW)) == 1


def test_a_temporary_refusal_stays_queued_for_a_retry(outbound: Stack) -> None:
    send_from_ann(outbound, "later@remote.test")
    log = wait_for_log(outbound, "to=<later@remote.test>")
    assert "status=deferred" in log and "450 4.2.0" in log and "Try again later" in log
    queue, _, _ = outbound.exec("postfix", "postqueue", "-j")
    queued = [json.loads(line) for line in queue.splitlines()]
    assert any(r["address"] == "later@remote.test" for entry in queued for r in entry["recipients"])


def test_mail_keeps_flowing_while_dns_is_unreachable(outbound: Stack) -> None:
    """With the upstream DNS gone, every one of a scan's lookups fails, and rspamd gives
    up on each within its timeouts: a scan waits about a second, not 5-6 s (the bound
    leaves room for a loaded 2-core machine, where one took 2.6 s)."""
    outbound.add_account("dora@example.test", PW)
    outbound.compose_ok("stop", "dns")
    try:
        # The first finds the upstream gone, the second finds it known to be gone.
        sent = [message("dora@example.test", sender="someone@elsewhere.example") for _ in range(2)]
        for raw in sent:
            outbound.send("someone@elsewhere.example", ["dora@example.test"], raw)
        delivered = wait_until_delivered(outbound, "dora@example.test", PW, count=2, timeout=60)
        assert {email.message_from_bytes(raw)["Message-ID"] for raw in delivered} == {
            email.message_from_bytes(raw)["Message-ID"] for raw in sent
        }
        for raw in sent:
            verdict = rspamd_verdict(outbound, raw)
            assert float(verdict.split(", time: ")[1].split("ms")[0]) < 4000, verdict
    finally:
        outbound.compose_ok("start", "dns")
        outbound.resolver_control("flush_infra", "all")
