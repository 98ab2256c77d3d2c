"""The whole stack from compose.yaml, under its own project name and on random
loopback ports, with named wait helpers. Every test module gets a fresh stack."""

from __future__ import annotations

import base64
import email
import imaplib
import ipaddress
import os
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter
from testcontainers.compose import DockerCompose

from tests.mail import tls_context

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "SMTP": 25,
    "SUBMISSIONS": 465,
    "SUBMISSION": 587,
    "IMAP": 143,
    "IMAPS": 993,
    "POP3": 110,
    "POP3S": 995,
    "SIEVE": 4190,
    "HTTP": 8080,
    "HTTPS": 8443,
    "PROMETHEUS": 9090,
}
SERVICE_OF_PORT = {
    25: "postfix",
    465: "postfix",
    587: "postfix",
    8080: "web",
    8443: "web",
    9090: "prometheus",
}


class ManageSieve:
    """A ManageSieve (RFC 5804) session, past STARTTLS: commands and their answers."""

    def __init__(self, port: int) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._reader = raw.makefile("rb")
        self._response()  # the capabilities
        raw.sendall(b"STARTTLS\r\n")
        assert self._response()[0], "STARTTLS refused"
        self._socket = tls_context().wrap_socket(raw)
        self._reader = self._socket.makefile("rb")
        self._response()  # the capabilities again, now with SASL

    def __enter__(self) -> ManageSieve:
        return self

    def __exit__(self, *_: object) -> None:
        self._socket.close()

    def command(self, line: str, literal: str | None = None) -> tuple[bool, str]:
        """Send a command (with a non-synchronising literal); (OK?, the whole answer)."""
        data = line.encode()
        if literal is not None:
            body = literal.encode()
            data += b" {%d+}\r\n" % len(body) + body
        self._socket.sendall(data + b"\r\n")
        return self._response()

    def authenticate(self, user: str, password: str) -> bool:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"')[0]

    def _response(self) -> tuple[bool, str]:
        lines = []
        while True:
            line = self._reader.readline().decode()
            assert line, "ManageSieve closed the connection"
            if line.rstrip().endswith("}") and "{" in line:  # a literal follows
                size = int(line.rstrip()[line.rindex("{") + 1 : -1].rstrip("+"))
                line += self._reader.read(size).decode()
            lines.append(line)
            if line.startswith(("OK", "NO", "BYE")):
                return line.startswith("OK"), "".join(lines)


