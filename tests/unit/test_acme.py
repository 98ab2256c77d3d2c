"""Which names the ACME certificate carries and when it is renewed (vmm/acme.py), the
certificate fields vmm reads (vmm/tls.py), and VMM_ACME's forms."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vmm import acme, tls
from vmm.errors import InvalidValue
from vmm.runtime import ACME_DIRECTORIES, Runtime

HOST = "mail.example.org"
ADDRESSES = {
    HOST: frozenset({"203.0.113.25"}),
    "autoconfig.example.org": frozenset({"203.0.113.25"}),
    "mta-sts.example.org": frozenset({"203.0.113.25"}),
    # Published, but at the old web host.
    "autodiscover.example.org": frozenset({"198.51.100.7"}),
}


def resolve(name: str) -> frozenset[str]:
    return ADDRESSES.get(name, frozenset())


def test_names_are_the_host_and_the_web_names_that_point_to_it() -> None:
    names, skipped = acme.wanted_names(HOST, ["example.org", "other.example"], resolve)
    assert names == [HOST, "autoconfig.example.org", "mta-sts.example.org"]
    assert set(skipped) == {
        "autodiscover.example.org",
        "autoconfig.other.example",
        "autodiscover.other.example",
        "mta-sts.other.example",
    }
    assert "does not resolve to mail.example.org's address" in skipped["autodiscover.example.org"]


def test_a_host_name_that_does_not_resolve_stops_the_pass() -> None:
    with pytest.raises(InvalidValue, match="does not resolve"):
        acme.wanted_names("mail.nowhere.example", ["example.org"], resolve)


def test_a_certificate_holds_at_most_the_ca_s_limit_of_names() -> None:
    domains = [f"d{number}.example" for number in range(60)]
    names, skipped = acme.wanted_names(HOST, domains, lambda _: frozenset({"203.0.113.25"}))
    assert len(names) == acme.MAX_NAMES
    assert len(skipped) == 3 * 60 + 1 - acme.MAX_NAMES
    assert all("at most" in why for why in skipped.values())


def certificate(issued: datetime, days: int, names: list[str], issuer: str = "CN=R11") -> tls.Certificate:
    return tls.Certificate(
        f"CN={names[0]}", issuer, "01", frozenset(names), issued, issued + timedelta(days=days)
    )


@pytest.mark.parametrize(
    ("current", "reason"),
    [
        (None, "no certificate from a certificate authority yet"),
        (certificate(datetime(2026, 11, 1, tzinfo=UTC), 90, [HOST], issuer=f"CN={HOST}"), "no certificate"),
        (
            certificate(datetime(2026, 11, 1, tzinfo=UTC), 90, [HOST, "mta-sts.example.org"]),
            "the names changed",
        ),
        (certificate(datetime(2026, 11, 1, tzinfo=UTC), 90, [HOST]), ""),  # 61 of 90 days left
        (certificate(datetime(2026, 9, 1, tzinfo=UTC), 90, [HOST]), "it expires on 2026-11-30"),  # 1 day left
    ],
)
def test_a_certificate_is_renewed_with_a_third_of_its_life_left(
    current: tls.Certificate | None, reason: str
) -> None:
    found = acme.reason_to_renew(current, [HOST], datetime(2026, 11, 29, tzinfo=UTC))
    assert found.startswith(reason) and bool(found) == bool(reason)


def test_the_certificate_fields_are_read_from_the_file(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "30", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST},DNS:MTA-STS.example.org",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    found = tls.read_certificate(tmp_path / "cert.pem")
    assert found is not None
    assert found.names == {HOST, "mta-sts.example.org"}
    assert found.self_signed and found.subject == f"CN={HOST}"
    assert found.not_after - found.not_before == timedelta(days=30)
    assert tls.read_certificate(tmp_path / "none.pem") is None


@pytest.mark.parametrize(
    ("given", "directory"),
    [
        ("", ""),
        ("no", ""),
        ("letsencrypt", ACME_DIRECTORIES["letsencrypt"]),
        ("LetsEncrypt-Staging", ACME_DIRECTORIES["letsencrypt-staging"]),
        ("https://acme.example/dir", "https://acme.example/dir"),
    ],
)
def test_vmm_acme_names_a_directory_or_is_off(
    monkeypatch: pytest.MonkeyPatch, given: str, directory: str
) -> None:
    monkeypatch.setenv("VMM_ACME", given)
    assert Runtime.from_env().acme_directory == directory


def test_a_directory_must_be_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMM_ACME", "http://acme.example/dir")
    with pytest.raises(InvalidValue, match="https://"):
        Runtime.from_env()
