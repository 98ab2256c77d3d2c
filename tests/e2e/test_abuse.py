"""Abuse from the internet, driven from containers with addresses of their own: a client
on a published loopback port arrives from the Docker gateway, which the test stacks
exempt from the limits. postscreen stops DNS-blocklisted and impatient clients before
any smtpd process; one address's connection flood leaves other clients served; password
guessing gets the guessing address refused on every login protocol; a login sends only
so many messages an hour and recipients a message."""

from __future__ import annotations

import json
import re
import smtplib
import threading
import time

import pytest

from tests.e2e.conftest import Stack, wait_for_log
from tests.mail import message, tls_context
from vmm.runtime import SmtpLimits

PW = "Abuse-test-pw-1"

# One RCPT to a hosted account on port 25: prints the reply code and text.
RCPT = """
import smtplib
client = smtplib.SMTP("postfix", 25, timeout=60)
client.ehlo("client.example")
client.mail("someone@sender.example")
code, text = client.rcpt("alice@example.test")
print(code, text.decode())
"""


MESSAGES_PER_HOUR = 3
RECIPIENTS_PER_MESSAGE = 2


@pytest.fixture(scope="module")
def users(stack: Stack) -> Stack:
    for user in ("alice", "bob", "carol"):
        stack.add_account(f"{user}@example.test", PW)
    # Before anything is submitted: the policy service reads the limits at its first
    # request (then at most every few seconds).
    stack.vmm_ok("configset", "submission.messages_per_hour", str(MESSAGES_PER_HOUR))
    stack.vmm_ok("configset", "submission.recipients_per_message", str(RECIPIENTS_PER_MESSAGE))
    return stack


def test_a_client_in_a_dns_blocklist_is_refused_and_an_unlisted_one_is_served(users: Stack) -> None:
    listed = users.client_address(70)
    reversed_address = ".".join(reversed(listed.split(".")))
    users.publish(f"{reversed_address}.bl.test. IN A 127.0.0.2\n")
    code, text = users.client(70, RCPT).split(" ", 1)
    assert code == "550" and "blocked using bl.test" in text, text
    assert users.client(71, RCPT).startswith("250 ")


def test_a_client_that_talks_before_its_turn_is_refused(users: Stack) -> None:
    # Spam robots send their commands without waiting for the greeting (RFC 5321 4.3.1).
    script = """
import socket
sock = socket.create_connection(("postfix", 25), timeout=60)
sock.sendall(b"EHLO robot.example\\r\\n")
reader = sock.makefile("rb")
def reply():
    while True:
        line = reader.readline().decode()
        if line[3:4] == " ":
            return line.strip()
reply()  # the greeting; the early EHLO goes unanswered
for command in (b"EHLO robot.example", b"MAIL FROM:<robot@sender.example>", b"RCPT TO:<alice@example.test>"):
    sock.sendall(command + b"\\r\\n")
    answer = reply()
print(answer)
"""
    assert users.client(72, script).startswith("550 ")
    log = wait_for_log(users, "PREGREET")
    assert re.search(rf"PREGREET \d+ after \S+ from \[{re.escape(users.client_address(72))}\]", log)
    assert users.client(73, RCPT).startswith("250 ")


def test_a_connection_flood_from_one_address_leaves_other_clients_served(users: Stack) -> None:
    # Sixty connections at once from one address; each greeting's last line tells whether
    # an smtpd took it (220) or it was turned away (421), by postscreen or by smtpd.
    flood = """
import socket, time
from concurrent.futures import ThreadPoolExecutor
def greeting(_):
    sock = socket.create_connection(("postfix", 25), timeout=60)
    reader = sock.makefile("rb")
    while (line := reader.readline().decode())[3:4] != " ":
        pass
    time.sleep(15)  # held while another client comes
    return line[:3]
with ThreadPoolExecutor(60) as pool:
    print(" ".join(pool.map(greeting, range(60))))
"""
    results: dict[str, str] = {}
    thread = threading.Thread(target=lambda: results.update(flood=users.client(80, flood)))
    thread.start()
    time.sleep(5)
    served = users.client(81, RCPT)
    thread.join(timeout=120)
    greetings = results["flood"].split()
    allowed = SmtpLimits().connections
    assert len(greetings) == 60
    assert greetings.count("220") == allowed and greetings.count("421") == 60 - allowed, greetings
    assert served.startswith("250 "), served


