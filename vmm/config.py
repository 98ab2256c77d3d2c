"""The runtime environment of a container: the only reader of environment variables
and secret files. vmm.cfg's options live in the database instead (settings.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vmm.errors import DatabaseError, InvalidValue


@dataclass(frozen=True)
class Runtime:
    """Where the services are and where secrets and certificates live."""

    domain: str
    hostname: str
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    dovecot_host: str
    postfix_host: str
    lmtp_port: int
    auth_port: int
    quota_status_port: int
    secrets_dir: Path
    tls_dir: Path
    dkim_dir: Path
    allow_weak_schemes: bool
    filter_host: str
    milter_port: int
    # The DNS servers rspamd asks ("ip" or "ip:port"); empty: the container's resolver.
    dns_servers: tuple[str, ...]
    # What Postfix does with mail while the filter is unreachable: "defer" (4xx, the
    # sender retries) or "pass" (accepted unscanned and unsigned).
    filter_failure: str

    @classmethod
    def from_env(cls) -> Runtime:
        env = os.environ
        domain = env.get("VMM_DOMAIN", "example.test")
        return cls(
            domain=domain,
            hostname=env.get("VMM_HOSTNAME") or f"mail.{domain}",
            db_host=env.get("VMM_DB_HOST", "postgres"),
            db_port=int(env.get("VMM_DB_PORT", "5432")),
            db_name=env.get("VMM_DB_NAME", "mailsys"),
            db_user=env.get("VMM_DB_USER", "vmm"),
            dovecot_host=env.get("VMM_DOVECOT_HOST", "dovecot"),
            postfix_host=env.get("VMM_POSTFIX_HOST", "postfix"),
            lmtp_port=int(env.get("VMM_LMTP_PORT", "24")),
            auth_port=int(env.get("VMM_AUTH_PORT", "12345")),
            quota_status_port=int(env.get("VMM_QUOTA_STATUS_PORT", "12340")),
            secrets_dir=Path(env.get("VMM_SECRETS_DIR", "/run/vmm-secrets")),
            tls_dir=Path(env.get("VMM_TLS_DIR", "/etc/vmm/tls")),
            dkim_dir=Path(env.get("VMM_DKIM_DIR", "/var/lib/vmm/dkim")),
            # Also renders Dovecot's auth_allow_weak_schemes: one switch for both.
            allow_weak_schemes=env.get("VMM_ALLOW_WEAK_SCHEMES", "no").lower() in ("yes", "true", "1", "on"),
            filter_host=env.get("VMM_FILTER_HOST", "rspamd"),
            dns_servers=tuple(env.get("VMM_DNS_RESOLVER", "").replace(",", " ").split()),
            milter_port=int(env.get("VMM_MILTER_PORT", "11332")),
            filter_failure=_one_of("VMM_FILTER_FAILURE", env.get("VMM_FILTER_FAILURE") or "defer",
                                   ("defer", "pass")),
        )

    def db_password(self, role: str) -> str:
        """The password of a database role, from the secrets volume."""
        path = self.secrets_dir / role / "password"
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise DatabaseError(f"cannot read the {role} database password: {exc.strerror}") from None

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "key.pem"


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidValue(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value
