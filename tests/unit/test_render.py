"""Every config template renders with a typed context (golden files), and a missing
value fails instead of rendering as an empty string."""

import dataclasses
import os
import time
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from vmm import render
from vmm.errors import InvalidValue
from vmm.runtime import Runtime, SmtpLimits

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "config-templates"
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
COMMON: render.Common = {
    "hostname": "mail.example.test",
    "domain": "example.test",
    "db_name": "mailsys",
    "db_password": "s3cret",
    "auth_port": 12345,
    "quota_status_port": 12340,
    "tls_cert": "/etc/vmm/tls/cert.pem",
    "tls_key": "/etc/vmm/tls/key.pem",
    "first_id": 70000,
    "recipient_delimiter": "+",
    "dovecot_role": "single",
}
CONTEXTS: dict[str, render.Context] = {
    "postgres": render.PostgresContext(),
    "postfix": render.PostfixContext(
        dovecot_host="dovecot",
        lmtp_transport="lmtp:inet:dovecot:24",
        filter_host="rspamd",
        milter_port=11332,
        milter_default_action="tempfail",
        limits=SmtpLimits(),
        throttle_exempt=("10.1.2.0/26",),
        dnsbl_sites="bl.test=127.0.0.2*3",
        local_senders_need_auth=True,
        queue_minfree=30_720_000,
        policy_host="policy",
        send_policy_port=10031,
        auth_relay_port=12346,
        relayhost="",
        relay_login="",
        mta_sts_resolver="web:8461",
        db_host="postgres",
        common=COMMON,
    ),
    "dovecot": render.DovecotContext(
        allow_weak_schemes=False,
        submission_host="postfix:25",
        policy_host="policy",
        auth_policy_port=8400,
        policy_nonce="0123456789abcdef",
        db_host="pgbouncer",
        db_port=6432,
        lmtp_port=24,
        metrics_port=9900,
        auth_workers=2,
        doveadm_port=2425,
        doveadm_http_port=8080,
        doveadm_password="d0veadm",
        common=COMMON,
    ),
    "unbound": render.UnboundContext(("192.0.2.53", "192.0.2.54:5353"), ""),
    "pgbouncer": render.PgbouncerContext("postgres", 5432, "mailsys", "s3cret", 6432, "/etc/pgbouncer"),
    "prometheus": render.PrometheusContext(
        interval=30,
        alert_for=None,
        dovecot_host="dovecot",
        dovecot_port=9900,
        rspamd_host="rspamd",
        rspamd_port=11334,
        rspamd_password="m3trics",
        exporters=render.EXPORTERS,
        tls_targets=("postfix:465", "dovecot:993", "web:8443"),
        prober=render.PROBER,
    ),
    "rspamd": render.RspamdContext(
        11332,
        "/var/lib/vmm/dkim",
        "10.53.53.2",
        2,
        "valkey:6379",
        300,
        ("10.1.2.0/26",),
        "m3trics",
        "0ff",
        11334,
    ),
}


@pytest.mark.parametrize("service", sorted(CONTEXTS))
def test_rendered_configs_match_the_golden_files(service: str, tmp_path: Path) -> None:
    written = render.render(service, CONTEXTS[service], tmp_path, TEMPLATES)
    assert written
    golden_dir = GOLDEN / service
    for path in written:
        relative = path.relative_to(tmp_path)
        golden = golden_dir / relative
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(path.read_text())
        assert path.read_text() == golden.read_text(), f"{service}/{relative} differs"
        assert path.stat().st_mode & 0o777 == 0o640
    expected = {p.relative_to(golden_dir) for p in golden_dir.rglob("*") if p.is_file()}
    assert {p.relative_to(tmp_path) for p in written} == expected


def _rendered(service: str, role: str, name: str, tmp_path: Path) -> str:
    """``name`` of ``service`` as rendered for a stack whose Dovecot has ``role``."""
    context = CONTEXTS[service]
    assert isinstance(context, render.PostfixContext | render.DovecotContext)
    common: render.Common = {**COMMON, "dovecot_role": role}
    render.render(service, dataclasses.replace(context, common=common), tmp_path, TEMPLATES)
    return (tmp_path / name).read_text()


def test_the_proxy_tier_routes_logins_and_deliveries_to_backends(tmp_path: Path) -> None:
    proxy = _rendered("dovecot", "proxy", "dovecot.conf", tmp_path / "proxy")
    assert "lmtp_proxy = yes" in proxy
    assert "FROM dovecot_proxy('%{user|username}', '%{user|domain}', '%{protocol}')" in proxy
    assert "pass = %{password}" in proxy
    # It holds no mail: no userdb, no quota-status, and Postfix does not ask for one.
    assert "userdb sql" not in proxy and "service quota-status" not in proxy
    quota_status = f"check_policy_service inet:dovecot:{COMMON['quota_status_port']}"
    assert quota_status not in _rendered("postfix", "proxy", "main.cf", tmp_path / "postfix")
    assert quota_status in _rendered("postfix", "single", "main.cf", tmp_path / "postfix-single")
    single = _rendered("dovecot", "single", "dovecot.conf", tmp_path / "single")
    assert "lmtp_proxy" not in single and "service quota-status" in single


def test_a_backend_takes_logins_from_the_proxies_without_tls(tmp_path: Path) -> None:
    backend = _rendered("dovecot", "backend", "dovecot.conf", tmp_path)
    assert "auth_allow_cleartext = yes" in backend
    assert "login_trusted_networks = 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16" in backend
    assert "FROM dovecot_password(" in backend and "FROM dovecot_user(" in backend


