"""A single host grows into mail backends (tests/e2e/backends.yaml added to the same
project): its Dovecot becomes the proxy tier and its mail volume the first backend's,
which moves the homes into a backend's layout at start. Registered first, that backend
takes every account with its mail: the same messages, UIDs, UIDVALIDITY and flags, read
through the proxy, and new mail arrives there."""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.conftest import Stack, inbox_state, wait_until_delivered
from tests.mail import message

pytestmark = pytest.mark.e2e

PW = "grow test password"
SENDER = "sender@sender.example"


def test_a_single_host_grows_into_backends_with_its_mail(stack: Stack) -> None:
    address = "grow@example.test"
    stack.add_account(address, PW)
    for n in range(3):
        stack.send(SENDER, [address], message(address, subject=f"single host {n}", dated=True))
    wait_until_delivered(stack, address, PW, count=3)
    client = stack.imap_login(address, PW)
    client.select("INBOX")
    client.store("2", "+FLAGS", "\\Flagged")
    client.logout()
    validity, before = inbox_state(stack, address, PW)
    single_home = json.loads(stack.vmm_ok("userinfo", address, "--json"))["home"]

    # The overlay joins the project: every later compose call, the module's teardown
    # included, sees it (the fixture restores the environment afterwards).
    os.environ["COMPOSE_FILE"] += ":tests/e2e/backends.yaml"
    stack.compose_ok("up", "-d", "--wait")
    assert "existing accounts are now on b1" in stack.vmm_ok("backendadd", "b1", "dovecot-b1")
    stack.vmm_ok("backendadd", "b2", "dovecot-b2")

    info = json.loads(stack.vmm_ok("userinfo", address, "--json"))
    assert info["backend"] == "b1" and info["home"] != single_home
    _, _, code = stack.exec("dovecot-b1", "test", "-d", str(info["home"]))
    assert code == 0, "the home did not move into the backend's layout"
    _, _, code = stack.exec("dovecot-b1", "test", "-e", str(single_home))
    assert code != 0, "the single host's home is still there"
    # Through the proxy, which is compose.yaml's Dovecot now: nothing lost or renumbered.
    assert inbox_state(stack, address, PW) == (validity, before)
    stack.send(SENDER, [address], message(address, subject="on the backend", dated=True))
    assert len(wait_until_delivered(stack, address, PW, count=4)) == 4
    stdout, stderr, code = stack.exec(
        "dovecot-b1", "doveadm", "-f", "flow", "mailbox", "status", "-u", address, "messages", "INBOX"
    )
    assert code == 0 and stdout.split()[-1] == "messages=4", (stdout, stderr)
