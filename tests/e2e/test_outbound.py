"""Mail leaving the stack, to another server on this machine (tests/e2e/remote.yaml): found
by its MX record, sent over TLS and DKIM-signed; a permanent refusal comes back to the
sender as one bounce, a temporary one stays queued for a retry."""

from __future__ import annotations

import email
import json
import time
import uuid

import dkim
import pytest

from tests.e2e.conftest import Stack, wait_for_log, wait_until_delivered
from tests.mail import message

pytestmark = pytest.mark.e2e

STACK_FILES = ["tests/e2e/remote.yaml"]
PW = "outbound sender password"
SENDER = "ann@example.test"  # the default domain, with its DKIM key since the first start
REMOTE_MAILDIR = "/var/mail/remote/Maildir/new"


@pytest.fixture(scope="module")
def outbound(stack: Stack) -> Stack:
    stack.add_account(SENDER, PW)
    stack.publish(
        f"remote.test.\t60\tIN\tMX\t10 mx.remote.test.\nmx.remote.test.\t60\tIN\tA\t{stack.net}.120\n"
    )
    return stack


def send_from_ann(stack: Stack, recipient: str) -> str:
    """Submit a message from SENDER to ``recipient``; returns its subject, a fresh marker."""
    subject = uuid.uuid4().hex
    stack.submit(SENDER, PW, [recipient], message(recipient, sender=SENDER, subject=subject))
    return subject


def received_remotely(stack: Stack, marker: str, timeout: float = 60) -> bytes:
    """The message with ``marker`` in the remote server's Maildir, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names, _, _ = stack.exec("remote", "sh", "-c", f"grep -l {marker} {REMOTE_MAILDIR}/* 2>/dev/null")
        if names.strip():
            raw, _, _ = stack.exec("remote", "cat", names.split()[0])
            return raw.encode()
        time.sleep(0.5)
    raise AssertionError(f"nothing with {marker} reached the remote server")


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
