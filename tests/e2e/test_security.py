"""Nobody in: TLS on every port with the postmaster's own certificate, authentication
only over TLS, senders bound to their logins, no relaying, least privilege in the
database and the daemons, injection-proof lookups, and passwords in no log."""

from __future__ import annotations

import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, wait_for_log, wait_until_delivered
from tests.mail import message, tls_context

# The TLS tests offer TLS 1.1 on purpose, to see the server refuse it.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
PW = "S3cure!pw-alice"
HOSTNAME = "mail.custom.test"


def STACK_ENV(directory: Path) -> dict[str, str]:
    """This module's stack serves a certificate the postmaster supplied."""
    _self_signed(directory, HOSTNAME)
    return {"VMM_TLS_DIR": str(directory), "VMM_HOSTNAME": HOSTNAME}


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> Stack:
    stack.add_domain("secure.example")
    stack.add_account("alice@secure.example", PW)
    stack.add_account("bob@secure.example", "B0b's-own-pw")
    stack.vmm_ok("aliasadd", "team@secure.example", "alice@secure.example")
    return stack


# TLS -----------------------------------------------------------------------------------


def _read_until(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    data = b""
    while not done(data):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def _starttls(sock: socket.socket, protocol: str) -> None:
    """Speak the protocol up to the point where the TLS handshake starts."""
    lines = lambda data: data.endswith(b"\r\n")  # noqa: E731
    if protocol == "smtp":
        _read_until(sock, lines)
        sock.sendall(b"EHLO client.example\r\n")
        assert b"STARTTLS" in _read_until(sock, lambda d: b"\r\n250 " in d or d.startswith(b"250 "))
        sock.sendall(b"STARTTLS\r\n")
        assert _read_until(sock, lines).startswith(b"220")
    elif protocol == "imap":
        _read_until(sock, lines)
        sock.sendall(b"a STARTTLS\r\n")
        assert b"a OK" in _read_until(sock, lambda d: b"a OK" in d or b"a NO" in d)
    elif protocol == "pop3":
        _read_until(sock, lines)
        sock.sendall(b"STLS\r\n")
        assert _read_until(sock, lines).startswith(b"+OK")
    elif protocol == "sieve":
        greeting = _read_until(sock, lambda d: b"\r\nOK" in d or d.startswith(b"OK"))
        assert b'"STARTTLS"' in greeting
        sock.sendall(b"STARTTLS\r\n")
        assert _read_until(sock, lines).startswith(b"OK")


def _context(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = tls_context()
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions
    return context


def _handshake(port: int, protocol: str | None, version: ssl.TLSVersion) -> bytes | None:
    """The server's certificate (DER) if a handshake at exactly ``version`` succeeds."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        if protocol:
            _starttls(sock, protocol)
        try:
            with _context(version).wrap_socket(sock) as tls:
                return tls.getpeercert(binary_form=True)
        except (ssl.SSLError, ConnectionError, OSError):
            return None


def _self_signed(directory: Path, common_name: str) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_this_client_can_speak_tls_1_1(tmp_path: Path) -> None:
    """Guard for the next test: a refusal must come from the server, not this client."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*_self_signed(tmp_path, "localhost"))
    server_context.minimum_version = ssl.TLSVersion.TLSv1_1
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve)
        thread.start()
        assert _handshake(listener.getsockname()[1], None, ssl.TLSVersion.TLSv1_1) is not None
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("port", "protocol"),
    [
        (25, "smtp"),
        (587, "smtp"),
        (143, "imap"),
        (110, "pop3"),
        (4190, "sieve"),
        (465, None),
        (993, None),
        (995, None),
    ],
)
def test_every_port_speaks_tls_1_2_with_the_supplied_certificate_and_refuses_1_1(
    stack: Stack, port: int, protocol: str | None
) -> None:
    host_port = stack.port(port)
    supplied = ssl.PEM_cert_to_DER_cert((Path(stack.env["VMM_TLS_DIR"]) / "cert.pem").read_text())
    assert _handshake(host_port, protocol, ssl.TLSVersion.TLSv1_2) == supplied, f"TLS 1.2 on {port}"
    assert _handshake(host_port, protocol, ssl.TLSVersion.TLSv1_3) == supplied, f"TLS 1.3 on {port}"
    assert _handshake(host_port, protocol, ssl.TLSVersion.TLSv1_1) is None, f"TLS 1.1 on {port}"


