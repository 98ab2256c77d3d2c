"""Certificates from an ACME directory (VMM_ACME), obtained by Debian's lego: which names
the certificate carries, when it is renewed, installing the new pair where Postfix,
Dovecot and the web service read it, and the outcome of the last pass, which ``vmm
certificate`` shows. The web service runs a pass every VMM_ACME_INTERVAL seconds: it
answers the HTTP-01 challenges on port 80 from the directory lego writes them into."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vmm import tls
from vmm.dnsrecords import WEB_LABELS
from vmm.errors import InvalidValue, ToolError, VmmError
from vmm.runtime import Runtime

# Let's Encrypt's limit of names on one certificate: the host name and three names for
# each of 33 domains; more domains keep their names off it (the report lists them).
MAX_NAMES = 100
# lego gives up on a directory that does not answer; a pass must end (seconds).
LEGO_TIMEOUT = 600
CHALLENGE_PATH = "/.well-known/acme-challenge/"
# A pass's message when the certificate needs nothing.
CURRENT = "current"


@dataclass(frozen=True)
class Outcome:
    """One pass: when, whether it left a valid certificate, what it did or why it failed,
    the names it asked for and those it left off (with why)."""

    checked: str
    ok: bool
    message: str
    names: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def status_file(runtime: Runtime) -> Path:
    return runtime.tls_dir / "acme" / "status.json"


def last_outcome(runtime: Runtime) -> Outcome | None:
    """The last pass's outcome, or None before the first."""
    try:
        return Outcome(**json.loads(status_file(runtime).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidValue(f"cannot read the last ACME outcome: {exc}") from None


def wanted_names(
    hostname: str, domains: Iterable[str], resolve: Callable[[str], frozenset[str]]
) -> tuple[list[str], dict[str, str]]:
    """The host name, and each domain's web names (autoconfig., autodiscover., mta-sts.)
    whose addresses are the host name's: a domain wants a name by publishing it as
    ``dnsrecords`` says, and a name that points elsewhere would fail the whole order.
    Returns (names, {skipped name: why})."""
    own = resolve(hostname)
    if not own:
        raise InvalidValue(f"the host name {hostname} does not resolve: publish its address first")
    names, skipped = [hostname], {}
    for domain in domains:
        for name in (f"{label}.{domain}" for label in WEB_LABELS):
            addresses = resolve(name)
            if not addresses or not addresses <= own:
                skipped[name] = f"does not resolve to {hostname}'s address"
            elif len(names) >= MAX_NAMES:
                skipped[name] = f"a certificate holds at most {MAX_NAMES} names"
            else:
                names.append(name)
    return names, skipped


def resolver(runtime: Runtime) -> Callable[[str], frozenset[str]]:
    """The addresses (A and AAAA) a name has in public DNS, as the stack's resolver
    answers: not through the container's resolver, which knows the host name as the
    Postfix container's internal address."""
    import dns.exception
    import dns.resolver

    stub = dns.resolver.Resolver(configure=False)
    stub.nameservers = [runtime.resolver_address]
    stub.lifetime = 5

    def addresses(name: str) -> frozenset[str]:
        found: set[str] = set()
        for kind in ("A", "AAAA"):
            # No record of a kind (NXDOMAIN, no answer, a timeout) is no address of it.
            with contextlib.suppress(dns.exception.DNSException):
                found.update(str(record) for record in stub.resolve(name, kind))
        return frozenset(found)

    return addresses


def reason_to_renew(current: tls.Certificate | None, names: list[str], now: datetime) -> str:
    """Why a new certificate is needed, or "" when the current one will do: it is
    self-signed, names other names, or has a third of its lifetime left (Let's
    Encrypt's advice: 30 of 90 days; Pebble's short-lived ones in the tests alike)."""
    if current is None or current.self_signed:
        return "no certificate from a certificate authority yet"
    if current.names != frozenset(names):
        return "the names changed"
    if current.not_after - now < (current.not_after - current.not_before) / 3:
        return f"it expires on {current.not_after:%Y-%m-%d %H:%M} UTC"
    return ""


def obtain(runtime: Runtime, names: list[str]) -> None:
    """Ask the directory for a certificate for ``names`` (lego, HTTP-01 answered by the
    web service) and install it; the current pair stays unless that succeeds."""
    state = runtime.tls_dir / "acme"
    challenge_root(runtime).mkdir(parents=True, exist_ok=True)
    command = [
        "lego", "--accept-tos", "--server", runtime.acme_directory, "--email", runtime.acme_email,
        "--path", str(state / "lego"), "--key-type", "ec256",
        "--http", "--http.webroot", str(challenge_root(runtime)),
        *(f"--domains={name}" for name in names), "run",
    ]  # fmt: skip
    env = dict(os.environ)
    if runtime.acme_ca_file:
        env["LEGO_CA_CERTIFICATES"] = runtime.acme_ca_file
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=LEGO_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"lego: {exc}") from None
    if result.returncode != 0:
        raise ToolError(_lego_error(result.stderr))
    issued = state / "lego" / "certificates"
    tls.install(runtime, (issued / f"{names[0]}.crt").read_bytes(), (issued / f"{names[0]}.key").read_bytes())


def challenge_root(runtime: Runtime) -> Path:
    """Where lego writes .well-known/acme-challenge/TOKEN for the web service to serve."""
    return runtime.tls_dir / "acme" / "webroot"


def _lego_error(stderr: str) -> str:
    """lego's reason in one line: its last line, which names the name and the CA's answer."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "lego failed without a message"


def run(runtime: Runtime, domains: Callable[[], list[str]]) -> Outcome:
    """One pass: work out the names, obtain a certificate if one is due, record and
    return the outcome. Never raises for what a pass may meet: it says why instead."""
    now = datetime.now(UTC)
    names: list[str] = []
    skipped: dict[str, str] = {}
    try:
        names, skipped = wanted_names(runtime.hostname, domains(), resolver(runtime))
        reason = reason_to_renew(tls.read_certificate(runtime.tls_cert), names, now)
        if reason:
            obtain(runtime, names)
            outcome = Outcome(now.isoformat(timespec="seconds"), True, f"obtained: {reason}", names, skipped)
        else:
            outcome = Outcome(now.isoformat(timespec="seconds"), True, CURRENT, names, skipped)
    except VmmError as exc:
        outcome = Outcome(now.isoformat(timespec="seconds"), False, str(exc), names, skipped)
    path = status_file(runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".new")
    temporary.write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    temporary.replace(path)
    return outcome
