"""The TLS certificate the daemons present: the postmaster's own, a self-signed one
generated once on first start and kept in the tls volume, or one from an ACME directory
(vmm/acme.py). Whoever replaces it, the daemons load the new pair within POLL_SECONDS:
Postfix and Dovecot by a reload (images/base/vmm-on-change), the web service itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmm.openssl import openssl
from vmm.runtime import Runtime

# How often the daemons look for a replaced certificate, seconds.
POLL_SECONDS = 10


@dataclass(frozen=True)
class Certificate:
    """What a postmaster checks of a certificate."""

    subject: str
    issuer: str
    serial: str
    names: frozenset[str]
    not_before: datetime
    not_after: datetime

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def ensure_certificate(runtime: Runtime) -> bool:
    """Create a self-signed pair unless one is there; returns whether it created one."""
    cert, key = runtime.tls_cert, runtime.tls_key
    if cert.exists() and key.exists():
        return False
    runtime.tls_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    # EC P-256: instant to generate, and no DH parameters are needed at start (ECDHE).
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "3650", "-subj", f"/CN={runtime.hostname}",
        "-addext", f"subjectAltName=DNS:{runtime.hostname},DNS:{runtime.domain}",
        "-keyout", str(key), "-out", str(cert),
        what="create a self-signed certificate",
    )  # fmt: skip
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return True


def read_certificate(path: Path) -> Certificate | None:
    """The first certificate in ``path`` (the server's own, before its chain), or None
    if there is no such file."""
    if not path.exists():
        return None
    fields: dict[str, str] = {}
    names: set[str] = set()
    text = openssl(
        "x509", "-in", str(path), "-noout", "-subject", "-issuer", "-serial", "-startdate", "-enddate",
        "-ext", "subjectAltName", "-nameopt", "RFC2253", "-dateopt", "iso_8601",
        what=f"read the certificate {path}",
    ).decode()  # fmt: skip
    for line in text.splitlines():
        key, equals, value = line.strip().partition("=")
        if equals and key in ("subject", "issuer", "serial", "notBefore", "notAfter"):
            fields[key] = value.strip()
        names.update(part.strip()[4:].lower() for part in line.split(",") if part.strip().startswith("DNS:"))
    return Certificate(
        subject=fields["subject"],
        issuer=fields["issuer"],
        serial=fields["serial"],
        names=frozenset(names),
        not_before=_when(fields["notBefore"]),
        not_after=_when(fields["notAfter"]),
    )


def _when(text: str) -> datetime:
    """openssl's ISO 8601 time ("2026-11-30 06:00:00Z") as an aware datetime."""
    return datetime.strptime(text.rstrip("Z"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def install(runtime: Runtime, chain: bytes, key: bytes) -> None:
    """Make ``chain`` (the certificate, then its issuers) and ``key`` the pair the
    daemons present. Each file is replaced whole (written aside, then renamed), the key
    first, so that no reader sees half a file; a daemon that loads in between the two
    renames loads again at the reload that follows."""
    for target, content, mode in ((runtime.tls_key, key, 0o600), (runtime.tls_cert, chain, 0o644)):
        temporary = target.with_name(f".{target.name}.new")
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        temporary.replace(target)
