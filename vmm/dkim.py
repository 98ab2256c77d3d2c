"""DKIM keys: one RSA key per domain and selector in the dkim volume, which rspamd reads
(config-templates/rspamd/dkim_signing.conf.j2). ``selectors.map`` names the selector
each domain signs with; a rotation writes a new key and switches the map, and keeps the
old key so that mail signed a moment before still verifies while DNS catches up."""

from __future__ import annotations

import base64
import fcntl
import grp
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmm.errors import FileSystemError, ToolError
from vmm.openssl import openssl

KEY_BITS = 2048  # RFC 8301: at least 1024, 2048 recommended; fits a TXT record split in 255s
# rspamd's group (images/base creates it in every image): it reads the keys, nobody else.
RSPAMD_GROUP = "_rspamd"
MAP = "selectors.map"


@dataclass(frozen=True)
class Key:
    domain: str  # ASCII (ACE) form: what rspamd sees in the From header
    selector: str
    path: Path

    def public_der(self) -> bytes:
        return openssl(
            "pkey", "-in", str(self.path), "-pubout", "-outform", "DER",
            what=f"read the DKIM key {self.path}",
        )  # fmt: skip

    def txt_record(self) -> str:
        """The value of the ``<selector>._domainkey`` TXT record."""
        return f"v=DKIM1; k=rsa; p={base64.b64encode(self.public_der()).decode()}"

    def created(self) -> datetime:
        return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)


def selectors(dkim_dir: Path) -> dict[str, str]:
    """domain -> current selector, as rspamd reads it."""
    try:
        lines = (dkim_dir / MAP).read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(None, 1) for line in lines if line.strip())


def current(dkim_dir: Path, domain: str) -> Key | None:
    selector = selectors(dkim_dir).get(domain)
    return None if selector is None else Key(domain, selector, _key_path(dkim_dir, domain, selector))


def generate(dkim_dir: Path, domain: str, now: datetime | None = None) -> Key:
    """A new key under a selector named after today's date; not in use until activated."""
    dkim_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    stamp = f"v{(now or datetime.now(UTC)):%Y%m%d}"
    selector, n = stamp, 1
    while _key_path(dkim_dir, domain, selector).exists():
        n += 1
        selector = f"{stamp}n{n}"
    path = _key_path(dkim_dir, domain, selector)
    partial = path.with_suffix(".new")
    try:
        openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{KEY_BITS}",
            "-out", str(partial),
            what=f"create a DKIM key for {domain}",
        )  # fmt: skip
    except ToolError:
        partial.unlink(missing_ok=True)
        raise
    os.chmod(partial, 0o640)
    if os.geteuid() == 0:
        os.chown(partial, 0, _rspamd_gid())
    partial.rename(path)
    return Key(domain, selector, path)


def _rspamd_gid() -> int:
    try:
        return grp.getgrnam(RSPAMD_GROUP).gr_gid
    except KeyError:
        # Outside the images (the integration tests' host) no rspamd reads the keys.
        return 0


def discard(key: Key) -> None:
    """Undo :func:`generate` when the command that asked for the key fails."""
    key.path.unlink(missing_ok=True)


def activate(dkim_dir: Path, key: Key) -> None:
    with _map_lock(dkim_dir) as current_map:
        current_map[key.domain] = key.selector
        _write_map(dkim_dir, current_map)


def forget(dkim_dir: Path, domain: str) -> None:
    """Stop signing for a deleted domain and remove its keys."""
    with _map_lock(dkim_dir) as current_map:
        current_map.pop(domain, None)
        _write_map(dkim_dir, current_map)
    for path in dkim_dir.glob(f"{domain}.*.key"):
        path.unlink()


def _key_path(dkim_dir: Path, domain: str, selector: str) -> Path:
    return dkim_dir / f"{domain}.{selector}.key"


@contextmanager
def _map_lock(dkim_dir: Path) -> Iterator[dict[str, str]]:
    """The map, read and rewritten under a lock: concurrent vmm runs lose no line."""
    dkim_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(dkim_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield selectors(dkim_dir)


def _write_map(dkim_dir: Path, entries: dict[str, str]) -> None:
    # Replaced by rename, so that rspamd never reads half a map.
    partial = dkim_dir / f"{MAP}.new"
    try:
        partial.write_text("".join(f"{domain} {selector}\n" for domain, selector in sorted(entries.items())))
        os.chmod(partial, 0o644)
        partial.rename(dkim_dir / MAP)
    except OSError as exc:
        raise FileSystemError(f"cannot write {dkim_dir / MAP}: {exc.strerror}") from None
