"""The TLS certificate the daemons present: the postmaster's own, or a self-signed one
generated once on first start and kept in the tls volume."""

from __future__ import annotations

import os

from vmm.openssl import openssl
from vmm.runtime import Runtime


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
