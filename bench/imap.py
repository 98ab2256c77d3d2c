"""Metric 4: IMAP logins per second (login, SELECT INBOX, logout over TLS, 20 parallel
clients) against a plain Dovecot 2.4 that reads the same hashes from a passwd-file."""

from __future__ import annotations

import imaplib
import threading
import time
from pathlib import Path

from passlib.hash import bcrypt

import vmm.passwords  # noqa: F401 (quiets passlib's logger as the CLI does)
from bench.stack import run, sql, start_container
from tests.mail import tls_context

CLIENTS = 20
REFERENCE = "vmmbench-dovecot"
_CONFIG = """dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
protocols = imap
listen = *
log_path = /dev/stderr
ssl = yes
ssl_server_cert_file = /etc/vmm/tls/cert.pem
ssl_server_key_file = /etc/vmm/tls/key.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
auth_username_chars =
first_valid_uid = 70000
mail_driver = maildir
mail_path = ~/Maildir
passdb passwd-file {
  passwd_file_path = /etc/dovecot/users
}
userdb passwd-file {
  passwd_file_path = /etc/dovecot/users
}
"""


def logins_per_second(port: int, users: list[tuple[str, str]], seconds: float = 10) -> float:
    context = tls_context()
    done = [0] * CLIENTS
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        n = index
        while time.monotonic() < deadline:
            user, password = users[n % len(users)]
            n += CLIENTS
            connection = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=30)
            connection.login(user, password)
            connection.select("INBOX")
            connection.logout()
            done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def bench_hashes() -> list[tuple[str, str]]:
    """(address, hash) of the bench accounts, as the stack stores them."""
    rows = sql(
        "SELECT u.local_part || '@bench.example', u.passwd FROM users u"
        " JOIN domain_name n ON n.gid = u.gid AND n.domainname = 'bench.example'"
        " WHERE u.local_part ~ '^u[0-9]+$'"
    )
    return [(address, hashed) for address, hashed in rows]


def reference(scratch: Path, tls_volume: str, password: str, seconds: float = 10) -> float:
    """The same clients against Dovecot with a passwd-file of the same hashes."""
    hashes = bench_hashes()
    (scratch / "dovecot.conf").write_text(_CONFIG)
    (scratch / "users").write_text(
        "".join(f"{address}:{hashed}:70000:70000::/srv/ref/{address}::\n" for address, hashed in hashes)
    )
    start_container(
        REFERENCE,
        "-p",
        "127.0.0.1::993",
        "-v",
        f"{tls_volume}:/etc/vmm/tls:ro",
        "-v",
        f"{scratch}:/bench:ro",
        "--entrypoint",
        "sh",
        "vmm-dovecot",
        "-c",
        "set -e; cp /bench/dovecot.conf /bench/users /etc/dovecot/; mkdir -p /srv/ref;"
        " chown 70000:70000 /srv/ref; exec dovecot -F -c /etc/dovecot/dovecot.conf",
    )
    try:
        port = int(run("docker", "port", REFERENCE, "993").split()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while True:
            try:
                imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls_context(), timeout=5).logout()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        return logins_per_second(port, [(address, password) for address, _ in hashes], seconds)
    finally:
        run("docker", "rm", "-f", REFERENCE, check=False)


def hash_cost_ms(stored: str, password: str, rounds: int = 5) -> float:
    """What one check of the default scheme costs here (passlib's bcrypt, as Dovecot's)."""
    value = stored.partition("}")[2]
    started = time.monotonic()
    for _ in range(rounds):
        bcrypt.verify(password, value)
    return (time.monotonic() - started) / rounds * 1000
