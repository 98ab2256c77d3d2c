"""Abuse from the internet, driven from containers with addresses of their own: a client
on a published loopback port arrives from the Docker gateway, which the test stacks
exempt from the limits. postscreen stops DNS-blocklisted and impatient clients before
any smtpd process, and one address's connection flood leaves other clients served."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.e2e.conftest import Stack, wait_for_log
from vmm.config import SmtpLimits

pytestmark = pytest.mark.e2e

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


@pytest.fixture(scope="module")
def users(stack: Stack) -> Stack:
    stack.add_account("alice@example.test", PW)
    return stack


def test_a_client_in_a_dns_blocklist_is_refused_and_an_unlisted_one_is_served(users: Stack) -> None:
    listed = users.client_address(130)
    reversed_address = ".".join(reversed(listed.split(".")))
    users.publish(f"{reversed_address}.bl.test. IN A 127.0.0.2\n")
    code, text = users.client(130, RCPT).split(" ", 1)
    assert code == "550" and "blocked using bl.test" in text, text
    assert users.client(131, RCPT).startswith("250 ")


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
reply(); reply()  # the greeting, then the answer to EHLO
for command in (b"MAIL FROM:<robot@sender.example>", b"RCPT TO:<alice@example.test>"):
    sock.sendall(command + b"\\r\\n")
    answer = reply()
print(answer)
"""
    assert users.client(132, script).startswith("550 ")
    log = wait_for_log(users, "PREGREET")
    assert re.search(rf"PREGREET \d+ after \S+ from \[{re.escape(users.client_address(132))}\]", log)
    assert users.client(133, RCPT).startswith("250 ")


def test_a_connection_flood_from_one_address_leaves_other_clients_served(users: Stack) -> None:
    flood = """
import socket, time
sockets = [socket.create_connection(("postfix", 25), timeout=30) for _ in range(40)]
greetings = [sock.recv(512)[:3].decode() for sock in sockets]
time.sleep(15)  # hold them while another client comes
print(" ".join(greetings))
"""
    results: dict[str, str] = {}
    thread = threading.Thread(target=lambda: results.update(flood=users.client(140, flood)))
    thread.start()
    time.sleep(5)
    served = users.client(141, RCPT)
    thread.join(timeout=120)
    greetings = results["flood"].split()
    assert len(greetings) == 40
    allowed = SmtpLimits().connections
    assert greetings.count("220") == allowed and greetings.count("421") == 40 - allowed, greetings
    assert served.startswith("250 "), served