# Logs in with the password given on every protocol at once, over TLS, and prints which
# were let in: {"imap": true, ...}. Dovecot answers them all (SMTP AUTH through Postfix).
LOGINS = """
import base64, imaplib, json, poplib, smtplib, socket, ssl, sys
from concurrent.futures import ThreadPoolExecutor
user, password = sys.argv[1], sys.argv[2]
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

def imap():
    client = imaplib.IMAP4("dovecot", 143, timeout=90)
    client.starttls(ssl_context=context)
    try:
        return client.login(user, password)[0] == "OK"
    except imaplib.IMAP4.error:
        return False

def pop3():
    client = poplib.POP3("dovecot", 110, timeout=90)
    client.stls(context=context)
    try:
        client.user(user)
        return client.pass_(password).startswith(b"+OK")
    except poplib.error_proto:
        return False

def sieve():
    sock = socket.create_connection(("dovecot", 4190), timeout=90)
    def answer(reader):
        while not (line := reader.readline()).startswith((b"OK", b"NO", b"BYE")):
            pass
        return line
    answer(sock.makefile("rb"))
    sock.sendall(b"STARTTLS\\r\\n")
    answer(sock.makefile("rb"))
    tls = context.wrap_socket(sock)
    reader = tls.makefile("rb")
    answer(reader)
    token = base64.b64encode(f"\\0{user}\\0{password}".encode()).decode()
    tls.sendall(f'AUTHENTICATE "PLAIN" "{token}"\\r\\n'.encode())
    return answer(reader).startswith(b"OK")

def smtp():
    client = smtplib.SMTP("postfix", 587, timeout=90)
    client.starttls(context=context)
    try:
        return client.login(user, password)[0] == 235
    except smtplib.SMTPException:
        return False

checks = {"imap": imap, "pop3": pop3, "sieve": sieve, "smtp": smtp}
with ThreadPoolExecutor(len(checks)) as pool:
    results = {name: pool.submit(check) for name, check in checks.items()}
print(json.dumps({name: result.result() for name, result in results.items()}))
"""

# Twelve wrong passwords at once over IMAP, for several names, as a guessing robot does.
GUESSING = """
import imaplib, ssl
from concurrent.futures import ThreadPoolExecutor
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
def guess(n):
    client = imaplib.IMAP4("dovecot", 143, timeout=90)
    client.starttls(ssl_context=context)
    try:
        client.login(f"user{n % 4}@example.test", f"guess-{n}")
        return "in"
    except imaplib.IMAP4.error:
        return "refused"
with ThreadPoolExecutor(12) as pool:
    print(" ".join(pool.map(guess, range(12))))
"""


def _logins(stack: Stack, host: int, user: str, password: str) -> dict[str, bool]:
    return dict(json.loads(stack.client(host, f"import sys; sys.argv[1:] = {[user, password]!r}\n" + LOGINS)))


def test_password_guessing_gets_the_address_refused_on_every_protocol(users: Stack) -> None:
    everywhere = {"imap": True, "pop3": True, "sieve": True, "smtp": True}
    assert _logins(users, 90, "alice@example.test", PW) == everywhere  # the probe works
    assert users.client(90, GUESSING).split() == ["refused"] * 12
    guesser = users.client_address(90)
    wait_for_log(users, f"policy: {guesser} refused", service="policy")
    # The right password no longer helps from that address, on any protocol ...
    assert _logins(users, 90, "alice@example.test", PW) == dict.fromkeys(everywhere, False)
    # ... while alice, from anywhere else, still logs in everywhere.
    assert _logins(users, 91, "alice@example.test", PW) == everywhere


def test_a_login_past_its_hourly_messages_is_deferred_not_bounced(users: Stack) -> None:
    for n in range(MESSAGES_PER_HOUR):
        users.submit(
            "bob@example.test",
            PW,
            ["alice@example.test"],
            message("alice@example.test", f"message {n}", sender="bob@example.test"),
        )
    with pytest.raises(smtplib.SMTPRecipientsRefused) as deferred:
        users.submit(
            "bob@example.test",
            PW,
            ["alice@example.test"],
            message("alice@example.test", "one too many", sender="bob@example.test"),
        )
    [(code, reply)] = deferred.value.recipients.values()
    assert code == 450 and b"has sent 3 messages in the last hour" in reply
    # Another login is not held back by bob's count.
    users.submit(
        "carol@example.test",
        PW,
        ["alice@example.test"],
        message("alice@example.test", "from carol", sender="carol@example.test"),
    )


def test_recipients_past_the_limit_of_a_message_are_deferred(users: Stack) -> None:
    with users.smtp(587) as client:
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        client.login("carol@example.test", PW)
        client.mail("carol@example.test")
        codes = [client.rcpt(f"{user}@example.test")[0] for user in ("alice", "bob", "carol")]
    assert codes == [250] * RECIPIENTS_PER_MESSAGE + [452]
