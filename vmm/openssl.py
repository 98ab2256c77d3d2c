"""The openssl command, which makes the DKIM keys and the self-signed certificate: its
failures (or its absence) are ToolErrors, with what openssl said."""

from __future__ import annotations

import subprocess

from vmm.errors import ToolError


def openssl(*args: str, what: str) -> bytes:
    """Run ``openssl ARGS``; its standard output, or a ToolError naming ``what`` failed."""
    try:
        result = subprocess.run(["openssl", *args], capture_output=True, check=False)
    except OSError as exc:
        raise ToolError(f"cannot {what}: openssl: {exc.strerror}") from None
    if result.returncode != 0:
        raise ToolError(f"cannot {what}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout
