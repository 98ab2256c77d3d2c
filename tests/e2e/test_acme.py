"""Certificates from an ACME directory: Pebble, Let's Encrypt's test server
(tests/e2e/acme.yaml), issues for the host name and the web names each domain publishes,
validated over HTTP-01 against the web service; its certificates last 90 s, so renewals
come within the test. Postfix, Dovecot and the web service present each new pair
without dropping a session; a failed challenge keeps the old pair and says why."""

from __future__ import annotations

import imaplib
import json
import re
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack, wait_for_log, wait_until_delivered
from tests.mail import message, tls_context

pytestmark = pytest.mark.e2e

STACK_FILES = ["tests/e2e/acme.yaml"]
STACK_ENV = {
    "VMM_ACME": "https://acme.test:14000/dir",
    "VMM_ACME_CA_FILE": "/etc/vmm/test-ca.pem",
    "VMM_ACME_INTERVAL": "2",
}
HOSTNAME = "mail.example.test"
PW = "acme test password"
USER = "cert@example.test"


def certinfo(stack: Stack) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(stack.vmm_ok("certinfo", "--json"))
    return info


def wait_for(
    stack: Stack, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90
) -> dict[str, Any]:
    """`vmm certinfo --json` once ``check`` holds for it."""
    deadline = time.monotonic() + timeout
    while not check(info := certinfo(stack)):
        assert time.monotonic() < deadline, f"{what}: {info}"
        time.sleep(1)
    return info


def presented(stack: Stack, port: int) -> str:
    """The certificate (PEM) a client is shown on a published port now (587: after
    STARTTLS)."""
    if port == 587:
        with stack.smtp(587) as client:
            client.starttls(context=tls_context())
            assert isinstance(client.sock, ssl.SSLSocket)
            der = client.sock.getpeercert(binary_form=True)
    else:
        with (
            socket.create_connection(("127.0.0.1", stack.port(port)), timeout=10) as raw,
            tls_context().wrap_socket(raw, server_hostname=HOSTNAME) as wrapped,
        ):
            der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der)


def installed(stack: Stack) -> str:
    """The stack's certificate (its first PEM block) as the tls volume holds it."""
    stdout, _, code = stack.exec("web", "cat", "/etc/vmm/tls/cert.pem")
    assert code == 0
    found = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", stdout, re.S)
    assert found
    return found.group(0)


def every_port_presents(stack: Stack, pem: str, timeout: float = 30) -> None:
    """SMTP (465 and STARTTLS on 587), IMAPS and HTTPS all show ``pem`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    for port in (465, 587, 993, 8443):
        while presented(stack, port) != pem:
            assert time.monotonic() < deadline, f"port {port} still shows another certificate"
            time.sleep(1)


@pytest.fixture(scope="module")
def issued(stack: Stack) -> dict[str, Any]:
    """The first certificate from Pebble, once the names point to the web service: the
    host name, and example.test's autoconfig and mta-sts names (autodiscover is not
    published, so it is left off)."""
    web = f"{stack.net}.122"
    stack.publish(
        f"acme.test.\t60\tIN\tA\t{stack.net}.121\n"
        f"{HOSTNAME}.\t60\tIN\tA\t{web}\n"
        f"autoconfig.example.test.\t60\tIN\tCNAME\t{HOSTNAME}.\n"
        f"mta-sts.example.test.\t60\tIN\tCNAME\t{HOSTNAME}.\n"
    )
    stack.add_account(USER, PW)
    return wait_for(stack, lambda info: "Pebble" in info["issuer"], "no certificate from Pebble")


def test_the_first_certificate_names_the_host_and_the_published_web_names(
    stack: Stack, issued: dict[str, Any]
) -> None:
    assert issued["names"] == sorted([HOSTNAME, "autoconfig.example.test", "mta-sts.example.test"])
    assert not issued["self_signed"]
    assert issued["last_pass"]["ok"]
    assert "autodiscover.example.test" in issued["last_pass"]["skipped"]
    every_port_presents(stack, installed(stack))
    text = stack.vmm_ok("certinfo")
    assert "Pebble" in text and "autodiscover.example.test: does not resolve" in text


def test_renewal_reaches_every_daemon_and_keeps_open_sessions(stack: Stack, issued: dict[str, Any]) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", stack.port(993), ssl_context=tls_context(), timeout=30)
    imap.login(USER, PW)
    smtp = smtplib.SMTP_SSL("127.0.0.1", stack.port(465), context=tls_context(), timeout=30)
    smtp.login(USER, PW)
    before = certinfo(stack)["serial"]
    wait_for(stack, lambda info: info["serial"] != before, "not renewed", timeout=120)
    wait_for_log(stack, "ACME: obtained: it expires", service="web")
    every_port_presents(stack, installed(stack))
    # The sessions opened before the reloads still work.
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    subject = uuid.uuid4().hex
    smtp.sendmail(USER, [USER], message(USER, sender=USER, subject=subject))
    smtp.quit()
    assert any(subject.encode() in raw for raw in wait_until_delivered(stack, USER, PW))


def test_a_new_domain_gets_its_names_on_the_next_pass(stack: Stack, issued: dict[str, Any]) -> None:
    stack.add_domain("newer.test")
    stack.publish(f"mta-sts.newer.test.\t60\tIN\tCNAME\t{HOSTNAME}.\n")
    wait_for(stack, lambda info: "mta-sts.newer.test" in info["names"], "names of newer.test missing")
    every_port_presents(stack, installed(stack))


def test_a_failed_challenge_keeps_the_pair_and_says_why(stack: Stack, issued: dict[str, Any]) -> None:
    # The host name now points where nothing answers HTTP (Pebble's own address): every
    # challenge fails, and a new name makes the next pass try.
    stack.publish(
        f"{HOSTNAME}.\t60\tIN\tA\t{stack.net}.121\nautoconfig.newer.test.\t60\tIN\tCNAME\t{HOSTNAME}.\n"
    )
    before = installed(stack)
    info = wait_for(stack, lambda info: not info["last_pass"]["ok"], "no failed pass")
    assert "autoconfig.newer.test" in info["last_pass"]["names"]
    assert "connection refused" in info["last_pass"]["message"].lower(), info["last_pass"]
    assert installed(stack) == before
    assert "FAILED:" in stack.vmm_ok("certinfo")
    wait_for_log(stack, "ACME: ", service="web")
    assert "connection refused" in wait_for_log(stack, "ACME: ", service="web").lower()
