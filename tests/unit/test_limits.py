"""Quota, service and transport values as vmm(1) accepts them."""

import pytest

from vmm.errors import InvalidValue
from vmm.limits import parse_services, parse_storage, parse_transport


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1024", 1024), ("1k", 1024), ("500M", 500 * 1024**2), ("2g", 2 * 1024**3), ("7b", 7)],
)
def test_storage_suffixes(text: str, expected: int) -> None:
    assert parse_storage(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1T", "1.5G", "lots", "99999999999999999999G"])
def test_bad_storage_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_storage(text)


def test_services_named_are_on_and_the_rest_off() -> None:
    assert parse_services(["IMAP", "smtp"]) == {
        "smtp": True,
        "pop3": False,
        "imap": True,
        "sieve": False,
    }
    with pytest.raises(InvalidValue, match="unknown service"):
        parse_services(["ftp"])


@pytest.mark.parametrize(
    "text",
    [
        "lmtp:inet:dovecot:24",
        "smtp:[mx.example.org]:2025",
        "dovecot:",
        "retry:4.0.0 Mailbox being migrated",
        "error:5.1.1 gone",
    ],
)
def test_transports(text: str) -> None:
    assert parse_transport(text) == text


@pytest.mark.parametrize("text", ["", "lmtp", ":nexthop", "smtp:a b", "smtp:\n", "error:a\nb"])
def test_bad_transports_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_transport(text)
