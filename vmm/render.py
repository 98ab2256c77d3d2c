"""Renders a daemon's configuration from config-templates/<service>/*.j2 with a typed
context and StrictUndefined, so that a missing value fails the start instead of
rendering as an empty string. Templates whose name starts with ``_`` are partials."""

from __future__ import annotations

import dataclasses
import grp
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from vmm.addresses import LOCAL_PART_SYMBOLS
from vmm.mailboxes import FIRST_ID
from vmm.passwords import LEGACY_SCHEMES
from vmm.runtime import Runtime, SmtpLimits
from vmm.status import CERTIFICATE_DAYS, VOLUME_FULL

TEMPLATE_ROOT = Path(os.environ.get("VMM_TEMPLATE_DIR", "/usr/share/vmm/templates"))


@dataclass(frozen=True)
class PostgresContext:
    # Small on purpose: the appliance targets small VMs (issue: idle stack <= 150 MB).
    shared_buffers: str = "32MB"
    max_connections: int = 100


class Common(TypedDict):
    """What the Postfix and Dovecot contexts share."""

    hostname: str
    domain: str
    db_name: str
    db_password: str
    auth_port: int
    quota_status_port: int
    tls_cert: str
    tls_key: str
    first_id: int
    recipient_delimiter: str
    dovecot_role: str


@dataclass(frozen=True)
class PostfixContext:
    common: Common
    db_host: str
    dovecot_host: str
    lmtp_transport: str
    filter_host: str
    milter_port: int
    milter_default_action: str
    limits: SmtpLimits
    throttle_exempt: tuple[str, ...]
    dnsbl_sites: str
    local_senders_need_auth: bool
    queue_minfree: int
    policy_host: str
    send_policy_port: int
    auth_relay_port: int
    relayhost: str
    # "user:password" for the relay, or "".
    relay_login: str
    # postfix-mta-sts-resolver's socketmap, "host:port" (vmm/web.py).
    mta_sts_resolver: str


@dataclass(frozen=True)
class DovecotContext:
    common: Common
    # PgBouncer's (images/pgbouncer), Dovecot's way to PostgreSQL.
    db_host: str
    db_port: int
    lmtp_port: int
    allow_weak_schemes: bool
    submission_host: str
    policy_host: str
    auth_policy_port: int
    policy_nonce: str
    metrics_port: int
    # Password checks (BLF-CRYPT, 88 ms of CPU each) run in the auth workers, one at a
    # time each: one worker a core hashes as fast as more would, and each idle worker
    # keeps about 3 MiB and a database connection for Dovecot's five idle minutes.
    auth_workers: int
    # The proxies' and backends' doveadm service (`vmm usermove`); none on a single host.
    doveadm_port: int
    doveadm_http_port: int
    doveadm_password: str
    # A PostgreSQL array of passwords.LEGACY_SCHEMES, for the passdb query.
    legacy_schemes: str = "{" + ",".join(LEGACY_SCHEMES) + "}"
    # Dovecot refuses a login name with any other character before a lookup: those of
    # an address vmm accepts (IDNA domains are ASCII), whatever the case.
    username_chars: str = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@" + LOCAL_PART_SYMBOLS
    )


# The monitoring profile's exporters (compose.yaml), each at its package's default port.
EXPORTERS = {
    "postfix": "postfix-exporter:9154",
    "postfix-log": "postfix-log-exporter:3903",
    "postgres": "postgres-exporter:9187",
    "volumes": "node-exporter:9100",
}
PROBER = "blackbox-exporter:9115"


@dataclass(frozen=True)
class RspamdContext:
    milter_port: int
    dkim_dir: str
    # The stack's resolver (images/resolver).
    resolver: str
    scan_processes: int
    cache_server: str
    greylist_delay: int
    greylist_exempt: tuple[str, ...]
    # The controller's read-only password (its /metrics), the monitoring profile's
    # credential (the `metrics` secret); write commands need a password nobody knows
    # (made at each render), so they come from the container itself only.
    metrics_password: str
    enable_password: str
    controller_port: int


@dataclass(frozen=True)
class UnboundContext:
    forwarders: tuple[str, ...]
    trust_anchor: str


@dataclass(frozen=True)
class PrometheusContext:
    interval: int
    alert_for: int | None
    dovecot_host: str
    dovecot_port: int
    rspamd_host: str
    rspamd_port: int
    rspamd_password: str
    # job -> "host:port" of Debian's exporters, each at its default port (compose.yaml).
    exporters: dict[str, str]
    # What the blackbox exporter's `tls` module probes, and where it listens.
    tls_targets: tuple[str, ...]
    prober: str
    # The alerts' thresholds that `vmm status` judges by too (vmm/status.py).
    certificate_days: int = CERTIFICATE_DAYS
    volume_full: float = VOLUME_FULL


@dataclass(frozen=True)
class PgbouncerContext:
    db_host: str
    db_port: int
    db_name: str
    # Dovecot's: the one role that connects through PgBouncer.
    db_password: str
    listen_port: int
    conf_dir: str


Context = (
    PostgresContext
    | PostfixContext
    | DovecotContext
    | RspamdContext
    | PgbouncerContext
    | UnboundContext
    | PrometheusContext
)

# Where PgBouncer's entrypoint renders and keeps its TLS key pair.
PGBOUNCER_DIR = "/etc/pgbouncer"

MILTER_ACTIONS = {"defer": "tempfail", "pass": "accept"}
# rspamd spends 3.7 of the about 20 ms of CPU a delivery costs the whole stack (make
# bench, CPU by component): one scanning process, which serves many scans at once, keeps
# up with five cores' worth of Postfix, Dovecot and PostgreSQL. Each one more holds about
# 15 MiB of its own once it has served mail.
CORES_PER_SCAN_PROCESS = 5


