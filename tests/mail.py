"""What the tests and the benchmark send and how they connect: one message builder and
one TLS context for the stack's self-signed certificate. Plain Python, no pytest, so that
`bench` uses them too."""

from __future__ import annotations

import ssl
import uuid


def tls_context() -> ssl.SSLContext:
    """A client context that accepts the stack's certificate, self-signed on first start."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def message(
    to: str | list[str],
    body: str = "hello",
    size: int = 0,
    sender: str = "sender@sender.example",
    subject: str | None = None,
    dated: bool = False,
) -> bytes:
    """A small RFC 5322 message from ``sender`` to ``to``, padded to about ``size`` bytes.
    Its Subject (a fresh marker unless given) finds it in a mailbox; ``dated`` adds a
    Date header, whose absence spam filters score."""
    marker = uuid.uuid4().hex
    recipients = [to] if isinstance(to, str) else to
    date = "Date: Wed, 25 Nov 2026 20:00:00 +0000\r\n" if dated else ""
    padding = "".join(f"{'x' * 76}\r\n" for _ in range(size // 78))
    return (
        f"From: <{sender}>\r\nTo: {', '.join(f'<{r}>' for r in recipients)}\r\n"
        f"Subject: {subject or marker}\r\n{date}"
        f"Message-ID: <{marker}@{sender.rpartition('@')[2]}>\r\n\r\n{body}\r\n{padding}"
    ).encode()
