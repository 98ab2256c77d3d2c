"""MTA-STS (RFC 8461): the policy our domains publish at
https://mta-sts.DOMAIN/.well-known/mta-sts.txt, telling other servers to deliver to the
mail host over verified TLS only (``enforce``) or to report failures only (``testing``),
and the id of its ``_mta-sts`` TXT record, which changes whenever the policy does."""

from __future__ import annotations

import hashlib

from vmm.errors import InvalidValue

MODES = ("testing", "enforce", "none")
# How long senders cache the policy, seconds: a week (RFC 8461 suggests weeks; a
# change of mode reaches them at the latest then, or when the id changes).
MAX_AGE = 7 * 24 * 3600
HOST_LABEL = "mta-sts"
PATH = "/.well-known/mta-sts.txt"


def parse_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in MODES:
        raise InvalidValue(f"not an MTA-STS mode: {text!r} (use {', '.join(MODES)})")
    return mode


def policy(mode: str, mail_host: str) -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mail_host}\nmax_age: {MAX_AGE}\n"


def policy_id(text: str) -> str:
    """1-32 letters and digits (RFC 8461 3.1): a digest of the policy itself."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]
