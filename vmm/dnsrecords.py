"""The DNS records a postmaster publishes for a domain: where its mail goes (MX), who may
send it (SPF), its DKIM key, its DMARC policy, and the SRV records (RFC 6186, 8314,
5804) with which mail clients find the servers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vmm.dkim import Key

TTL = 3600
TXT_CHUNK = 255  # one character-string of a TXT record (RFC 1035 3.3)
# (service label, port) of every service the stack offers to clients, submissions first
# as RFC 8314 prefers implicit TLS.
CLIENT_SERVICES = (
    ("_submissions._tcp", 465),
    ("_submission._tcp", 587),
    ("_imaps._tcp", 993),
    ("_imap._tcp", 143),
    ("_pop3s._tcp", 995),
    ("_pop3._tcp", 110),
    ("_sieve._tcp", 4190),
)


@dataclass(frozen=True)
class Record:
    name: str  # absolute, with the trailing dot
    type: str
    value: str  # TXT: the whole text, unquoted
    ttl: int = TTL

    def zone_line(self) -> str:
        value = self.value
        if self.type == "TXT":
            value = " ".join(f'"{value[i : i + TXT_CHUNK]}"' for i in range(0, len(value), TXT_CHUNK))
        return f"{self.name}\t{self.ttl}\tIN\t{self.type}\t{value}"


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def for_domain(domain: str, hostname: str, key: Key | None, addresses: list[Address]) -> list[Record]:
    """``domain`` and ``hostname`` in ASCII form; ``addresses`` are the mail host's
    public ones, if known (the stack cannot see them behind Docker's NAT)."""
    apex, host = f"{domain}.", f"{hostname}."
    records = [Record(host, "A" if address.version == 4 else "AAAA", str(address)) for address in addresses]
    records += [
        Record(apex, "MX", f"10 {host}"),
        Record(apex, "TXT", "v=spf1 mx -all"),
    ]
    if key is not None:
        records.append(Record(f"{key.selector}._domainkey.{apex}", "TXT", key.txt_record()))
    records.append(Record(f"_dmarc.{apex}", "TXT", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"))
    records += [Record(f"{label}.{apex}", "SRV", f"0 1 {port} {host}") for label, port in CLIENT_SERVICES]
    return records
