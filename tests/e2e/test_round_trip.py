"""The walking skeleton: accounts made with `docker compose run --rm vmm`, mail in over
SMTP, out over IMAP and POP3; unknown recipients and relaying refused; configs clean."""

from __future__ import annotations

import json
import poplib
import smtplib
import uuid

import pytest

from tests.e2e.conftest import Stack, wait_until_delivered
from tests.mail import tls_context


@pytest.fixture(scope="module")
def alice(stack: Stack) -> str:
    stack.vmm_ok("domainadd", "example.org", "--password-stdin", stdin="postmaster-pw\n")
    stack.add_account("alice@example.org", "Alice's password")
    return "alice@example.org"


def _message(to: str) -> bytes:
    marker = uuid.uuid4().hex
    return (
        f"From: Bob <bob@sender.example>\r\nTo: <{to}>\r\nSubject: hello {marker}\r\n"
        f"Message-ID: <{marker}@sender.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Grüße, Alice!\r\n.leading dot stays\r\n{marker}\r\n"
    ).encode()


def test_userinfo_shows_the_stored_account(stack: Stack, alice: str) -> None:
    info = json.loads(stack.vmm_ok("userinfo", alice, "--json"))
    assert info["address"] == alice
    assert info["uid"] >= 70000 and info["gid"] >= 70000
    assert info["home"].startswith("/srv/mail/")


def test_mail_sent_to_port_25_is_read_over_imap_byte_for_byte(stack: Stack, alice: str) -> None:
    message = _message(alice)
    with stack.smtp() as client:
        assert client.sendmail("bob@sender.example", [alice], message) == {}
    [stored] = wait_until_delivered(stack, alice, "Alice's password")
    # The MTA prepends its trace headers and the filter appends its verdict to the
    # header; the sender's header lines and the body arrive unchanged.
    sent_header, _, sent_body = message.partition(b"\r\n\r\n")
    stored_header, _, stored_body = stored.partition(b"\r\n\r\n")
    assert stored_body == sent_body
    assert sent_header + b"\r\n" in stored_header
    assert stored_header.startswith(b"Return-Path: <bob@sender.example>\r\n")
    assert b"\r\nX-Spam-Status: " in stored_header


def test_implicit_tls_imap_and_pop3_read_the_same_mailbox(stack: Stack, alice: str) -> None:
    import imaplib

    client = imaplib.IMAP4_SSL("127.0.0.1", stack.port(993), ssl_context=tls_context())
    assert client.login(alice, "Alice's password")[0] == "OK"
    assert client.select("INBOX", readonly=True)[0] == "OK"
    client.logout()
    pop = poplib.POP3("127.0.0.1", stack.port(110), timeout=30)
    pop.stls(context=tls_context())
    pop.user(alice)
    assert pop.pass_("Alice's password").startswith(b"+OK")
    count, _ = pop.stat()
    assert count >= 1
    pop.quit()


def test_wrong_password_is_refused(stack: Stack, alice: str) -> None:
    import imaplib

    with pytest.raises(imaplib.IMAP4.error):
        stack.imap_login(alice, "not the password")


def test_unknown_local_recipient_is_refused_at_rcpt_with_550(stack: Stack, alice: str) -> None:
    with stack.smtp() as client:
        client.mail("bob@sender.example")
        code, reply = client.rcpt("nobody@example.org")
    assert code == 550, reply
    assert b"5.1.1" in reply


def test_relay_without_auth_is_refused(stack: Stack, alice: str) -> None:
    with stack.smtp() as client:
        client.mail("bob@sender.example")
        code, reply = client.rcpt("carol@elsewhere.example")
        # A local recipient in the same transaction is still accepted.
        accepted, _ = client.rcpt(alice)
    assert code == 554 and b"Relay access denied" in reply
    assert accepted == 250


def test_no_auth_is_offered_on_port_25(stack: Stack) -> None:
    with stack.smtp() as client:
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        assert not client.has_extn("auth")


def test_submission_authenticates_against_dovecot(stack: Stack, alice: str) -> None:
    with stack.smtp(587) as client:
        assert not client.has_extn("auth"), "AUTH must wait for STARTTLS"
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(alice, "wrong")
        code, _ = client.login(alice, "Alice's password")
        assert code == 235


def test_rendered_configs_pass_postconf_and_doveconf_without_warnings(stack: Stack) -> None:
    stdout, stderr, code = stack.exec("postfix", "postconf", "-n")
    assert code == 0 and "warning" not in (stdout + stderr).lower(), stderr
    assert "virtual_transport = lmtp:inet:dovecot:24" in stdout
    stdout, stderr, code = stack.exec("postfix", "postfix", "check")
    assert code == 0 and stderr == "", stderr
    stdout, stderr, code = stack.exec("dovecot", "doveconf", "-n")
    assert code == 0 and "warning" not in (stdout + stderr).lower(), stderr
    assert "protocols = imap pop3 lmtp sieve" in stdout