def _cores() -> int:
    """The cores this container may use."""
    return len(os.sched_getaffinity(0))


def context_for(service: str, runtime: Runtime) -> Context:
    if service == "postgres":
        return PostgresContext()
    if service == "rspamd":
        return RspamdContext(
            runtime.milter_port,
            str(runtime.dkim_dir),
            runtime.resolver_address,
            -(-_cores() // CORES_PER_SCAN_PROCESS),
            runtime.cache_server,
            runtime.greylist_delay,
            runtime.throttle_exempt,
            runtime.db_password("metrics"),
            secrets.token_hex(16),
            runtime.controller_port,
        )
    if service == "unbound":
        return UnboundContext(runtime.dns_forwarders, runtime.dns_trust_anchor)
    if service == "prometheus":
        return PrometheusContext(
            interval=runtime.metrics_interval,
            alert_for=runtime.alert_for,
            dovecot_host=runtime.dovecot_host,
            dovecot_port=runtime.metrics_port,
            rspamd_host=runtime.filter_host,
            rspamd_port=runtime.controller_port,
            rspamd_password=runtime.db_password("metrics"),
            exporters=EXPORTERS,
            tls_targets=(f"{runtime.postfix_host}:465", f"{runtime.dovecot_host}:993", "web:8443"),
            prober=PROBER,
        )
    if service == "pgbouncer":
        return PgbouncerContext(
            runtime.db_host,
            runtime.db_port,
            runtime.db_name,
            runtime.db_password("dovecot"),
            runtime.db_pool_port,
            PGBOUNCER_DIR,
        )
    common: Common = {
        "hostname": runtime.hostname,
        "domain": runtime.domain,
        "db_name": runtime.db_name,
        "db_password": runtime.db_password(service),
        "auth_port": runtime.auth_port,
        "quota_status_port": runtime.quota_status_port,
        "tls_cert": str(runtime.tls_cert),
        "tls_key": str(runtime.tls_key),
        "first_id": FIRST_ID,
        "recipient_delimiter": runtime.recipient_delimiter,
        "dovecot_role": runtime.dovecot_role,
    }
    if service == "postfix":
        return PostfixContext(
            dovecot_host=runtime.dovecot_host,
            lmtp_transport=runtime.lmtp_transport,
            filter_host=runtime.filter_host,
            milter_port=runtime.milter_port,
            milter_default_action=MILTER_ACTIONS[runtime.filter_failure],
            limits=runtime.smtp_limits,
            throttle_exempt=runtime.throttle_exempt,
            dnsbl_sites=runtime.dnsbl_sites,
            local_senders_need_auth=runtime.local_senders_need_auth,
            # Below this much free space in the queue (which shares its disk with
            # PostgreSQL) Postfix answers 452 and the sender retries; Postfix asks for at
            # least 1.5 times the message size limit.
            queue_minfree=3 * runtime.smtp_limits.message_size,
            relayhost=runtime.relayhost,
            relay_login=runtime.relay_login() if runtime.relayhost else "",
            policy_host=runtime.policy_host,
            send_policy_port=runtime.send_policy_port,
            auth_relay_port=runtime.auth_relay_port,
            mta_sts_resolver=f"{runtime.mta_sts_host}:{runtime.mta_sts_port}",
            db_host=runtime.db_host,
            common=common,
        )
    if service == "dovecot":
        return DovecotContext(
            lmtp_port=runtime.lmtp_port,
            allow_weak_schemes=runtime.allow_weak_schemes,
            submission_host=f"{runtime.postfix_host}:25",
            policy_host=runtime.policy_host,
            auth_policy_port=runtime.auth_policy_port,
            policy_nonce=secrets.token_hex(16),
            metrics_port=runtime.metrics_port,
            db_host=runtime.db_pool_host,
            db_port=runtime.db_pool_port,
            auth_workers=_cores(),
            doveadm_port=runtime.doveadm_port,
            doveadm_http_port=runtime.doveadm_http_port,
            doveadm_password=runtime.doveadm_password() if runtime.dovecot_role != "single" else "",
            common=common,
        )
    raise ValueError(f"no templates for service {service!r}")


def render(
    service: str, context: Context, dest: Path, template_root: Path = TEMPLATE_ROOT, group: str | None = None
) -> list[Path]:
    """Write every template of ``service`` below ``dest``; returns the files written.
    Files are 0640, readable by ``group`` (the daemon's), since some hold passwords."""
    env = Environment(
        loader=FileSystemLoader(template_root / service),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (daemon configs, not HTML)
    )
    values = dataclasses.asdict(context)
    values |= values.pop("common", {})  # the templates name the shared values directly
    gid = grp.getgrnam(group).gr_gid if group else -1
    # Dated two seconds back: Postfix reads a main.cf changed within the last second again,
    # every 300 ms, until it is older (util/load_file.c, against half-written files), which
    # held every start for up to 2 s. These files are whole once this returns.
    settled = time.time() - 2
    written = []
    for name in env.list_templates(extensions=["j2"]):
        if Path(name).name.startswith("_"):
            continue
        target = dest / name.removesuffix(".j2")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = env.get_template(name).render(values)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(target, 0o640)
        if group:
            os.chown(target, 0, gid)
        os.utime(target, (settled, settled))
        written.append(target)
    return written


def main() -> None:
    """``python3 -m vmm.render SERVICE DEST [GROUP]``, called by the entrypoints through
    vmm-render (images/base), which renders once per container."""
    service, dest = sys.argv[1], Path(sys.argv[2])
    group = sys.argv[3] if len(sys.argv) > 3 else None
    render(service, context_for(service, Runtime.from_env()), dest, group=group)


if __name__ == "__main__":
    main()