@dataclass
class Stack:
    compose: DockerCompose
    project: str
    env: dict[str, str]  # what the module set for its stack (STACK_ENV)
    net: str  # the first three octets of the stack's /24 (VMM_TEST_NET)

    def port(self, container_port: int) -> int:
        service = SERVICE_OF_PORT.get(container_port, "dovecot")
        port = self.compose.get_service_port(service, container_port)
        assert port is not None, f"{service} does not publish {container_port}"
        return int(port)

    def _compose(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args],
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **(env or {})},
        )

    def vmm(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose run --rm vmm ...`, the way a postmaster runs it; ``env`` sets
        compose variables (e.g. VMM_ALLOW_WEAK_SCHEMES) for this one command."""
        return self._compose("run", "--rm", "-T", "vmm", *args, stdin=stdin, env=env)

    def vmm_ok(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        result = self.vmm(*args, stdin=stdin, env=env)
        assert result.returncode == 0, f"vmm {' '.join(args)}: {result.stderr}"
        return result.stdout

    def compose_ok(self, *args: str) -> None:
        """A ``docker compose`` command on this stack (stop, start, ...) that must succeed."""
        result = self._compose(*args)
        assert result.returncode == 0, result.stderr

    def exec(self, service: str, *command: str) -> tuple[str, str, int]:
        """A command inside a running service: (stdout, stderr, exit code)."""
        return self.exec_input(None, service, *command)

    def exec_input(self, stdin: str | None, service: str, *command: str) -> tuple[str, str, int]:
        result = self._compose("exec", "-T", service, *command, stdin=stdin)
        return result.stdout, result.stderr, result.returncode

    def psql_as(self, role: str, sql: str) -> tuple[str, str, int]:
        """SQL as one of the stack's roles, with its generated password, over TCP as the
        daemons connect: (stdout, stderr, exit code)."""
        return self.exec(
            "postgres",
            "sh",
            "-c",
            f'PGPASSWORD="$(cat /run/vmm-secrets/{role}/password)" '
            f'psql -h 127.0.0.1 -U {role} -d mailsys -v ON_ERROR_STOP=1 -Atc "$0"',
            sql,
        )

    def smtp(self, container_port: int = 25) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port(container_port), timeout=30)
        client.ehlo("client.example")
        return client

    def imap_login(self, user: str, password: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port(143), timeout=30)
        try:
            client.starttls(ssl_context=tls_context())
            client.login(user, password)
        except imaplib.IMAP4.error:
            client.shutdown()
            raise
        return client

    def managesieve(self) -> ManageSieve:
        return ManageSieve(self.port(4190))

    def managesieve_login(self, user: str, password: str) -> bool:
        """STARTTLS, then AUTHENTICATE PLAIN on ManageSieve (RFC 5804): accepted?"""
        with self.managesieve() as session:
            return session.authenticate(user, password)

    def add_account(self, address: str, password: str) -> None:
        self.vmm_ok("useradd", address, "--password-stdin", stdin=password + "\n")

    def add_domain(self, domain: str) -> None:
        """A domain without the automatic postmaster account; domain.auto_postmaster is
        what it was afterwards (one container for the three commands)."""
        script = (
            'before=$(vmm configget domain.auto_postmaster | sed "s/.* = //")\n'
            "vmm configset domain.auto_postmaster false\n"
            'vmm domainadd "$1"; added=$?\n'
            'vmm configset domain.auto_postmaster "$before" && exit $added\n'
        )
        result = self._compose("run", "--rm", "-T", "--entrypoint", "sh", "vmm", "-c", script, "sh", domain)
        assert result.returncode == 0, f"vmm domainadd {domain}: {result.stderr}"

    def publish(self, zone_lines: str) -> None:
        """Add records (zone-file lines with absolute names) to the stack's DNS, and let
        the stack's resolver forget what it cached of the zone."""
        _, stderr, code = self.exec_input(zone_lines, "dns", "publish")
        assert code == 0, stderr
        self.resolver_control("flush_zone", "test")

    def resolver_control(self, *command: str) -> None:
        """``unbound-control COMMAND`` in the stack's resolver (flush_zone, flush_infra)."""
        _, stderr, code = self.exec(
            "resolver", "unbound-control", "-c", "/etc/unbound/vmm/unbound.conf", *command
        )
        assert code == 0, stderr

    def gateway(self) -> str:
        """The address mail from this host arrives from: the stack network's gateway."""
        return f"{self.net}.1"

    def client_address(self, host: int) -> str:
        """A fixed address on the stack's network above the .0/26 that Docker's own
        containers take (dns.yaml), so not exempt from the limits."""
        assert 64 <= host <= 126
        return f"{self.net}.{host}"

    def client(self, host: int, script: str, timeout: float = 120) -> str:
        """Run a Python ``script`` in a container of its own at ``client_address(host)``
        on the stack's network, as a client on the internet would connect: the stack
        sees that address, not this host's gateway. Returns what it printed."""
        result = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--name",
                f"{self.project}-client-{host}",
                "--network",
                f"{self.project}_default",
                "--ip",
                self.client_address(host),
                "--entrypoint",
                "python3",
                "vmm-base",
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def dns_address(self) -> str:
        """The stack's DNS container (tests/e2e/dns.yaml), reachable from this host."""
        return f"{self.net}.53"

    def postmap(self, table: str, key: str) -> str:
        """What Postfix's own lookup of ``key`` in one of its SQL tables answers."""
        stdout, _, _ = self.exec("postfix", "postmap", "-q", key, f"pgsql:/etc/postfix/sql/{table}.cf")
        return stdout.strip()

    def send(self, sender: str, recipients: list[str], message: bytes) -> None:
        with self.smtp() as client:
            refused = client.sendmail(sender, recipients, message)
        assert refused == {}, refused

    def submit(self, login: str, password: str, recipients: list[str], message: bytes) -> None:
        """Send as a logged-in user on 587 (after STARTTLS), from the login's address."""
        with self.smtp(587) as client:
            client.starttls(context=tls_context())
            client.ehlo("client.example")
            client.login(login, password)
            refused = client.sendmail(login, recipients, message)
        assert refused == {}, refused

    def rcpt(self, recipient: str, size: int | None = None) -> tuple[int, bytes]:
        """The server's answer to RCPT TO (after MAIL FROM, with SIZE= when given)."""
        with self.smtp() as client:
            client.mail("sender@sender.example", [f"SIZE={size}"] if size else [])
            return client.rcpt(recipient)


def mail_log(stack: Stack, service: str = "postfix") -> str:
    stdout, _ = stack.compose.get_logs(service)
    return str(stdout)


def wait_for_log(stack: Stack, text: str, timeout: float = 30, service: str = "postfix") -> str:
    """The log of ``service`` (Postfix's by default) once it holds ``text``."""
    deadline = time.monotonic() + timeout
    while text not in (log := mail_log(stack, service)):
        assert time.monotonic() < deadline, f"{text!r} not in the {service} log"
        time.sleep(0.3)
    return log


def rspamd_verdict(stack: Stack, sent: bytes) -> str:
    """rspamd's log line for the message ``sent`` (found by its Message-ID)."""
    message_id = str(email.message_from_bytes(sent)["Message-ID"])
    log = wait_for_log(stack, f"id: {message_id}", service="rspamd")
    return next(line for line in log.splitlines() if f"id: {message_id}" in line)


def wait_until_delivered(
    stack: Stack, user: str, password: str, count: int = 1, timeout: float = 30, folder: str = "INBOX"
) -> list[bytes]:
    """The messages in ``folder`` (INBOX) of ``user`` once there are ``count``, polled over
    IMAP; a folder that does not exist yet counts as empty."""
    deadline = time.monotonic() + timeout
    while True:
        client = stack.imap_login(user, password)
        try:
            status, _ = client.select(folder, readonly=True)
            numbers = client.search(None, "ALL")[1][0].split() if status == "OK" else []
            if len(numbers) >= count:
                messages = []
                for number in numbers:
                    _, fetched = client.fetch(number, "(BODY.PEEK[])")
                    item = fetched[0]
                    assert isinstance(item, tuple)
                    messages.append(item[1])
                return messages
        finally:
            client.logout()
        assert time.monotonic() < deadline, f"{count} message(s) for {user} not delivered"
        time.sleep(0.3)


def inbox_state(stack: Stack, address: str, password: str) -> tuple[bytes, dict[str, tuple[int, bytes]]]:
    """The INBOX over IMAP: its UIDVALIDITY, and each message's UID and flags by its
    Subject."""
    client = stack.imap_login(address, password)
    try:
        client.select("INBOX")
        [validity] = client.response("UIDVALIDITY")[1]
        _, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    finally:
        client.logout()
    found = {}
    for item in data:
        if isinstance(item, tuple):
            meta, header = item
            uid = int(meta.split(b"UID ")[1].split()[0])
            flags = meta.split(b"FLAGS (")[1].split(b")")[0]
            found[header.decode().strip().removeprefix("Subject: ")] = (uid, flags)
    assert validity is not None
    return validity, found


def free_subnet() -> str:
    """The first three octets of a 10.x.y.0/24 no Docker network uses yet."""
    networks = subprocess.run(
        ["docker", "network", "ls", "-q"], capture_output=True, text=True, check=True
    ).stdout.split()
    listed = subprocess.run(
        ["docker", "network", "inspect", *networks, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    used = [ipaddress.ip_network(subnet) for subnet in listed]
    for second in range(200, 255):
        for third in range(0, 256, 7):
            candidate = ipaddress.ip_network(f"10.{second}.{third}.0/24")
            if not any(candidate.overlaps(network) for network in used):
                return f"10.{second}.{third}"
    raise RuntimeError("no free 10.x.y.0/24 for a test stack")


@contextmanager
def compose_stack(name: str, extra: dict[str, str], files: list[str]) -> Iterator[Stack]:
    """A stack of its own: project name, volumes, subnet, random loopback ports. Its
    docker compose calls see it through the environment while it is the newest."""
    saved = dict(os.environ)
    os.environ["COMPOSE_PROJECT_NAME"] = project = f"vmmtest-{name}-{os.getpid()}"
    os.environ.update(extra)
    # An empty host port publishes on a random free port of 127.0.0.1.
    os.environ.update({f"VMM_PORT_{port}": "" for port in PORTS})
    os.environ["VMM_TEST_NET"] = net = free_subnet()
    os.environ["VMM_RESOLVER_SUBNET"] = f"{net}.192/28"
    os.environ["VMM_RESOLVER_ADDRESS"] = f"{net}.194"
    os.environ["VMM_RESOLVER_CLIENTS"] = f"{net}.200/29"
    # Every stack has its own DNS (dns.yaml) and the session's Hyperscan cache
    # (hyperscan.yaml), plus the module's files (STACK_FILES).
    os.environ["COMPOSE_FILE"] = ":".join(
        ["compose.yaml", "tests/e2e/dns.yaml", "tests/e2e/hyperscan.yaml", *files]
    )
    compose = DockerCompose(ROOT, wait=True)
    try:
        compose.start()
        yield Stack(compose, project, dict(extra), net)
    finally:
        compose.stop(down=True)
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def hyperscan_cache() -> Iterator[str]:
    """The volume in which the session's rspamd instances share their compiled Hyperscan
    databases (tests/e2e/hyperscan.yaml): the first stack compiles them, in about 20 s."""
    name = f"vmmtest-hyperscan-{os.getpid()}"
    subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
    os.environ["VMM_TEST_HYPERSCAN"] = name
    yield name
    del os.environ["VMM_TEST_HYPERSCAN"]
    subprocess.run(["docker", "volume", "rm", name], check=True, capture_output=True)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The module's stack. A module may set STACK_ENV (a dict, or a function of a
    temporary directory) and STACK_FILES (compose overlays, e.g. a small mail volume)."""
    module = request.module.__name__.rpartition(".")[2].replace("_", "-")
    extra = getattr(request.module, "STACK_ENV", {})
    if callable(extra):
        extra = extra(tmp_path_factory.mktemp(module))
    with compose_stack(module, extra, getattr(request.module, "STACK_FILES", [])) as started:
        yield started


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """The fault report: one row per scenario, every message accounted for."""
    from tests.e2e import faults

    if faults.REPORT:
        terminalreporter.write_sep("=", "fault report (messages)")
        terminalreporter.write_line(faults.table())
