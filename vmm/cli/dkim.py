"""DKIM keys and the DNS records of a domain (not in vmm(1): the appliance signs mail)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from vmm import dkim, domains, provisioning
from vmm.addresses import DomainName
from vmm.cli.app import command
from vmm.cli.options import JsonOption
from vmm.cli.output import show, show_json
from vmm.dnsrecords import for_domain
from vmm.errors import InvalidValue, NotFound
from vmm.runtime import Runtime
from vmm.session import open_session


@command("dkimrotate", "kr")
def dkimrotate(fqdn: str) -> None:
    """Give a domain a new DKIM key and selector (or its first one). The old key is kept:
    publish the new record printed by dnsrecords, and keep the old one for a few days."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        domain = domains.get_primary(session.conn, name)
        key = provisioning.create_key(session, domain.name)
    typer.echo(f"{domain.name} signs with selector {key.selector} within 10 seconds")


@command("dkiminfo", "ki")
def dkiminfo(fqdn: str, as_json: JsonOption = False) -> None:
    """Show a domain's DKIM selector, key and the TXT record to publish."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        domain = domains.get_primary(session.conn, name)
    key = _key_of(session.runtime, domain.name)
    if as_json:
        show_json(
            {
                "domain": domain.name,
                "selector": key.selector,
                "bits": dkim.KEY_BITS,
                "created": key.created().isoformat(timespec="seconds"),
                "record": f"{key.selector}._domainkey.{domain.name}",
                "value": key.txt_record(),
            }
        )
        return
    show(
        f"DKIM key of {domain.name}",
        [
            ("Selector", key.selector),
            ("Bits", dkim.KEY_BITS),
            ("Created", key.created().isoformat(timespec="seconds")),
            ("Record", f"{key.selector}._domainkey.{domain.name}"),
        ],
    )


@command("dnsrecords", "dr")
def dnsrecords(
    fqdn: str,
    address: Annotated[
        list[str] | None,
        typer.Option(
            "-a", "--address", help="A public address of the mail host (A/AAAA record); repeatable."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the DNS records to publish for a domain (MX, SPF, DKIM, DMARC, SRV for mail
    clients), in zone-file form or as JSON."""
    name = DomainName.parse(fqdn)
    addresses = []
    for text in address or []:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise InvalidValue(f"not an IP address: {text!r}") from None
    with open_session() as session:
        domain = domains.get_primary(session.conn, name)
    key = dkim.current(session.runtime.dkim_dir, domain.name)
    mode = session.settings.get("mta_sts.mode")
    records = for_domain(domain.name, session.runtime.hostname, key, addresses, mode)
    if as_json:
        show_json([{"name": r.name, "ttl": r.ttl, "type": r.type, "value": r.value} for r in records])
        return
    typer.echo(f"; DNS records for {domain.name}")
    for record in records:
        typer.echo(record.zone_line())


def _key_of(runtime: Runtime, domain: str) -> dkim.Key:
    key = dkim.current(runtime.dkim_dir, domain)
    if key is None:
        raise NotFound(f"{domain} has no DKIM key (create one with dkimrotate)")
    return key
