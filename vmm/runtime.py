"""The runtime environment of a container: the only reader of environment variables
and secret files. vmm.cfg's options live in the database instead (settings.py)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vmm.errors import DatabaseError, InvalidValue
from vmm.limits import parse_at_least

# The certificate and its key in the TLS directory (a volume; Docker secrets on Swarm).
TLS_CERT = "cert.pem"
TLS_KEY = "key.pem"


@dataclass(frozen=True)
class SmtpLimits:
    """What one client address may do on Postfix's ports, counted by its anvil(8) per
    minute; the README's security section lists these defaults and their variables."""

    connections: int = 10  # at once (Postfix: 50)
    connection_rate: int = 60
    message_rate: int = 60
    recipient_rate: int = 300
    auth_rate: int = 10  # AUTH commands: password guessing on 465/587
    message_size: int = 10_240_000  # Postfix's own default, stated once here

    @classmethod
    def from_env(cls) -> SmtpLimits:
        return cls(**_positive_fields(cls(), "VMM_SMTP_"))


@dataclass(frozen=True)
class AuthLimits:
    """Failed logins on IMAP, POP3, ManageSieve and SMTP AUTH (vmm/policy.py): an address
    with ``failures`` in ``window`` seconds is refused for ``ban`` seconds; a login name
    with more than ``free`` failures, from anywhere, waits 1, 2, 4 ... up to 15 s a try."""

    failures: int = 10
    window: int = 600
    ban: int = 900
    free: int = 3

    @classmethod
    def from_env(cls) -> AuthLimits:
        return cls(**_positive_fields(cls(), "VMM_AUTH_"))


# postscreen's DNS blocklists (VMM_DNSBL): "site=filter*weight", listed once the weights
# reach 3; dnswl.org's allow list weighs against them.
# Spamhaus answers 127.255.255.x to queries it refuses (public resolvers): not a listing.
DEFAULT_DNSBL = (
    "zen.spamhaus.org=127.0.0.[2..11]*3 bl.spamcop.net=127.0.0.2*2 list.dnswl.org=127.0.[0..255].[1..3]*-2"
)

# VMM_DOVECOT_ROLE (Runtime.dovecot_role).
DOVECOT_ROLES = ("single", "proxy", "backend")


