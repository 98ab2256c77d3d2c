"""DKIM keys follow the domains (domainadd, dkimrotate, domaindelete), and dnsrecords
prints a zone that a DNS library parses, or JSON."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import dns.rdatatype
import dns.zone

from tests.integration.conftest import Cli
from vmm.errors import ExitCode


def dkim_dir(cli: Cli) -> Path:
    return Path(cli.env["VMM_DKIM_DIR"])


def keys(cli: Cli) -> list[str]:
    return sorted(path.name for path in dkim_dir(cli).glob("*.key"))


def selector_map(cli: Cli) -> str:
    return (dkim_dir(cli) / "selectors.map").read_text()


def test_domainadd_creates_a_key_that_only_its_owner_and_rspamd_read(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")
    info = json.loads(cli.ok("dkiminfo", "example.org", "--json"))
    assert selector_map(cli) == f"example.org {info['selector']}\n"
    [name] = keys(cli)
    assert name == f"example.org.{info['selector']}.key"
    key = dkim_dir(cli) / name
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert "PRIVATE KEY" in key.read_text()
    assert info["value"].startswith("v=DKIM1; k=rsa; p=MII")
    assert info["record"] == f"{info['selector']}._domainkey.example.org"


def test_rotation_switches_the_selector_and_keeps_the_old_key(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")
    old = json.loads(cli.ok("dkiminfo", "example.org", "--json"))
    assert "example.org signs with selector" in cli.ok("dkimrotate", "example.org")
    new = json.loads(cli.ok("dkiminfo", "example.org", "--json"))
    assert new["selector"] != old["selector"] and new["value"] != old["value"]
    assert selector_map(cli) == f"example.org {new['selector']}\n"
    assert keys(cli) == sorted([f"example.org.{old['selector']}.key", f"example.org.{new['selector']}.key"])


def test_domaindelete_removes_the_keys_and_the_selector(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")
    cli.ok("domainadd", "example.net")
    cli.ok("dkimrotate", "example.org")
    cli.ok("domaindelete", "example.org")
    assert [name.split(".v")[0] for name in keys(cli)] == ["example.net"]
    assert selector_map(cli).startswith("example.net ") and "example.org" not in selector_map(cli)


def test_a_failed_domainadd_leaves_no_key(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")
    before = (keys(cli), selector_map(cli))
    # The postmaster's password is missing: the whole command fails after the key exists.
    cli.ok("configset", "domain.auto_postmaster", "true")
    failed = cli("domainadd", "example.net", "--password-stdin", stdin="")
    assert failed.returncode != 0
    assert (keys(cli), selector_map(cli)) == before


def test_dkim_commands_refuse_unknown_and_alias_domains(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")
    cli.ok("aliasdomainadd", "alias.example", "example.org")
    for command in ("dkiminfo", "dkimrotate", "dnsrecords"):
        unknown = cli(command, "nowhere.example")
        assert unknown.returncode == ExitCode.NOT_FOUND and unknown.stderr.count("\n") == 1, unknown.stderr
        assert cli(command, "alias.example").returncode != 0
    assert cli("dnsrecords", "example.org", "--address", "not-an-ip").returncode == ExitCode.INVALID


def test_dnsrecords_prints_a_zone_a_dns_library_loads(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "bücher.example")
    printed = cli.ok("dnsrecords", "bücher.example", "-a", "192.0.2.25", "-a", "2001:db8::25")
    zone = dns.zone.from_text(printed, origin=".", relativize=False, check_origin=False)
    selector = json.loads(cli.ok("dkiminfo", "xn--bcher-kva.example", "--json"))["selector"]
    apex = "xn--bcher-kva.example."

    def rdata(name: str, kind: str) -> list[str]:
        return [r.to_text() for r in zone.find_rdataset(name, dns.rdatatype.from_text(kind))]

    assert rdata(apex, "MX") == ["10 mail.example.test."]
    assert rdata(apex, "TXT") == ['"v=spf1 mx -all"']
    assert rdata(f"_dmarc.{apex}", "TXT") == [f'"v=DMARC1; p=quarantine; rua=mailto:postmaster@{apex[:-1]}"']
    assert rdata("mail.example.test.", "A") == ["192.0.2.25"]
    assert rdata("mail.example.test.", "AAAA") == ["2001:db8::25"]
    assert rdata(f"_submissions._tcp.{apex}", "SRV") == ["0 1 465 mail.example.test."]
    assert rdata(f"_imaps._tcp.{apex}", "SRV") == ["0 1 993 mail.example.test."]
    [dkim_txt] = zone.find_rdataset(f"{selector}._domainkey.{apex}", "TXT")
    assert all(len(part) <= 255 for part in dkim_txt.strings)
    as_json = json.loads(cli.ok("dnsrecords", "bücher.example", "--json"))
    by_name = {(r["name"], r["type"]): r["value"] for r in as_json}
    assert b"".join(dkim_txt.strings).decode() == by_name[(f"{selector}._domainkey.{apex}", "TXT")]
    assert {r["type"] for r in as_json} == {"MX", "TXT", "SRV", "CNAME"}


def test_dnsrecords_names_the_web_service_and_the_mta_sts_policy(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("domainadd", "example.org")

    def records() -> dict[tuple[str, str], str]:
        return {
            (r["name"], r["type"]): r["value"]
            for r in json.loads(cli.ok("dnsrecords", "example.org", "--json"))
        }

    before = records()
    for label in ("autoconfig", "autodiscover", "mta-sts"):
        assert before[(f"{label}.example.org.", "CNAME")] == "mail.example.test."
    assert before[("_autodiscover._tcp.example.org.", "SRV")] == "0 1 443 mail.example.test."
    assert before[("_smtp._tls.example.org.", "TXT")] == "v=TLSRPTv1; rua=mailto:postmaster@example.org"
    assert before[("_mta-sts.example.org.", "TXT")].startswith("v=STSv1; id=")
    # A new policy, a new id: senders fetch it again.
    cli.ok("configset", "mta_sts.mode", "enforce")
    assert records()[("_mta-sts.example.org.", "TXT")] != before[("_mta-sts.example.org.", "TXT")]
    bad = cli("configset", "mta_sts.mode", "strict")
    assert bad.returncode == ExitCode.INVALID and "not an MTA-STS mode" in bad.stderr
