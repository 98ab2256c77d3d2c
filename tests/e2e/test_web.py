"""The web service as mail clients and other servers meet it: Thunderbird's autoconfig,
Outlook's autodiscover and an Apple profile, each parsed with a real parser, checked
against the stack and then used by a real client; the MTA-STS policy and its DNS id."""

from __future__ import annotations

import http.client
import imaplib
import json
import plistlib
import smtplib
import time
from xml.etree import ElementTree as ET

import pytest

from tests.e2e.conftest import Stack
from tests.mail import tls_context
from vmm import mtasts

pytestmark = pytest.mark.e2e

PW = "web client password"
HOSTNAME = "mail.example.test"  # the stack's VMM_HOSTNAME by default
AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    "<Request><EMailAddress>{address}</EMailAddress>"
    "<AcceptableResponseSchema>"
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema></Request></Autodiscover>"
)
OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
KIM_CONFIG = "/mail/config-v1.1.xml?emailaddress=kim@web.example"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTODISCOVER = "/autodiscover/autodiscover.xml"
KIM_PROFILE = "/apple/mail.mobileconfig?emailaddress=kim@web.example"


def xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 (the stack under test wrote it)


def fetch(
    stack: Stack, host: str, path: str, body: str | None = None, tls: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """One request to the published web port, for ``host`` as a client names it."""
    port = stack.port(8443 if tls else 8080)
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls_context())
        if tls
        else http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    )
    try:
        headers = {"Host": host, "Content-Type": "text/xml"}
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def web(stack: Stack) -> Stack:
    stack.add_domain("web.example")
    stack.add_account("kim@web.example", PW)
    stack.add_account("pat@web.example", PW)
    # pat reads mail over POP3 only; the domain offers everything.
    stack.vmm_ok("userservices", "pat@web.example", "-s", "pop3", "smtp")
    return stack


def servers(config: ET.Element, tag: str) -> list[tuple[str, str, int, str, str]]:
    return [
        (
            server.attrib["type"],
            server.findtext("hostname", ""),
            int(server.findtext("port", "0")),
            server.findtext("socketType", ""),
            server.findtext("username", ""),
        )
        for server in config.iter(tag)
    ]


def test_thunderbird_gets_the_servers_it_then_logs_in_to(web: Stack) -> None:
    status, headers, body = fetch(
        web, "autoconfig.web.example", "/mail/config-v1.1.xml?emailaddress=kim@web.example"
    )
    assert status == 200 and headers["content-type"].startswith("application/xml")
    config = xml(body)
    assert config.find("emailProvider").attrib["id"] == "web.example"  # type: ignore[union-attr]
    incoming = servers(config, "incomingServer")
    assert incoming == [
        ("imap", HOSTNAME, 993, "SSL", "%EMAILADDRESS%"),
        ("imap", HOSTNAME, 143, "STARTTLS", "%EMAILADDRESS%"),
        ("pop3", HOSTNAME, 995, "SSL", "%EMAILADDRESS%"),
        ("pop3", HOSTNAME, 110, "STARTTLS", "%EMAILADDRESS%"),
    ]
    outgoing = servers(config, "outgoingServer")
    assert outgoing == [
        ("smtp", HOSTNAME, 465, "SSL", "%EMAILADDRESS%"),
        ("smtp", HOSTNAME, 587, "STARTTLS", "%EMAILADDRESS%"),
    ]
    # The client does what it was told (the stack's ports are published elsewhere here,
    # and its name is the certificate's).
    _, _, imap_port, _, _ = incoming[0]
    with imaplib.IMAP4_SSL("127.0.0.1", web.port(imap_port), ssl_context=tls_context()) as imap:
        assert imap.login("kim@web.example", PW)[0] == "OK"
    _, _, smtp_port, _, _ = outgoing[0]
    with smtplib.SMTP_SSL("127.0.0.1", web.port(smtp_port), context=tls_context(), timeout=30) as smtp:
        assert smtp.login("kim@web.example", PW)[0] == 235
    certificate = web.exec(
        "postfix", "openssl", "x509", "-noout", "-subject", "-in", "/etc/vmm/tls/cert.pem"
    )[0]
    assert HOSTNAME in certificate


def test_autoconfig_offers_only_the_services_the_address_has(web: Stack) -> None:
    _, _, body = fetch(
        web, "web.example", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=pat@web.example"
    )
    config = xml(body)
    assert [s[0] for s in servers(config, "incomingServer")] == ["pop3", "pop3"]
    assert [s[2] for s in servers(config, "outgoingServer")] == [465, 587]
    # Without an address: what the domain offers, found by the host name asked for.
    _, _, body = fetch(web, "autoconfig.web.example", "/mail/config-v1.1.xml")
    assert {s[0] for s in servers(xml(body), "incomingServer")} == {"imap", "pop3"}