@dataclass(frozen=True)
class Runtime:
    """Where the services are and where secrets and certificates live."""

    domain: str
    hostname: str
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    # PgBouncer, Dovecot's way to PostgreSQL (images/pgbouncer).
    db_pool_host: str
    db_pool_port: int
    dovecot_host: str
    # What the Dovecot container is (docs/scaling.md): "single", the one Dovecot that
    # holds all mail; "proxy", the tier in front of the mail backends that sends every
    # login and delivery to the backend of its account (mail_backend in PostgreSQL); or
    # "backend", one of those, reached only by the proxies. Postfix reads it too: behind
    # a proxy no Dovecot can answer its quota question at RCPT time.
    dovecot_role: str
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
    # rspamd's controller: its health check's /ping and its /metrics.
    controller_port: int
    # Valkey (images/valkey), rspamd's store for Bayes, greylisting and its history.
    cache_server: str
    # How long rspamd's greylisting makes a new (sender, recipient, client) wait, seconds.
    greylist_delay: int
    # The stack's resolver (images/resolver): its fixed address on the dns network, which
    # rspamd asks (Postfix through its container's resolver, compose.yaml's `dns:`).
    resolver_address: str
    # The servers the stack's resolver forwards to ("ip" or "ip:port"); empty: it
    # resolves from the root itself.
    dns_forwarders: tuple[str, ...]
    # What DNSSEC answers are validated against: empty, the root's key; a file of DS or
    # DNSKEY records (a test zone's); "none", no validation (the forwarders are trusted to).
    dns_trust_anchor: str
    # What Postfix does with mail while the filter is unreachable: "defer" (4xx, the
    # sender retries) or "pass" (accepted unscanned and unsigned).
    filter_failure: str
    smtp_limits: SmtpLimits
    # Client networks none of the SMTP limits and postscreen's tests apply to (a webmail,
    # a monitoring probe); the container's own loopback always is.
    throttle_exempt: tuple[str, ...]
    dnsbl_sites: str
    # Port 25 refuses mail whose envelope sender is a hosted address unless the client
    # logged in (only 465/587 offer that): nobody outside may pose as a local user.
    local_senders_need_auth: bool
    # A provider's relay that all outgoing mail goes through (VMM_RELAYHOST), as Postfix's
    # relayhost ("[host]:port"); empty: straight to each domain's MX.
    relayhost: str
    # The relay's login: a file with one line "user:password" (a compose secret), read
    # when the configuration is rendered; empty or absent: no AUTH.
    relay_login_file: Path
    # Sub-addressing: user+tag@domain reaches user, Sieve's :detail sees "tag"; "" is off.
    recipient_delimiter: str
    auth_limits: AuthLimits
    # Certificates by ACME (vmm/acme.py): the directory's URL, "" for none (the
    # postmaster's certificate or the self-signed one); the account's e-mail address; how
    # often the web service looks whether one is due, seconds; a CA file to trust the
    # directory's own certificate by (a private CA's, Pebble's in the tests), "" for the
    # system's.
    acme_directory: str
    acme_email: str
    acme_interval: int
    acme_ca_file: str
    # The policy service (vmm/policy.py): Dovecot's auth policy over HTTP, Postfix's
    # policy delegation for the submission limits.
    policy_host: str
    auth_policy_port: int
    send_policy_port: int
    # Postfix's SMTP AUTH reaches Dovecot's auth service through the policy service
    # (vmm/authrelay.py), which turns Dovecot's temporary failures into 454.
    auth_relay_port: int
    # Other domains' MTA-STS policies as Postfix's TLS policy table (vmm/web.py).
    mta_sts_host: str
    mta_sts_port: int
    # The monitoring profile (docs/monitoring.md): Dovecot's metrics port; how often
    # Prometheus scrapes and evaluates the alerts, seconds; and for the tests, one hold
    # time for every alert instead of each rule's own (None).
    metrics_port: int
    metrics_interval: int
    # Dovecot's doveadm service on the proxies and backends: dsync between backends, and
    # its HTTP API, by which `vmm usermove` copies a mailbox and drains the proxies.
    doveadm_port: int
    doveadm_http_port: int
    alert_for: int | None

    @property
    def lmtp_transport(self) -> str:
        """Dovecot's LMTP as a Postfix transport: virtual_transport and the stack_lmtp row."""
        return f"lmtp:inet:{self.dovecot_host}:{self.lmtp_port}"

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
            db_pool_host=env.get("VMM_DB_POOL_HOST", "pgbouncer"),
            db_pool_port=int(env.get("VMM_DB_POOL_PORT", "6432")),
            dovecot_host=env.get("VMM_DOVECOT_HOST", "dovecot"),
            dovecot_role=_one_of("VMM_DOVECOT_ROLE", env.get("VMM_DOVECOT_ROLE") or "single", DOVECOT_ROLES),
            postfix_host=env.get("VMM_POSTFIX_HOST", "postfix"),
            lmtp_port=int(env.get("VMM_LMTP_PORT", "24")),
            auth_port=int(env.get("VMM_AUTH_PORT", "12345")),
            quota_status_port=int(env.get("VMM_QUOTA_STATUS_PORT", "12340")),
            secrets_dir=Path(env.get("VMM_SECRETS_DIR", "/run/vmm-secrets")),
            tls_dir=Path(env.get("VMM_TLS_DIR", "/etc/vmm/tls")),
            dkim_dir=Path(env.get("VMM_DKIM_DIR", "/var/lib/vmm/dkim")),
            # Also renders Dovecot's auth_allow_weak_schemes: one switch for both.
            allow_weak_schemes=_flag(env.get("VMM_ALLOW_WEAK_SCHEMES", "no")),
            filter_host=env.get("VMM_FILTER_HOST", "rspamd"),
            resolver_address=env.get("VMM_RESOLVER_ADDRESS", "10.53.53.2"),
            dns_forwarders=tuple(env.get("VMM_DNS_RESOLVER", "").replace(",", " ").split()),
            dns_trust_anchor=env.get("VMM_DNS_TRUST_ANCHOR", "").strip(),
            milter_port=int(env.get("VMM_MILTER_PORT", "11332")),
            controller_port=int(env.get("VMM_CONTROLLER_PORT", "11334")),
            cache_server=env.get("VMM_CACHE_SERVER", "valkey:6379"),
            greylist_delay=parse_at_least(env.get("VMM_GREYLIST_DELAY") or "300", 1, "VMM_GREYLIST_DELAY"),
            filter_failure=_one_of(
                "VMM_FILTER_FAILURE", env.get("VMM_FILTER_FAILURE") or "defer", ("defer", "pass")
            ),
            smtp_limits=SmtpLimits.from_env(),
            throttle_exempt=tuple(
                _network(text) for text in env.get("VMM_THROTTLE_EXEMPT", "").replace(",", " ").split()
            ),
            dnsbl_sites=_dnsbl(env.get("VMM_DNSBL") or DEFAULT_DNSBL),
            local_senders_need_auth=_flag(env.get("VMM_LOCAL_SENDERS_NEED_AUTH", "yes")),
            recipient_delimiter=_delimiter(env.get("VMM_RECIPIENT_DELIMITER", "+")),
            relayhost=_relayhost(env.get("VMM_RELAYHOST", "")),
            relay_login_file=Path(env.get("VMM_RELAYHOST_LOGIN_FILE", "/run/secrets/relayhost")),
            auth_limits=AuthLimits.from_env(),
            acme_directory=_acme_directory(env.get("VMM_ACME", "")),
            acme_email=env.get("VMM_ACME_EMAIL") or f"postmaster@{domain}",
            acme_interval=parse_at_least(env.get("VMM_ACME_INTERVAL") or "3600", 1, "VMM_ACME_INTERVAL"),
            acme_ca_file=env.get("VMM_ACME_CA_FILE", ""),
            policy_host=env.get("VMM_POLICY_HOST", "policy"),
            auth_policy_port=int(env.get("VMM_AUTH_POLICY_PORT", "8400")),
            send_policy_port=int(env.get("VMM_SEND_POLICY_PORT", "10031")),
            auth_relay_port=int(env.get("VMM_AUTH_RELAY_PORT", "12346")),
            mta_sts_host=env.get("VMM_MTA_STS_HOST", "web"),
            mta_sts_port=int(env.get("VMM_MTA_STS_PORT", "8461")),
            metrics_port=int(env.get("VMM_METRICS_PORT", "9900")),
            doveadm_port=int(env.get("VMM_DOVEADM_PORT", "2425")),
            doveadm_http_port=int(env.get("VMM_DOVEADM_HTTP_PORT", "8080")),
            metrics_interval=parse_at_least(
                env.get("VMM_METRICS_INTERVAL") or "30", 1, "VMM_METRICS_INTERVAL"
            ),
            alert_for=parse_at_least(env["VMM_ALERT_FOR"], 0, "VMM_ALERT_FOR")
            if env.get("VMM_ALERT_FOR")
            else None,
        )

    def relay_login(self) -> str:
        """The relay's "user:password", or "" without one."""
        try:
            line = self.relay_login_file.read_text().strip()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise InvalidValue(f"cannot read the relay's login: {exc.strerror}") from None
        user, _, password = line.partition(":")
        if line and (not user or not password or "\n" in line):
            raise InvalidValue("the relay's login must be one line, user:password")
        return line

    def db_password(self, role: str) -> str:
        """The password of a database role, from the secrets volume."""
        return self._secret(role, f"the {role} database password")

    def doveadm_password(self) -> str:
        """The password of the Dovecot servers' doveadm service (its HTTP API, and the
        dsync from one backend to another), from the secrets volume."""
        return self._secret("doveadm", "the doveadm password")

    def _secret(self, name: str, what: str) -> str:
        try:
            return (self.secrets_dir / name / "password").read_text().strip()
        except OSError as exc:
            raise DatabaseError(f"cannot read {what}: {exc.strerror}") from None

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / TLS_CERT

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / TLS_KEY


