"""VMM_RELAYHOST: every outgoing message through a provider's relay, with its login from
a file (a compose secret), over TLS only. The relay is the test network's independent
Postfix (tests/e2e/remote.yaml) on 587; the recipient's domain has no DNS at all, so only
the relay can have delivered it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, wait_for_log
from tests.e2e.remote import received_remotely
from tests.mail import message

pytestmark = pytest.mark.e2e

STACK_FILES = ["tests/e2e/remote.yaml"]
PW = "smarthost sender password"
SENDER = "ann@example.test"


def STACK_ENV(directory: Path) -> dict[str, str]:
    login = directory / "relay-login"
    login.write_text("relay@remote.test:relay password\n")
    login.chmod(0o600)
    return {"VMM_RELAYHOST": "relay.remote.test:587", "VMM_RELAYHOST_LOGIN": str(login)}


@pytest.fixture(scope="module")
def relayed(stack: Stack) -> Stack:
    stack.add_account(SENDER, PW)
    stack.publish(f"relay.remote.test.\t60\tIN\tA\t{stack.net}.120\n")
    return stack


def test_mail_goes_through_the_relay_with_its_login(relayed: Stack) -> None:
    subject = uuid.uuid4().hex
    relayed.submit(
        SENDER, PW, ["zoe@faraway.test"], message("zoe@faraway.test", sender=SENDER, subject=subject)
    )
    log = wait_for_log(relayed, "to=<zoe@faraway.test>")
    tail = log.split("to=<zoe@faraway.test>")[-1]
    assert "relay=relay.remote.test" in tail and ":587" in tail and "status=sent" in tail, tail
    remote = wait_for_log(relayed, "sasl_username=relay", service="remote")
    assert "sasl_method=PLAIN" in remote or "sasl_method=LOGIN" in remote
    assert subject.encode() in received_remotely(relayed, subject)


def test_the_relays_login_is_in_no_environment_or_argument(relayed: Stack) -> None:
    env, _, _ = relayed.exec("postfix", "cat", "/proc/1/environ")
    assert "relay password" not in env
    rendered, _, _ = relayed.exec("postfix", "stat", "-c", "%a %U %G", "/etc/postfix/relay_login")
    assert rendered.split() == ["640", "root", "postfix"]