def test_only_proxies_and_backends_serve_doveadm_for_usermove(tmp_path: Path) -> None:
    for role in ("proxy", "backend"):
        config = _rendered("dovecot", role, "dovecot.conf", tmp_path / role)
        assert "doveadm_password = d0veadm" in config and "port = 8080" in config
    assert "doveadm" not in _rendered("dovecot", "single", "dovecot.conf", tmp_path / "single")


def test_partials_are_not_written(tmp_path: Path) -> None:
    written = render.render("postfix", CONTEXTS["postfix"], tmp_path, TEMPLATES)
    assert not [path for path in written if path.name.startswith("_")]
    assert (tmp_path / "sql" / "virtual_alias_maps.cf").read_text().count("password = s3cret") == 1


def test_rendered_files_are_old_enough_that_postfix_reads_them_once(tmp_path: Path) -> None:
    # Postfix rereads a main.cf younger than two seconds every 300 ms until it is older.
    written = render.render("postfix", CONTEXTS["postfix"], tmp_path, TEMPLATES)
    assert all(time.time() - path.stat().st_mtime >= 2 for path in written)


def test_a_missing_value_fails_the_render(tmp_path: Path) -> None:
    (tmp_path / "templates" / "broken").mkdir(parents=True)
    (tmp_path / "templates" / "broken" / "x.conf.j2").write_text("port = {{ no_such_value }}\n")
    with pytest.raises(UndefinedError):
        render.render("broken", render.PostgresContext(), tmp_path / "out", tmp_path / "templates")


@pytest.mark.parametrize(("setting", "action"), [("", "tempfail"), ("defer", "tempfail"), ("pass", "accept")])
def test_the_filter_failure_setting_decides_postfixs_milter_default_action(
    setting: str, action: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VMM_FILTER_FAILURE", setting)
    (tmp_path / "secrets" / "postfix").mkdir(parents=True)
    (tmp_path / "secrets" / "postfix" / "password").write_text("pw\n")
    monkeypatch.setenv("VMM_SECRETS_DIR", str(tmp_path / "secrets"))
    context = render.context_for("postfix", Runtime.from_env())
    render.render("postfix", context, tmp_path / "out", TEMPLATES)
    assert f"milter_default_action = {action}\n" in (tmp_path / "out" / "main.cf").read_text()


@pytest.mark.parametrize(("cores", "scanners"), [(1, 1), (2, 1), (5, 1), (6, 2), (16, 4)])
def test_rspamd_scans_in_one_process_per_five_cores(
    cores: int, scanners: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    (tmp_path / "secrets" / "metrics").mkdir(parents=True)
    (tmp_path / "secrets" / "metrics" / "password").write_text("pw\n")
    monkeypatch.setenv("VMM_SECRETS_DIR", str(tmp_path / "secrets"))
    render.render("rspamd", render.context_for("rspamd", Runtime.from_env()), tmp_path / "out", TEMPLATES)
    assert f"count = {scanners};\n" in (tmp_path / "out" / "local.d" / "worker-proxy.inc").read_text()


def test_an_unknown_filter_failure_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMM_FILTER_FAILURE", "drop")
    with pytest.raises(InvalidValue, match="VMM_FILTER_FAILURE must be one of defer, pass"):
        Runtime.from_env()


def test_an_unknown_dovecot_role_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMM_DOVECOT_ROLE", "director")
    with pytest.raises(InvalidValue, match="VMM_DOVECOT_ROLE must be one of single, proxy, backend"):
        Runtime.from_env()


def test_a_relayhost_takes_all_mail_over_tls_with_its_login(tmp_path: Path) -> None:
    postfix = CONTEXTS["postfix"]
    assert isinstance(postfix, render.PostfixContext)
    relayed = dataclasses.replace(postfix, relayhost="[smtp.provider.example]:587", relay_login="me:s3cret")
    render.render("postfix", relayed, tmp_path, TEMPLATES)
    main = (tmp_path / "main.cf").read_text()
    assert "relayhost = [smtp.provider.example]:587" in main
    assert "smtp_tls_security_level = encrypt" in main and "smtp_tls_security_level = dane" not in main
    assert (tmp_path / "relay_login").read_text() == "[smtp.provider.example]:587 me:s3cret\n"


@pytest.mark.parametrize(
    ("given", "relayhost"),
    [
        ("smtp.provider.example:587", "[smtp.provider.example]:587"),
        ("[smtp.provider.example]:587", "[smtp.provider.example]:587"),
        ("smtp.provider.example", "[smtp.provider.example]"),
        ("", ""),
    ],
)
def test_relayhost_takes_postfix_and_plain_forms(
    monkeypatch: pytest.MonkeyPatch, given: str, relayhost: str
) -> None:
    monkeypatch.setenv("VMM_RELAYHOST", given)
    assert Runtime.from_env().relayhost == relayhost


def test_a_malformed_relayhost_or_login_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMM_RELAYHOST", "smtp provider:587")
    with pytest.raises(InvalidValue, match="VMM_RELAYHOST must be host or host:port"):
        Runtime.from_env()
    monkeypatch.setenv("VMM_RELAYHOST", "smtp.provider.example:587")
    login = tmp_path / "login"
    login.write_text("no-colon-here\n")
    monkeypatch.setenv("VMM_RELAYHOST_LOGIN_FILE", str(login))
    with pytest.raises(InvalidValue, match="user:password"):
        Runtime.from_env().relay_login()
