"""Pure value objects for domain names and e-mail addresses: parsing, IDNA, limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna

from vmm.errors import InvalidValue

# RFC 5321 4.5.3.1: local part <= 64 octets, domain <= 255, path <= 256 (so an
# address is at most 254 characters between the angle brackets).
MAX_LOCAL_PART = 64
MAX_DOMAIN = 253
MAX_ADDRESS = 254

# The dot-atom of RFC 5322 3.2.3 minus characters that have a meaning to Postfix or
# Dovecot lookups (% is vmm's placeholder, / would escape a Maildir path). Dovecot's
# auth_username_chars is rendered from the same set (render.py).
LOCAL_PART_SYMBOLS = "!#$&'*+=?^_`{|}~-"
_ATOM = f"[a-z0-9{re.escape(LOCAL_PART_SYMBOLS)}]+"
_LOCAL_PART = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, order=True)
class DomainName:
    """A fully qualified domain name in ACE form (``xn--...``), lower case."""

    ace: str

    @classmethod
    def parse(cls, text: str) -> DomainName:
        raw = text.strip()
        if raw.endswith("."):
            raw = raw[:-1]
        if not raw:
            raise InvalidValue("empty domain name")
        if not raw.isascii():
            try:
                raw = idna.encode(raw, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise InvalidValue(f"invalid domain name {text!r}: {exc}") from None
        ace = raw.lower()
        if len(ace) > MAX_DOMAIN:
            raise InvalidValue(f"domain name too long ({len(ace)} > {MAX_DOMAIN}): {text!r}")
        labels = ace.split(".")
        if len(labels) < 2:
            raise InvalidValue(f"not a fully qualified domain name: {text!r}")
        for label in labels:
            if not _LABEL.fullmatch(label):
                raise InvalidValue(f"invalid domain name {text!r}: bad label {label!r}")
        if labels[-1].isdigit():
            raise InvalidValue(f"invalid domain name {text!r}: top-level label is numeric")
        if any(label.startswith("xn--") for label in labels):
            try:
                idna.decode(ace)
            except idna.IDNAError as exc:
                raise InvalidValue(f"invalid domain name {text!r}: {exc}") from None
        return cls(ace)

    @property
    def unicode(self) -> str:
        """The name as a person reads it (U-labels)."""
        return idna.decode(self.ace) if "xn--" in self.ace else self.ace

    def __str__(self) -> str:
        return self.ace


@dataclass(frozen=True, order=True)
class EmailAddress:
    """``local_part@domain`` with a lower-case local part and an ACE domain."""

    local_part: str
    domain: DomainName

    @classmethod
    def parse(cls, text: str) -> EmailAddress:
        raw = text.strip()
        if raw.count("@") != 1:
            raise InvalidValue(f"invalid e-mail address {text!r}: expected local-part@domain")
        local, _, domain_text = raw.rpartition("@")
        local = local.lower()
        if not local:
            raise InvalidValue(f"invalid e-mail address {text!r}: empty local part")
        if len(local) > MAX_LOCAL_PART:
            raise InvalidValue(f"invalid e-mail address {text!r}: local part longer than {MAX_LOCAL_PART}")
        if not _LOCAL_PART.fullmatch(local):
            raise InvalidValue(f"invalid e-mail address {text!r}: bad character in local part")
        domain = DomainName.parse(domain_text)
        address = cls(local, domain)
        if len(str(address)) > MAX_ADDRESS:
            raise InvalidValue(f"invalid e-mail address {text!r}: longer than {MAX_ADDRESS}")
        return address

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain.ace}"
