"""Mail backends behind Dovecot's proxy tier (tests/e2e/backends.yaml): every account is
pinned to one backend in PostgreSQL, and every delivery (Postfix's LMTP) and every login
(IMAP, POP3, ManageSieve) through the proxy reaches that backend and no other. A stopped
backend defers its own users' mail, with temporary failures only, and nobody else's."""

from __future__ import annotations

import imaplib
import json
import poplib
import threading
import time

import pytest

from tests.e2e.conftest import Stack, inbox_state, mail_log, wait_until_delivered
from tests.mail import message, tls_context

pytestmark = pytest.mark.e2e

STACK_FILES = ["tests/e2e/backends.yaml"]
PW = "backend test password"
SENDER = "sender@sender.example"


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, dict[str, object]]:
    """Two backends, then four accounts: each address with its `userinfo --json`."""
    stack.vmm_ok("backendadd", "b1", "dovecot-b1")
    stack.vmm_ok("backendadd", "b2", "dovecot-b2")
    infos = {}
    for name in ("ann", "bob", "cat", "dan"):
        address = f"{name}@example.test"
        stack.add_account(address, PW)
        infos[address] = json.loads(stack.vmm_ok("userinfo", address, "--json"))
    return infos


@pytest.fixture(scope="module")
def pinned(accounts: dict[str, dict[str, object]]) -> dict[str, str]:
    """Each address with the backend it is pinned to."""
    return {address: str(info["backend"]) for address, info in accounts.items()}


def _inbox_on(stack: Stack, backend: str, address: str) -> int:
    """The messages in the account's INBOX, as the backend's own Dovecot counts them."""
    stdout, stderr, code = stack.exec(
        f"dovecot-{backend}", "doveadm", "-f", "flow", "mailbox", "status", "-u", address, "messages", "INBOX"
    )
    assert code == 0, stderr
    return int(stdout.strip().removeprefix("INBOX messages="))


def _deferred(stack: Stack, address: str, timeout: float = 30) -> str:
    """Postfix's log line that defers mail for ``address``, once there is one; no line
    may bounce it."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in mail_log(stack).splitlines() if f"to=<{address}>" in line]
        assert not [line for line in lines if "status=bounced" in line], lines
        deferred = [line for line in lines if "status=deferred" in line]
        if deferred:
            return deferred[0]
        assert time.monotonic() < deadline, f"no deferral for {address}: {lines}"
        time.sleep(0.3)


def test_new_accounts_go_to_the_backend_with_fewest(pinned: dict[str, str]) -> None:
    assert sorted(pinned.values()) == ["b1", "b1", "b2", "b2"]


def test_mail_reaches_the_one_backend_of_its_account(
    stack: Stack, pinned: dict[str, str], accounts: dict[str, dict[str, object]]
) -> None:
    for address in pinned:
        stack.send(SENDER, [address], message(address, dated=True))
    for address, backend in pinned.items():
        # Through the proxy's IMAP, as the user reads it.
        assert len(wait_until_delivered(stack, address, PW)) == 1
        assert _inbox_on(stack, backend, address) == 1
        # The other backend holds nothing of it: not even a home.
        other = {"b1": "b2", "b2": "b1"}[backend]
        _, _, code = stack.exec(f"dovecot-{other}", "test", "-e", str(accounts[address]["home"]))
        assert code != 0, f"{address} has a home on {other} too"


def test_pop3_and_managesieve_logins_are_proxied(stack: Stack, pinned: dict[str, str]) -> None:
    address = next(iter(pinned))
    client = poplib.POP3("127.0.0.1", stack.port(110), timeout=30)
    try:
        client.stls(context=tls_context())
        client.user(address)
        client.pass_(PW)
        assert client.stat()[0] >= 1
    finally:
        client.quit()
    assert stack.managesieve_login(address, PW)
    assert not stack.managesieve_login(address, "not the password")


def test_a_stopped_backend_defers_only_its_own_users(stack: Stack, pinned: dict[str, str]) -> None:
    up = next(address for address, backend in pinned.items() if backend == "b1")
    down = next(address for address, backend in pinned.items() if backend == "b2")
    before = {address: _inbox_on(stack, pinned[address], address) for address in (up, down)}
    stack.compose_ok("stop", "dovecot-b2")
    try:
        stack.send(SENDER, [up, down], message([up, down], dated=True))
        assert len(wait_until_delivered(stack, up, PW, count=before[up] + 1)) == before[up] + 1
        assert "dsn=4." in _deferred(stack, down)
        with pytest.raises(imaplib.IMAP4.error):
            stack.imap_login(down, PW).logout()
        stack.imap_login(up, PW).logout()
    finally:
        stack.compose_ok("up", "-d", "--wait", "dovecot-b2")
    _, stderr, code = stack.exec("postfix", "postqueue", "-f")
    assert code == 0, stderr
    assert len(wait_until_delivered(stack, down, PW, count=before[down] + 1)) == before[down] + 1


def test_usermove_under_a_trickle_of_mail_loses_nothing_and_keeps_uids(
    stack: Stack, pinned: dict[str, str]
) -> None:
    address = next(address for address, backend in pinned.items() if backend == "b1")
    before = _inbox_on(stack, "b1", address) + 3
    for n in range(3):
        stack.send(SENDER, [address], message(address, subject=f"before {n}", dated=True))
    wait_until_delivered(stack, address, PW, count=before)
    client = stack.imap_login(address, PW)
    client.select("INBOX")
    client.store("1", "+FLAGS", "\\Flagged")
    client.logout()
    script = 'require "fileinto";\nif header :contains "subject" "news" { fileinto "INBOX"; }\n'
    _, stderr, code = stack.exec_input(
        script, "dovecot-b1", "doveadm", "sieve", "put", "-u", address, "-a", "moved"
    )
    assert code == 0, stderr
    validity, kept = inbox_state(stack, address, PW)

    sent: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            subject = f"during {len(sent)}"
            try:
                stack.send(SENDER, [address], message(address, subject=subject, dated=True))
            except (OSError, AssertionError) as exc:
                failures.append(exc)
                return
            sent.append(subject)
            time.sleep(0.2)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(1)
        moved = stack.vmm("usermove", address, "b2")
        time.sleep(1)
    finally:
        stop.set()
        sender.join()
    assert moved.returncode == 0, moved.stderr
    assert not failures and len(sent) > 5, failures
    assert json.loads(stack.vmm_ok("userinfo", address, "--json"))["backend"] == "b2"
    # What the hold deferred goes out now rather than at Postfix's next retry.
    _, stderr, code = stack.exec("postfix", "postqueue", "-f")
    assert code == 0, stderr
    total = before + len(sent)
    assert len(wait_until_delivered(stack, address, PW, count=total, timeout=60)) == total
    assert _inbox_on(stack, "b2", address) == total
    # Its Sieve script moved with it, still the active one.
    stdout, stderr, code = stack.exec("dovecot-b2", "doveadm", "sieve", "list", "-u", address)
    assert code == 0 and "moved ACTIVE" in stdout, (stdout, stderr)
    after_validity, after = inbox_state(stack, address, PW)
    assert after_validity == validity
    # The mail that was there kept its UIDs and flags; every message of the trickle
    # arrived once.
    assert {subject: after[subject] for subject in kept} == kept
    assert sorted(subject for subject in after if subject.startswith("during ")) == sorted(sent)
    assert not [
        line for line in mail_log(stack).splitlines() if f"to=<{address}>" in line and "bounced" in line
    ]
