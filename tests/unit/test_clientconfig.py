"""What mail clients are told (vmm/clientconfig.py) and the MTA-STS policy (vmm/mtasts.py),
as the formats' own parsers read them."""

from __future__ import annotations

import plistlib
from xml.etree import ElementTree as ET

import pytest

from vmm import clientconfig, mtasts
from vmm.errors import InvalidValue

HOST = "mail.example.test"
POP_ONLY = clientconfig.Offer("example.org", HOST, {"smtp": False, "pop3": True, "imap": False})
NOTHING_OUT = clientconfig.Offer("example.org", HOST, {"smtp": False, "pop3": True})
POP_AND_OUT = clientconfig.Offer("example.org", HOST, {"smtp": True, "pop3": True})


def test_thunderbird_lists_only_the_services_offered() -> None:
    config = ET.fromstring(clientconfig.thunderbird(POP_ONLY))  # noqa: S314 (our own output)
    assert [(s.attrib["type"], s.findtext("port")) for s in config.iter("incomingServer")] == [
        ("pop3", "995"),
        ("pop3", "110"),
    ]
    assert list(config.iter("outgoingServer")) == []


def test_autodiscover_reads_the_address_and_refuses_what_is_not_a_request() -> None:
    request = (
        f'<Autodiscover xmlns="{clientconfig.AUTODISCOVER_REQUEST}"><Request>'
        "<EMailAddress> kim@example.org </EMailAddress></Request></Autodiscover>"
    )
    assert clientconfig.autodiscover_address(request.encode()) == "kim@example.org"
    for bad in (
        b"<Autodiscover/>",
        b"<unclosed",
        b"<a>" + b"x" * clientconfig.AUTODISCOVER_MAX_BYTES + b"</a>",
    ):
        with pytest.raises(InvalidValue):
            clientconfig.autodiscover_address(bad)


def test_apple_profile_needs_a_way_in_and_a_way_out() -> None:
    with pytest.raises(InvalidValue, match="may not both receive and send"):
        clientconfig.apple(NOTHING_OUT, "kim@example.org")
    profile = plistlib.loads(
        clientconfig.apple(
            clientconfig.Offer("example.org", "mail.example.test", {"smtp": True, "pop3": True}),
            "kim@example.org",
        )
    )
    [account] = profile["PayloadContent"]
    assert account["EmailAccountType"] == "EmailTypePOP" and account["IncomingMailServerPortNumber"] == 995


def test_mta_sts_policy_and_id() -> None:
    text = mtasts.policy("enforce", "mail.example.test")
    assert text.splitlines() == [
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.test",
        f"max_age: {mtasts.MAX_AGE}",
    ]
    policy_id = mtasts.policy_id(text)
    assert policy_id.isalnum() and 1 <= len(policy_id) <= 32
    assert policy_id != mtasts.policy_id(mtasts.policy("testing", HOST))
    assert mtasts.parse_mode(" Enforce ") == "enforce"
    with pytest.raises(InvalidValue, match="not an MTA-STS mode"):
        mtasts.parse_mode("strict")
