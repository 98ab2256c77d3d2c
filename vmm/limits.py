"""Values a postmaster sets on domains and accounts: quota limits, service sets and
transports (the per-domain defaults an account inherits unless it overrides them), and
free text such as notes and names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmm.errors import InvalidValue

SERVICES = ("smtp", "pop3", "imap", "sieve")
_STORAGE = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# transport(5): "transport:" or "transport:nexthop"; the name is a master.cf service.
# error(8) and retry take a text as nexthop ("retry:4.0.0 Mailbox being migrated").
_TRANSPORT = re.compile(r"[a-z0-9][a-z0-9._-]*:\S*", re.IGNORECASE)
_TEXT_TRANSPORT = re.compile(r"(error|retry):[\x20-\x7e]*", re.IGNORECASE)


def parse_storage(text: str) -> int:
    """vmm's storage syntax: an integer with an optional b, k, M or G suffix."""
    match = _STORAGE.fullmatch(text.strip())
    if not match:
        raise InvalidValue(f"invalid storage limit {text!r} (e.g. 0, 500M, 2G)")
    value = int(match.group(1)) * _FACTORS[match.group(2).lower()]
    if value > 2**63 - 1:
        raise InvalidValue(f"storage limit too large: {text!r}")
    return value


def parse_messages(text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidValue(f"invalid message count {text!r}") from None
    if not 0 <= value <= 2**63 - 1:
        raise InvalidValue(f"message count out of range: {text!r}")
    return value


def parse_at_least(text: str, minimum: int, what: str = "the value") -> int:
    """A whole number of at least ``minimum``: a limit, a count, a length."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidValue(f"{what} must be a whole number of at least {minimum}, not {text!r}")
    return value


def parse_transport(text: str) -> str:
    valid = _TRANSPORT.fullmatch(text) or _TEXT_TRANSPORT.fullmatch(text)
    if not valid or len(text) > 255:
        raise InvalidValue(f"invalid transport {text!r} (transport: or transport:nexthop)")
    return text


def parse_default_transport(text: str) -> str | None:
    """The domain.transport option: empty is the stack's own LMTP (None)."""
    return parse_transport(text) if text.strip() else None


def parse_services(names: list[str]) -> dict[str, bool]:
    """The services named are on, all others off."""
    wanted = {name.lower() for name in names}
    unknown = wanted - set(SERVICES)
    if unknown:
        raise InvalidValue(f"unknown service {sorted(unknown)[0]!r} (services: {', '.join(SERVICES)})")
    return {service: service in wanted for service in SERVICES}


def parse_text(text: str, what: str = "text", limit: int = 1000) -> str:
    """A note, a name or a setting: printable, one line, bounded."""
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise InvalidValue(f"control characters are not allowed in the {what}")
    if len(text) > limit:
        raise InvalidValue(f"the {what} is longer than {limit} characters")
    return text


def format_storage(value: int) -> str:
    if value == 0:
        return "unlimited"
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor:
            return f"{value / factor:.2f} {unit}"
    return f"{value} B"


class HasLimits:
    """The quota and service columns that domains and accounts share."""

    quota_bytes: int
    quota_messages: int
    smtp: bool
    pop3: bool
    imap: bool
    sieve: bool

    @property
    def quota(self) -> Quota:
        return Quota(self.quota_bytes, self.quota_messages)

    @property
    def services(self) -> dict[str, bool]:
        return {service: bool(getattr(self, service)) for service in SERVICES}


@dataclass(frozen=True)
class Quota:
    bytes: int
    messages: int

    def describe(self) -> str:
        messages = "unlimited" if self.messages == 0 else f"{self.messages:,}"
        return f"Storage: {format_storage(self.bytes)}; Messages: {messages}"