# Authentication --------------------------------------------------------------------------


def test_plaintext_imap_and_pop3_logins_are_refused_before_starttls(accounts: Stack) -> None:
    client = imaplib.IMAP4("127.0.0.1", accounts.port(143), timeout=30)
    assert "LOGINDISABLED" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        client.login("alice@secure.example", PW)
    client.shutdown()
    pop = poplib.POP3("127.0.0.1", accounts.port(110), timeout=30)
    with pytest.raises(poplib.error_proto):
        pop.user("alice@secure.example")
        pop.pass_(PW)
    pop.close()


def test_a_failed_login_is_delayed(accounts: Stack) -> None:
    with imaplib.IMAP4_SSL("127.0.0.1", accounts.port(993), ssl_context=tls_context()) as client:
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error):
            client.login("alice@secure.example", "wrong")
        waited = time.monotonic() - started
    # Dovecot's auth_failure_delay (2 s) counts whole seconds, checked every 0.5 s: the
    # reply comes between 1 and 2.5 s after the failure (1.07 s seen). A lower bound, so
    # that a busy machine cannot break it.
    assert waited > 1


def _submit_as(stack: Stack, login: str, password: str, sender: str) -> tuple[int, bytes]:
    with stack.smtp(587) as client:
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        client.login(login, password)
        code, reply = client.mail(sender)
        if code == 250:
            code, reply = client.rcpt("bob@secure.example")
        return code, reply


def test_authenticated_users_send_only_as_their_own_addresses(accounts: Stack) -> None:
    assert _submit_as(accounts, "alice@secure.example", PW, "alice@secure.example")[0] == 250
    assert _submit_as(accounts, "alice@secure.example", PW, "team@secure.example")[0] == 250
    for foreign in ("bob@secure.example", "ceo@outside.example", "alice@outside.example"):
        code, reply = _submit_as(accounts, "alice@secure.example", PW, foreign)
        assert code == 553 and b"not owned by user" in reply, foreign


def test_submission_reaches_the_recipient(accounts: Stack) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", accounts.port(465), context=tls_context(), timeout=30) as client:
        client.ehlo("client.example")
        client.login("alice@secure.example", PW)
        client.sendmail(
            "alice@secure.example",
            ["bob@secure.example"],
            message("bob@secure.example", sender="alice@secure.example"),
        )
    assert len(wait_until_delivered(accounts, "bob@secure.example", "B0b's-own-pw")) >= 1


# Relay ----------------------------------------------------------------------------------

# RCPT probes only: DATA is never sent, and every "outside" host is reserved or a
# loopback literal, so even a broken relay could not send a byte off this machine.
RELAY_ATTEMPTS = [
    "victim@outside.example",
    "Victim@OUTSIDE.EXAMPLE",
    "victim@outside.example.",
    "victim%outside.example@secure.example",
    "victim%outside.example@[127.0.0.2]",
    "victim@outside.example@secure.example",
    "@secure.example:victim@outside.example",
    "@[127.0.0.2]:victim@outside.example",
    "outside.example!victim@secure.example",
    "outside.example!victim",
    '"victim@outside.example"@secure.example',
    '"victim%outside.example"@secure.example',
    "victim@[127.0.0.2]",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@[IPv6:::ffff:127.0.0.2]",
    "victim@sub.secure.example",
    "victim@secure.example.outside.example",
    "victim@localhost",
    "victim@mail.custom.test",
    "victim",
    "postmaster@outside.example",
]


def test_relay_attempts_without_auth_are_all_refused(accounts: Stack) -> None:
    accepted = []
    for recipient in RELAY_ATTEMPTS:
        # One session each: Postfix drops a client after smtpd_hard_error_limit errors.
        with accounts.smtp() as client:
            client.mail("sender@sender.example")
            code, _ = client.docmd(f"RCPT TO:<{recipient}>")
        if code < 400:
            accepted.append(recipient)
    assert len(RELAY_ATTEMPTS) >= 20
    assert accepted == []


