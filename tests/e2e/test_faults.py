"""Nothing lost: mail keeps flowing or waits through outages of each service, a burst
of sessions, restarts, a SIGKILL with a full queue, and `docker compose down` + `up`.
Every message is counted (tests/e2e/faults.py); the report is printed at the end of
the run."""

from __future__ import annotations

import base64
import collections
import imaplib
import smtplib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Stack, mail_log
from tests.e2e.faults import Tally
from tests.mail import tls_context

pytestmark = pytest.mark.faults
RECIPIENTS = [f"user{n}@faults.example" for n in range(4)]
PW = "fault-tolerant"
BATCH = 50
# Accounts nothing logs in as or delivers to before PostgreSQL restarts: Dovecot has no
# cached entry for them, its lookups go to the database.
UNSEEN = ["unseen-login@faults.example", "unseen-rcpt@faults.example"]


@pytest.fixture(scope="module")
def mailboxes(stack: Stack) -> Stack:
    stack.add_domain("faults.example")
    for address in [*RECIPIENTS, *UNSEEN]:
        stack.add_account(address, PW)
    stack.vmm_ok("aliasadd", "all@faults.example", *RECIPIENTS)
    return stack


def test_postgres_outage_defers_then_delivers(mailboxes: Stack) -> None:
    tally = Tally("postgres stopped", RECIPIENTS)
    tally.send(mailboxes, BATCH // 2)
    mailboxes.compose_ok("stop", "postgres")
    try:
        tally.send(mailboxes, BATCH // 2)
        # Lookups fail: Postfix answers 4xx, the senders keep their mail.
        assert len(tally.deferred) == BATCH // 2
    finally:
        mailboxes.compose_ok("start", "postgres")
    tally.retry_deferred(mailboxes)
    tally.settle(mailboxes)
    tally.assert_clean()


def _logins(stack: Stack, user: str) -> tuple[bool, bool]:
    """(IMAP login, SMTP AUTH on 587) of ``user`` with the right password: let in?"""
    try:
        stack.imap_login(user, PW).logout()
        imap = True
    except imaplib.IMAP4.error:
        imap = False
    with stack.smtp(587) as client:
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        try:
            smtp = client.login(user, PW)[0] == 235
        except smtplib.SMTPAuthenticationError:
            smtp = False
    return imap, smtp


def test_a_postgres_restart_or_outage_leaves_known_users_logging_in_and_receiving(
    mailboxes: Stack,
) -> None:
    """A restart closes every database connection, and during an outage none answers:
    the first login and the first delivery after a restart succeed, for users Dovecot
    has met (logged in, received mail) and for users it has not; during an outage the
    users it has met notice nothing."""
    tally = Tally("postgres restarted", RECIPIENTS)
    tally.send(mailboxes, len(RECIPIENTS))
    tally.settle(mailboxes)
    assert all(_logins(mailboxes, user) == (True, True) for user in RECIPIENTS)
    deferred_before = mail_log(mailboxes).count("status=deferred")
    mailboxes.compose_ok("restart", "postgres")
    # The very first login and the very first delivery after the restart.
    assert _logins(mailboxes, UNSEEN[0]) == (True, True)
    unseen = Tally("postgres restarted, first delivery", UNSEEN[1:])
    unseen.send(mailboxes, 1)
    assert unseen.deferred == []
    assert _logins(mailboxes, RECIPIENTS[0]) == (True, True)
    tally.send(mailboxes, BATCH // 2)
    assert tally.deferred == []
    unseen.settle(mailboxes)
    tally.settle(mailboxes)
    assert mail_log(mailboxes).count("status=deferred") == deferred_before  # none waited
    mailboxes.compose_ok("stop", "postgres")
    try:
        assert _logins(mailboxes, RECIPIENTS[1]) == (True, True)
        # A login Dovecot has not seen answers at once, and only "for now".
        unknown = imaplib.IMAP4("127.0.0.1", mailboxes.port(143), timeout=30)
        unknown.starttls(ssl_context=tls_context())
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            unknown.login("nobody-yet@faults.example", PW)
        assert time.monotonic() - started < 10
        unknown.shutdown()
        # SMTP AUTH too: temporary (454), not "wrong password" (535).
        with mailboxes.smtp(587) as client:
            client.starttls(context=tls_context())
            client.ehlo("client.example")
            credentials = base64.b64encode(f"\0nobody-yet@faults.example\0{PW}".encode()).decode()
            code, text = client.docmd("AUTH", f"PLAIN {credentials}")
        assert code == 454, text
    finally:
        mailboxes.compose_ok("start", "postgres")
    tally.assert_clean()
    unseen.assert_clean()


def _sql_as_vmm(stack: Stack, query: str) -> str:
    """As vmm's own role: a connection that Postfix's count below does not include."""
    out, err, code = stack.psql_as("vmm", query)
    assert code == 0, err
    return out.strip()


def test_a_burst_of_sessions_leaves_postgres_connections_for_everyone_else(mailboxes: Stack) -> None:
    """45 parallel sessions (Postfix lets one client open 50) looking up recipients as fast
    as they can: every RCPT is answered 250, and Postfix holds at most a third of
    PostgreSQL's connections, so Dovecot's logins and vmm's commands still get theirs."""
    limit = int(_sql_as_vmm(mailboxes, "SHOW max_connections"))
    port, until = mailboxes.port(25), time.monotonic() + 6
    answers: list[int] = []

    def client() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as session:
            session.ehlo("burst.example")
            while time.monotonic() < until:
                session.mail("burst@sender.example")
                answers.extend(session.rcpt(address)[0] for address in RECIPIENTS)
                session.rset()

    with ThreadPoolExecutor(45) as pool:
        sessions = [pool.submit(client) for _ in range(45)]
        peak = 0
        while not all(session.done() for session in sessions):
            peak = max(
                peak,
                int(
                    _sql_as_vmm(mailboxes, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postfix'")
                ),
            )
        for session in sessions:
            session.result()
    assert answers and set(answers) == {250}, collections.Counter(answers)
    assert peak <= limit // 3, f"Postfix held {peak} of {limit} connections"


def test_dovecot_outage_queues_then_delivers(mailboxes: Stack) -> None:
    tally = Tally("dovecot stopped", RECIPIENTS)
    mailboxes.compose_ok("stop", "dovecot")
    try:
        tally.send(mailboxes, BATCH)
        assert tally.accepted == BATCH, "Postfix must queue while Dovecot is away"
    finally:
        mailboxes.compose_ok("start", "dovecot")
    tally.settle(mailboxes)
    tally.assert_clean()


@pytest.mark.parametrize("how", ["restart", "SIGKILL"])
def test_postfix_restart_with_a_full_queue_loses_nothing(mailboxes: Stack, how: str) -> None:
    tally = Tally(f"postfix {how} with full queue", RECIPIENTS)
    mailboxes.compose_ok("stop", "dovecot")
    try:
        tally.send(mailboxes, BATCH)
        queued, _, _ = mailboxes.exec("postfix", "sh", "-c", "postqueue -j | wc -l")
        assert int(queued) >= BATCH
        if how == "restart":
            mailboxes.compose_ok("restart", "postfix")
        else:
            mailboxes.compose_ok("kill", "-s", "KILL", "postfix")
            mailboxes.compose_ok("up", "-d", "--wait", "postfix")
    finally:
        mailboxes.compose_ok("start", "dovecot")
    tally.settle(mailboxes)
    tally.assert_clean()


def _certificate(stack: Stack) -> bytes:
    return ssl.get_server_certificate(("127.0.0.1", stack.port(993))).encode()


def test_down_and_up_keeps_everything(mailboxes: Stack) -> None:
    tally = Tally("compose down + up", RECIPIENTS)
    tally.send(mailboxes, BATCH // 2)
    tally.settle(mailboxes)
    certificate = _certificate(mailboxes)
    mailboxes.compose_ok("stop", "dovecot")
    queued = Tally("compose down + up (queued)", RECIPIENTS)
    queued.send(mailboxes, BATCH // 2)
    mailboxes.compose.stop(down=False)
    mailboxes.compose_ok("down")
    mailboxes.compose.start()
    assert "all@faults.example" in mailboxes.vmm_ok("listaliases")
    assert _certificate(mailboxes) == certificate, "the certificate was regenerated"
    queued.settle(mailboxes)
    queued.assert_clean()
    tally.assert_clean()
    # Mail delivered before the restart is still in the Maildirs.
    tally.settle(mailboxes)
    assert tally.delivered == BATCH // 2