# The ACME directories VMM_ACME may name; any other is given by its https URL.
ACME_DIRECTORIES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


def _acme_directory(text: str) -> str:
    """VMM_ACME: off (empty or "no"), a known directory's name, or its https URL."""
    value = text.strip()
    if value.lower() in ("", "no", "off", "none"):
        return ""
    if value.lower() in ACME_DIRECTORIES:
        return ACME_DIRECTORIES[value.lower()]
    if not value.startswith("https://"):
        known = ", ".join(ACME_DIRECTORIES)
        raise InvalidValue(f"VMM_ACME must be no, {known} or an https:// directory URL, not {text!r}")
    return value


def _dnsbl(text: str) -> str:
    """VMM_DNSBL: postscreen's sites, or "none" for no DNS blocklist."""
    return "" if text.strip().lower() == "none" else " ".join(text.split())


# The delimiters offered: one character each, which Postfix and Dovecot read alike and
# which needs no quoting in Postfix's SQL query (postfix/sql/virtual_alias_maps.cf.j2).
DELIMITERS = ("+", "-", "_", "=")


def _delimiter(text: str) -> str:
    if text not in ("", *DELIMITERS):
        allowed = " ".join(DELIMITERS)
        raise InvalidValue(f"VMM_RECIPIENT_DELIMITER must be one of {allowed} or empty, not {text!r}")
    return text


_RELAYHOST = re.compile(r"\[?([A-Za-z0-9.-]+)\]?(?::([0-9]{1,5}))?")


def _relayhost(text: str) -> str:
    """VMM_RELAYHOST as Postfix's relayhost: "host", "host:port" or "[host]:port" become
    "[host]:port" (no MX lookup: the name is the relay itself), port 25 if none."""
    found = _RELAYHOST.fullmatch(text.strip())
    if text.strip() and not found:
        raise InvalidValue(f"VMM_RELAYHOST must be host or host:port, not {text!r}")
    if not found:
        return ""
    host, port = found.group(1), found.group(2)
    return f"[{host}]:{port}" if port else f"[{host}]"


def _flag(text: str) -> bool:
    return text.strip().lower() in ("yes", "true", "1", "on")


def _positive_fields(defaults: object, prefix: str) -> dict[str, int]:
    """Each field of a limits dataclass from ``PREFIX_FIELD`` in the environment."""
    fields = {}
    for name, default in vars(defaults).items():
        variable = f"{prefix}{name.upper()}"
        text = os.environ.get(variable)
        fields[name] = parse_at_least(text, 1, variable) if text else default
    return fields


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise InvalidValue(f"VMM_THROTTLE_EXEMPT: not an address or network: {text!r}") from None


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidValue(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value
