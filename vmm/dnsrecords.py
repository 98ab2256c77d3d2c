"""The DNS records a postmaster publishes for a domain: where its mail goes (MX), who may
send it (SPF), its DKIM key, its DMARC policy, its MTA-STS policy and TLS reporting
address, and how mail clients find the servers (SRV records of RFC 6186, 8314 and 5804;
the autoconfig and autodiscover names the web service answers on)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vmm import mtasts
from vmm.clientconfig import ENDPOINTS
from vmm.dkim import Key

TTL = 3600
TXT_CHUNK = 255  # one character-string of a TXT record (RFC 1035 3.3)
# The names the web service answers on for a domain (vmm/web.py), aliases of the mail host.
WEB_LABELS = ("autoconfig", "autodiscover", mtasts.HOST_LABEL)
HTTPS_PORT = 443


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


def for_domain(
    domain: str, hostname: str, key: Key | None, addresses: list[Address], mta_sts_mode: str
) -> list[Record]:
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
    policy_id = mtasts.policy_id(mtasts.policy(mta_sts_mode, hostname))
    records += [
        Record(f"_mta-sts.{apex}", "TXT", f"v=STSv1; id={policy_id}"),
        Record(f"_smtp._tls.{apex}", "TXT", f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
    ]
    records += [Record(f"{e.srv_label}.{apex}", "SRV", f"0 1 {e.port} {host}") for e in ENDPOINTS]
    records.append(Record(f"_autodiscover._tcp.{apex}", "SRV", f"0 1 {HTTPS_PORT} {host}"))
    records += [Record(f"{label}.{apex}", "CNAME", host) for label in WEB_LABELS]
    return records