def test_the_docker_network_is_not_trusted(accounts: Stack) -> None:
    """A client inside the stack's own network (here: the dovecot container) gets no
    relay either; nor does the gateway address host connections arrive from."""
    probe = (
        "import smtplib\n"
        "c = smtplib.SMTP('postfix', 25, timeout=20); c.ehlo('inside.example')\n"
        "c.mail('sender@sender.example')\n"
        "print(c.rcpt('victim@outside.example')[0])\n"
    )
    stdout, stderr, code = accounts.exec("dovecot", "python3", "-c", probe)
    assert code == 0, stderr
    assert int(stdout.strip()) >= 500
    mynetworks, _, _ = accounts.exec("postfix", "postconf", "-h", "mynetworks")
    assert mynetworks.split() == ["127.0.0.0/8", "[::1]/128"]


# Least privilege ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["postfix", "dovecot", "web"])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM users",
        "UPDATE users SET passwd = 'x'",
        "INSERT INTO settings VALUES ('a', 'b')",
        "DELETE FROM alias",
        "CREATE TABLE evil (id int)",
        "SELECT * FROM pg_catalog.pg_authid",
    ],
)
def test_daemon_roles_cannot_read_tables_or_write(accounts: Stack, role: str, sql: str) -> None:
    _, stderr, code = accounts.psql_as(role, sql)
    assert code != 0 and "permission denied" in stderr, stderr


def test_daemon_roles_can_call_their_lookups(accounts: Stack) -> None:
    lookup = "SELECT * FROM postfix_virtual_mailbox_domain('secure.example')"
    out, _, code = accounts.psql_as("postfix", lookup)
    assert code == 0 and out.strip() == "OK"
    foreign = "SELECT * FROM dovecot_user('alice', 'secure.example')"
    _, stderr, code = accounts.psql_as("postfix", foreign)
    assert code != 0 and "permission denied" in stderr


