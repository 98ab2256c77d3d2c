"""Address and domain validation: what a postmaster types, what vmm stores."""

import pytest

from vmm.addresses import DomainName, EmailAddress
from vmm.errors import InvalidValue


def test_address_is_normalised_to_lower_case() -> None:
    address = EmailAddress.parse("Alice.Smith@Example.ORG")
    assert str(address) == "alice.smith@example.org"


def test_idn_domain_is_stored_in_ace_and_shown_in_unicode() -> None:
    domain = DomainName.parse("Bücher.example")
    assert domain.ace == "xn--bcher-kva.example"
    assert domain.unicode == "bücher.example"
    assert DomainName.parse("xn--bcher-kva.example") == domain


def test_trailing_dot_is_dropped() -> None:
    assert DomainName.parse("example.org.").ace == "example.org"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "alice@",
        "@example.org",
        "a@b@example.org",
        "alice@localhost",
        "al ice@example.org",
        "alice@exa mple.org",
        "alice@-example.org",
        "alice@example.123",
        "al..ice@example.org",
        ".alice@example.org",
        "alice.@example.org",
        "a%b@example.org",
        "a/b@example.org",
        "alice@example..org",
        "alice@" + "a" * 64 + ".org",
        "x" * 65 + "@example.org",
        "alice@" + ".".join(["abcdefghi"] * 26) + ".org",
        "alice@exam_ple.org",
        "alice\n@example.org",
        "alice@xn--zz.example",
    ],
)
def test_invalid_addresses_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        EmailAddress.parse(text)


def test_address_length_limit_counts_the_whole_address() -> None:
    domain = ".".join(["a" * 60] * 4) + ".org"  # 247 characters
    with pytest.raises(InvalidValue, match="longer than 254"):
        EmailAddress.parse("b" * 7 + "@" + domain)
    assert str(EmailAddress.parse("b" * 6 + "@" + domain)) == "b" * 6 + "@" + domain
