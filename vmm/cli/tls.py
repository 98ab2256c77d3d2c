"""The certificate the stack presents and how ACME keeps it (not in vmm(1))."""

from __future__ import annotations

from datetime import UTC, datetime

from vmm import acme, tls
from vmm.cli.app import command
from vmm.cli.options import JsonOption
from vmm.cli.output import show, show_json
from vmm.errors import NotFound
from vmm.runtime import Runtime


@command("certinfo", "ci")
def certinfo(as_json: JsonOption = False) -> None:
    """Show the certificate Postfix, Dovecot and the web service present (names, issuer,
    expiry) and, with VMM_ACME, the outcome of the last ACME pass: what it obtained,
    or why it failed and which names it left off."""
    runtime = Runtime.from_env()
    current = tls.read_certificate(runtime.tls_cert)
    if current is None:
        raise NotFound(f"no certificate at {runtime.tls_cert}: `vmm setup` makes one")
    outcome = acme.last_outcome(runtime) if runtime.acme_directory else None
    left = current.not_after - datetime.now(UTC)
    if as_json:
        show_json(
            {
                "names": sorted(current.names),
                "subject": current.subject,
                "issuer": current.issuer,
                "serial": current.serial,
                "not_before": current.not_before.isoformat(),
                "not_after": current.not_after.isoformat(),
                "self_signed": current.self_signed,
                "acme": runtime.acme_directory or None,
                "last_pass": vars(outcome) if outcome else None,
            }
        )
        return
    directory = runtime.acme_directory
    acme_row = f"{directory}, every {runtime.acme_interval} s" if directory else "off"
    rows: list[tuple[str, object]] = [
        ("Names", ", ".join(sorted(current.names))),
        ("Issuer", current.issuer + (" (self-signed)" if current.self_signed else "")),
        ("Serial", current.serial),
        ("Valid until", f"{current.not_after:%Y-%m-%d %H:%M:%S} UTC ({_left(left.total_seconds())})"),
        ("ACME", acme_row),
    ]
    if runtime.acme_directory:
        if outcome is None:
            rows.append(("Last pass", "none yet"))
        else:
            verdict = outcome.message if outcome.ok else f"FAILED: {outcome.message}"
            rows.append(("Last pass", f"{outcome.checked}: {verdict}"))
            rows.extend(("Left off", f"{name}: {why}") for name, why in sorted(outcome.skipped.items()))
    show("Certificate", rows)


def _left(seconds: float) -> str:
    if seconds <= 0:
        return "EXPIRED"
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} days left"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min left"