def test_postgres_is_not_published(accounts: Stack) -> None:
    result = subprocess.run(
        ["docker", "compose", "port", "postgres", "5432"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0 or result.stdout.strip() in ("", ":0")


def _process_owners(stack: Stack, service: str) -> dict[str, set[str]]:
    script = (
        "import os, pwd\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        name = open(f'/proc/{pid}/comm').read().strip()\n"
        "        uid = int(next(l for l in open(f'/proc/{pid}/status') if l.startswith('Uid:')).split()[1])\n"
        "    except OSError:\n"
        "        continue\n"
        "    try: user = pwd.getpwuid(uid).pw_name\n"
        "    except KeyError: user = str(uid)\n"
        "    print(name, user)\n"
    )
    stdout, stderr, code = stack.exec(service, "python3", "-c", script)
    assert code == 0, stderr
    owners: dict[str, set[str]] = {}
    for line in stdout.splitlines():
        name, user = line.rsplit(" ", 1)
        if name.startswith("runc") or name == "python3":
            continue  # docker exec's own helper and this probe
        owners.setdefault(name, set()).add(user)
    return owners


# The entrypoints' helpers in the background stay root and talk to nobody: the
# certificate watcher (images/base/vmm-tls-reload) reloads its daemon's master, and
# Postfix's log copy (images/postfix/vmm-maillog) reads postlogd's file (root's, 0600).
HELPERS = {"vmm-tls-reload", "vmm-maillog", "tail", "sleep"}


def test_daemons_drop_root(accounts: Stack) -> None:
    # Keep a client session open so that the per-connection processes exist.
    imap = accounts.imap_login("alice@secure.example", PW)
    with accounts.smtp() as smtp:
        postfix = _process_owners(accounts, "postfix")
        dovecot = _process_owners(accounts, "dovecot")
    imap.logout()
    assert postfix["smtpd"] == {"postfix"} and postfix["qmgr"] == {"postfix"}
    assert {name for name, users in postfix.items() if "root" in users} <= {"master", *HELPERS}
    assert dovecot["imap-login"] == {"dovenull"}
    assert all(uid.isdigit() and int(uid) >= 70000 for uid in dovecot["imap"]), dovecot["imap"]
    # The processes that talk to clients or to PostgreSQL run unprivileged. Dovecot's
    # master, config, log, anvil, and lmtp and quota-status (which switch to each
    # recipient's uid) keep root by design.
    assert dovecot["auth"] == {"dovecot"}  # runs the (asynchronous) PostgreSQL lookups
    assert dovecot.get("auth-worker", {"dovecot"}) == {"dovecot"}
    rooted = {name for name, users in dovecot.items() if "root" in users}
    assert rooted <= {"dovecot", "config", "log", "anvil", "lmtp", "quota-status", *HELPERS}, rooted
    postgres = _process_owners(accounts, "postgres")
    assert postgres["postgres"] == {"postgres"}
    assert _process_owners(accounts, "pgbouncer")["pgbouncer"] == {"postgres"}
    del smtp


def test_secrets_are_files_with_tight_modes_and_in_no_environment(accounts: Stack) -> None:
    stdout, _, code = accounts.exec("postgres", "sh", "-c", "stat -c '%a %U %n' /run/vmm-secrets/*/password")
    assert code == 0
    modes = [line.split()[:2] for line in stdout.splitlines()]
    # The database roles' and the doveadm service's (`vmm usermove`).
    assert len(modes) == 6 and all(mode == ["600", "root"] for mode in modes), stdout
    passwords = []
    for role in ("vmm", "postfix", "dovecot", "web", "metrics", "doveadm"):
        out, _, _ = accounts.exec("postgres", "cat", f"/run/vmm-secrets/{role}/password")
        passwords.append(out.strip())
    # Each daemon sees only its own password.
    out, _, code = accounts.exec("postfix", "ls", "/run/vmm-secrets")
    assert out.split() == ["postfix"]
    out, _, code = accounts.exec("postfix", "stat", "-c", "%a %U", "/etc/vmm/tls/key.pem")
    assert out.split() in (["600", "root"], ["640", "root"])
    compose_file = (Path(__file__).resolve().parents[2] / "compose.yaml").read_text()
    for service in ("postgres", "postfix", "dovecot"):
        inspect = subprocess.run(
            ["docker", "inspect", f"{accounts.project}-{service}-1", "--format", "{{json .Config.Env}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for password in passwords:
            assert len(password) >= 32
            assert password not in inspect and password not in compose_file


# Injection ------------------------------------------------------------------------------

INJECTIONS = [
    "x'; DROP TABLE users; --@secure.example",
    "alice'--@secure.example",
    "' OR '1'='1@secure.example",
    "alice@secure.example'; DELETE FROM alias; --",
    "%@secure.example",
    "alice\\@secure.example",
    "$(reboot)@secure.example",
]


def _database_digest(stack: Stack) -> str:
    return "".join(stack.vmm_ok(command, "--json") for command in ("listaddresses", "listdomains"))


def test_smtp_envelope_injection_changes_nothing(accounts: Stack) -> None:
    before = _database_digest(accounts)
    for address in INJECTIONS:
        with accounts.smtp() as client:
            code, _ = client.docmd(f"MAIL FROM:<{address}>")
            if code == 250:
                code, reply = client.docmd(f"RCPT TO:<{address}>")
                # Refused, or parsed as a plain address; never a broken lookup (4xx).
                assert code == 250 or code >= 500, (address, code, reply)
    assert _database_digest(accounts) == before
    # The lookups are still healthy.
    assert accounts.rcpt("alice@secure.example")[0] == 250


def test_cli_injection_is_refused_or_stored_literally(accounts: Stack) -> None:
    before = _database_digest(accounts)
    for address in INJECTIONS:
        if accounts.vmm("aliasadd", address, "alice@secure.example").returncode == 0:
            # A valid, if odd, address (RFC 5322 atext allows ' and -): stored as typed.
            info = json.loads(accounts.vmm_ok("aliasinfo", address, "--json"))
            assert info["alias"] == address.lower()
            accounts.vmm_ok("aliasdelete", address)
    assert _database_digest(accounts) == before
    note = "Robert'); DROP TABLE users; --"
    accounts.vmm_ok("usernote", "alice@secure.example", "-n", note)
    assert json.loads(accounts.vmm_ok("userinfo", "alice@secure.example", "--json"))["note"] == note


# Passwords stay secret ----------------------------------------------------------------


def test_passwords_appear_in_no_log_and_no_json(accounts: Stack) -> None:
    accounts.imap_login("alice@secure.example", PW).logout()
    with pytest.raises(imaplib.IMAP4.error):
        accounts.imap_login("alice@secure.example", "Wr0ng-but-secret")
    logs = subprocess.run(
        ["docker", "compose", "logs", "--no-color"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert "alice@secure.example" in logs  # the logs were read
    for secret in (PW, "Wr0ng-but-secret", "B0b's-own-pw"):
        assert secret not in logs
    info = accounts.vmm_ok("userinfo", "alice@secure.example", "--json")
    assert "{BLF-CRYPT}" not in info and PW not in info


# Sender binding -----------------------------------------------------------------------


def test_a_logged_in_user_cannot_send_with_the_null_sender(accounts: Stack) -> None:
    code, reply = _submit_as(accounts, "alice@secure.example", PW, "")
    assert code == 554 and b"not <>" in reply, reply


def test_a_logged_in_user_cannot_put_a_colleagues_address_in_from(accounts: Stack) -> None:
    forged = (
        b"From: Bob <bob@secure.example>\r\nTo: <bob@secure.example>\r\nSubject: pay this\r\n"
        b"Message-ID: <forged@secure.example>\r\n\r\nPlease pay.\r\n"
    )
    with smtplib.SMTP_SSL("127.0.0.1", accounts.port(465), context=tls_context(), timeout=30) as client:
        client.ehlo("client.example")
        client.login("alice@secure.example", PW)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@secure.example", ["bob@secure.example"], forged)
    assert refused.value.smtp_code == 554
    assert b"From header must be the sender address" in refused.value.smtp_error


@pytest.mark.parametrize("sender", ["alice@secure.example", "Alice@SECURE.example", "nobody@secure.example"])
def test_port_25_refuses_hosted_senders_without_a_login(accounts: Stack, sender: str) -> None:
    with accounts.smtp() as client:
        client.mail(sender)
        assert client.rcpt("bob@secure.example")[0] == 250
        code, reply = client.docmd("DATA")
    assert code == 554 and b"log in on port 465 or 587" in reply, reply


def test_port_25_takes_mail_from_outside_senders(accounts: Stack) -> None:
    with accounts.smtp() as client:
        client.mail("friend@sender.example")
        assert client.rcpt("bob@secure.example")[0] == 250


def test_vrfy_tells_nothing_about_accounts(accounts: Stack) -> None:
    with accounts.smtp() as client:
        assert client.verify("alice@secure.example")[0] == 502
        assert client.verify("nobody@secure.example")[0] == 502


# Cipher suites where TLS is required ----------------------------------------------------


def _suite_handshake(port: int, protocol: str | None, ciphers: str) -> bool:
    """Whether a TLS 1.2 handshake offering only ``ciphers`` succeeds."""
    context = _context(ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        if protocol:
            _starttls(sock, protocol)
        try:
            with context.wrap_socket(sock):
                return True
        except (ssl.SSLError, ConnectionError, OSError):
            return False


ANONYMOUS = "aNULL"
CBC_SHA1 = "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA"


def test_this_client_offers_anonymous_suites_that_port_25_takes(accounts: Stack) -> None:
    """Guard for the next test: opportunistic port 25 still takes any suite (RFC 7435),
    so a refusal on submission is the server's."""
    assert _suite_handshake(accounts.port(25), "smtp", ANONYMOUS)


@pytest.mark.parametrize(("port", "protocol"), [(587, "smtp"), (465, None)])
def test_submission_refuses_anonymous_and_cbc_sha1_suites(
    accounts: Stack, port: int, protocol: str | None
) -> None:
    assert not _suite_handshake(accounts.port(port), protocol, ANONYMOUS)
    assert not _suite_handshake(accounts.port(port), protocol, CBC_SHA1)
    assert _suite_handshake(accounts.port(port), protocol, "ECDHE-RSA-AES256-GCM-SHA384")


def _authenticate_plain(stack: Stack, name: str, password: str) -> bool:
    """IMAP AUTHENTICATE PLAIN: the name travels base64-encoded, whatever it holds."""
    client = imaplib.IMAP4("127.0.0.1", stack.port(143), timeout=30)
    client.starttls(ssl_context=tls_context())
    try:
        client.authenticate("PLAIN", lambda _: f"\0{name}\0{password}".encode())
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()


def test_login_names_with_characters_no_address_has_are_refused_before_a_lookup(accounts: Stack) -> None:
    for name in ('alice"@secure.example', "alice%@secure.example", "ali ce@secure.example"):
        assert not _authenticate_plain(accounts, name, PW)
        wait_for_log(accounts, "Username character disallowed by auth_username_chars", service="dovecot")
    # An address with the atext symbols vmm accepts still logs in.
    accounts.add_account("o'neil+x=y@secure.example", PW)
    assert _authenticate_plain(accounts, "o'neil+x=y@secure.example", PW)


# Isolation ------------------------------------------------------------------------------

# Tries to open a TCP connection to each "host:port" argument, by name and by every
# address that name has anywhere in the stack; prints the ones that connected.
CONNECT = """
import socket, sys
opened = []
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        opened.append(target)
    except OSError:
        pass
print(" ".join(opened))
"""


def _addresses(stack: Stack, service: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "inspect",
            f"{stack.project}-{service}-1",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_rspamd_reaches_neither_postgres_nor_dovecots_auth_lmtp_or_quota_service(accounts: Stack) -> None:
    internal = [
        ("postgres", 5432),
        ("pgbouncer", 6432),
        ("dovecot", 24),
        ("dovecot", 12345),
        ("dovecot", 12340),
    ]
    targets = [f"{service}:{port}" for service, port in internal]
    targets += [
        f"{address}:{port}" for service, port in internal for address in _addresses(accounts, service)
    ]
    assert len(targets) >= 10
    opened, stderr, code = accounts.exec("rspamd", "python3", "-c", CONNECT, *targets)
    assert code == 0, stderr
    assert opened.split() == []
    # The same probe does reach them from Postfix, which needs them: the probe works.
    opened, _, _ = accounts.exec("postfix", "python3", "-c", CONNECT, *targets[:5])
    assert opened.split() == targets[:5]


def test_only_rspamd_reaches_valkey(accounts: Stack) -> None:
    targets = ["valkey:6379", *(f"{address}:6379" for address in _addresses(accounts, "valkey"))]
    for service in ("postfix", "dovecot", "policy"):
        opened, stderr, code = accounts.exec(service, "python3", "-c", CONNECT, *targets)
        assert code == 0, stderr
        assert opened.split() == [], service
    opened, _, _ = accounts.exec("rspamd", "python3", "-c", CONNECT, *targets)
    assert opened.split() == targets


def test_postgres_takes_only_encrypted_logins(accounts: Stack) -> None:
    login = 'PGPASSWORD="$(cat /run/vmm-secrets/vmm/password)" psql -h 127.0.0.1 -U vmm -d mailsys -Atc "$0"'
    own_connection = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    out, _, code = accounts.exec("postgres", "sh", "-c", login, own_connection)
    assert code == 0 and out.strip() == "t"
    _, stderr, code = accounts.exec("postgres", "sh", "-c", f"PGSSLMODE=disable {login}", "SELECT 1")
    assert code != 0 and "no encryption" in stderr, stderr


# Hardened containers --------------------------------------------------------------------

DAEMONS = [
    "postgres",
    "pgbouncer",
    "valkey",
    "resolver",
    "rspamd",
    "postfix",
    "dovecot",
    "policy",
    "web",
]


@pytest.mark.parametrize("service", DAEMONS)
def test_every_daemon_runs_hardened(accounts: Stack, service: str) -> None:
    inspect = json.loads(
        subprocess.run(
            ["docker", "inspect", f"{accounts.project}-{service}-1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]["HostConfig"]
    assert inspect["CapDrop"] == ["ALL"]
    assert "NET_RAW" not in (inspect["CapAdd"] or []) and "MKNOD" not in (inspect["CapAdd"] or [])
    assert "no-new-privileges:true" in inspect["SecurityOpt"]
    assert inspect["Memory"] > 0 and inspect["PidsLimit"] > 0
    assert inspect["LogConfig"]["Config"].get("max-size") and inspect["LogConfig"]["Config"].get("max-file")
    # What the kernel says of the running daemon: no raw sockets, no device nodes.
    status, _, _ = accounts.exec(service, "cat", "/proc/1/status")
    bounding = int(next(line for line in status.splitlines() if line.startswith("CapBnd:")).split()[1], 16)
    cap_mknod, cap_net_raw = 27, 13
    assert not bounding & (1 << cap_mknod | 1 << cap_net_raw)
    assert "NoNewPrivs:\t1" in status
