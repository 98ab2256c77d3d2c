"""What a mail client is told about the stack: the host, ports and TLS modes of the
services an address may use, as Thunderbird's autoconfig (config-v1.1.xml), Outlook's
autodiscover (POX) and an Apple configuration profile express them. Every port here is
one the stack publishes (compose.yaml); dnsrecords' SRV records come from the same table."""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from vmm.errors import InvalidValue

# Outlook's request and response namespaces (MS-OXDSCLI, plain-old-XML autodiscover).
AUTODISCOVER_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# A request larger than this is no autodiscover request (a real one is about 400 bytes).
AUTODISCOVER_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class Endpoint:
    service: str  # the account's service flag that allows it (limits.SERVICES)
    port: int
    implicit_tls: bool  # TLS from the first byte; else STARTTLS, which the stack requires
    srv_label: str  # RFC 6186/8314/5804


# Implicit TLS first of each service, as RFC 8314 prefers it.
ENDPOINTS = (
    Endpoint("smtp", 465, True, "_submissions._tcp"),
    Endpoint("smtp", 587, False, "_submission._tcp"),
    Endpoint("imap", 993, True, "_imaps._tcp"),
    Endpoint("imap", 143, False, "_imap._tcp"),
    Endpoint("pop3", 995, True, "_pop3s._tcp"),
    Endpoint("pop3", 110, False, "_pop3._tcp"),
    Endpoint("sieve", 4190, False, "_sieve._tcp"),
)
INCOMING = ("imap", "pop3")  # preferred first


@dataclass(frozen=True)
class Offer:
    """What one address (or any address of a domain) may be configured for."""

    domain: str  # ASCII, as asked for
    hostname: str
    services: dict[str, bool]

    def endpoints(self, service: str) -> list[Endpoint]:
        return [e for e in ENDPOINTS if e.service == service and self.services.get(service)]

    def incoming(self) -> list[Endpoint]:
        return [e for service in INCOMING for e in self.endpoints(service)]


def _text(parent: ET.Element, tag: str, text: object) -> None:
    ET.SubElement(parent, tag).text = str(text)


def _xml(root: ET.Element) -> bytes:
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def thunderbird(offer: Offer) -> bytes:
    """Mozilla's autoconfig file; the login is the whole address (%EMAILADDRESS%)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=offer.domain)
    for tag in ("domain", "displayName", "displayShortName"):
        _text(provider, tag, offer.domain)
    servers = [("incomingServer", e) for e in offer.incoming()]
    servers += [("outgoingServer", e) for e in offer.endpoints("smtp")]
    for tag, endpoint in servers:
        server = ET.SubElement(provider, tag, type=endpoint.service)
        _text(server, "hostname", offer.hostname)
        _text(server, "port", endpoint.port)
        _text(server, "socketType", "SSL" if endpoint.implicit_tls else "STARTTLS")
        _text(server, "username", "%EMAILADDRESS%")
        _text(server, "authentication", "password-cleartext")
    return _xml(root)


def autodiscover_address(body: bytes) -> str:
    """The EMailAddress of an Outlook autodiscover request."""
    if len(body) > AUTODISCOVER_MAX_BYTES:
        raise InvalidValue("autodiscover request too large")
    try:
        root = ET.fromstring(body)  # noqa: S314 (no DTD is expanded by expat beyond its limits)
    except ET.ParseError as exc:
        raise InvalidValue(f"not an autodiscover request: {exc}") from None
    found = root.find(f"{{{AUTODISCOVER_REQUEST}}}Request/{{{AUTODISCOVER_REQUEST}}}EMailAddress")
    if found is None or not (found.text or "").strip():
        raise InvalidValue("the autodiscover request names no EMailAddress")
    return (found.text or "").strip()


def outlook(offer: Offer, address: str) -> bytes:
    """Outlook's POX autodiscover answer: one protocol each, implicit TLS preferred."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    account = ET.SubElement(ET.SubElement(root, "Response", xmlns=AUTODISCOVER_OUTLOOK), "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for endpoints in (offer.incoming(), offer.endpoints("smtp")):
        if not endpoints:
            continue
        endpoint = endpoints[0]
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", endpoint.service.upper())
        _text(protocol, "Server", offer.hostname)
        _text(protocol, "Port", endpoint.port)
        _text(protocol, "LoginName", address)
        _text(protocol, "DomainRequired", "off")
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        _text(protocol, "Encryption", "SSL" if endpoint.implicit_tls else "TLS")
        _text(protocol, "AuthRequired", "on")
    return _xml(root)


def apple(offer: Offer, address: str) -> bytes:
    """An Apple configuration profile (.mobileconfig) with one mail account; its
    identifiers derive from the address, so that installing it again replaces it."""
    incoming, outgoing = offer.incoming(), offer.endpoints("smtp")
    if not incoming or not outgoing:
        raise InvalidValue(f"{address} may not both receive and send mail here")
    # Implicit TLS only: the profile has one "use SSL" switch per server.
    inbox = next(e for e in incoming if e.implicit_tls)
    outbox = next(e for e in outgoing if e.implicit_tls)
    account_id = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}")
    profile_id = uuid.uuid5(account_id, "profile")
    payload = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(offer.hostname)}.mail.{account_id}",
        "PayloadUUID": str(account_id).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP" if inbox.service == "imap" else "EmailTypePOP",
        "EmailAddress": address,
        "IncomingMailServerHostName": offer.hostname,
        "IncomingMailServerPortNumber": inbox.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": offer.hostname,
        "OutgoingMailServerPortNumber": outbox.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(offer.hostname)}.profile.{profile_id}",
        "PayloadUUID": str(profile_id).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile)


def _reverse(hostname: str) -> str:
    return ".".join(reversed(hostname.split(".")))