def test_unknown_domains_and_bad_addresses_get_clear_errors(web: Stack) -> None:
    status, _, body = fetch(web, "autoconfig.nowhere.example", "/mail/config-v1.1.xml")
    assert status == 404 and b"not a domain of this server" in body
    status, _, body = fetch(web, "autoconfig.web.example", "/mail/config-v1.1.xml?emailaddress=no-at-sign")
    assert status == 400 and b"invalid e-mail address" in body
    status, _, body = fetch(web, "autodiscover.web.example", AUTODISCOVER, body="<not xml")
    assert status == 400 and b"not an autodiscover request" in body
    status, _, body = fetch(web, "autoconfig.web.example", "/apple/mail.mobileconfig")
    assert status == 400 and b"add ?emailaddress=" in body


def test_outlook_autodiscover_answers_with_implicit_tls_servers(web: Stack) -> None:
    status, _, body = fetch(
        web,
        "autodiscover.web.example",
        AUTODISCOVER,
        body=AUTODISCOVER_REQUEST.format(address="Kim@web.example"),
    )
    assert status == 200
    protocols = {
        p.findtext(f"{OUTLOOK}Type"): (
            p.findtext(f"{OUTLOOK}Server"),
            int(p.findtext(f"{OUTLOOK}Port", "0")),
            p.findtext(f"{OUTLOOK}LoginName"),
            p.findtext(f"{OUTLOOK}Encryption"),
        )
        for p in xml(body).iter(f"{OUTLOOK}Protocol")
    }
    assert protocols == {
        "IMAP": (HOSTNAME, 993, "kim@web.example", "SSL"),
        "SMTP": (HOSTNAME, 465, "kim@web.example", "SSL"),
    }
    with imaplib.IMAP4_SSL("127.0.0.1", web.port(protocols["IMAP"][1]), ssl_context=tls_context()) as imap:
        assert imap.login(str(protocols["IMAP"][2]), PW)[0] == "OK"


def test_apple_profile_configures_one_account(web: Stack) -> None:
    status, headers, body = fetch(
        web, "autoconfig.web.example", "/apple/mail.mobileconfig?emailaddress=kim@web.example"
    )
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    [account] = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"]) == (HOSTNAME, 993)
    assert (account["OutgoingMailServerHostName"], account["OutgoingMailServerPortNumber"]) == (HOSTNAME, 465)
    assert account["IncomingMailServerUsername"] == account["OutgoingMailServerUsername"] == "kim@web.example"
    # Installing it again replaces the account instead of adding a second one.
    again = plistlib.loads(fetch(web, "x", KIM_PROFILE)[2])
    assert again["PayloadUUID"] == profile["PayloadUUID"]


def test_mta_sts_policy_follows_the_setting_and_its_dns_id(web: Stack) -> None:
    def published_id() -> str:
        records = json.loads(web.vmm_ok("dnsrecords", "web.example", "--json"))
        value = next(r["value"] for r in records if r["name"] == "_mta-sts.web.example.")
        return str(value).removeprefix("v=STSv1; id=")

    status, headers, body = fetch(web, "mta-sts.web.example", mtasts.PATH)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    policy = dict(line.split(": ", 1) for line in body.decode().splitlines())
    assert policy == {"version": "STSv1", "mode": "testing", "mx": HOSTNAME, "max_age": str(mtasts.MAX_AGE)}
    assert published_id() == mtasts.policy_id(body.decode())
    web.vmm_ok("configset", "mta_sts.mode", "enforce")
    try:
        _, _, enforced = fetch(web, "mta-sts.web.example", mtasts.PATH)
        assert "mode: enforce" in enforced.decode()
        assert published_id() == mtasts.policy_id(enforced.decode())
    finally:
        web.vmm_ok("configset", "mta_sts.mode", "testing")
    # Only on mta-sts.DOMAIN of a domain hosted here.
    assert fetch(web, "web.example", mtasts.PATH)[0] == 404
    assert fetch(web, "mta-sts.nowhere.example", mtasts.PATH)[0] == 404


def test_plain_http_redirects_to_https(web: Stack) -> None:
    status, headers, _ = fetch(
        web, "autoconfig.web.example", "/mail/config-v1.1.xml?emailaddress=kim@web.example", tls=False
    )
    assert status == 301
    assert (
        headers["location"]
        == "https://autoconfig.web.example/mail/config-v1.1.xml?emailaddress=kim@web.example"
    )


def test_a_database_outage_answers_503_and_passes(web: Stack) -> None:
    web.compose_ok("stop", "postgres")
    try:
        status, _, body = fetch(web, "mta-sts.web.example", mtasts.PATH)
        assert status == 503 and b"try again later" in body
    finally:
        web.compose_ok("start", "postgres")
    deadline = time.monotonic() + 60
    while fetch(web, "mta-sts.web.example", mtasts.PATH)[0] != 200:
        assert time.monotonic() < deadline, "the web service did not recover"
        time.sleep(0.5)
