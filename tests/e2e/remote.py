"""Outbound mail's other side (tests/e2e/remote.yaml): what reached it."""

from __future__ import annotations

import time

from tests.e2e.conftest import Stack

REMOTE_MAILDIR = "/var/mail/remote/Maildir/new"


def received_remotely(stack: Stack, marker: str, timeout: float = 60) -> bytes:
    """The message with ``marker`` in the remote server's Maildir, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names, _, _ = stack.exec("remote", "sh", "-c", f"grep -l {marker} {REMOTE_MAILDIR}/* 2>/dev/null")
        if names.strip():
            raw, _, _ = stack.exec("remote", "cat", names.split()[0])
            return raw.encode()
        time.sleep(0.5)
    raise AssertionError(f"nothing with {marker} reached the remote server")
