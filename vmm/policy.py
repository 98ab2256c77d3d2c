"""The stack's policy service: what one client address and one login may do.

Two protocols, one process, so that every count lives in one place (and a third, the
relay of Postfix's SMTP AUTH to Dovecot, vmm/authrelay.py, which counts nothing):

- Dovecot's authentication policy (doc.dovecot.org, "Authentication Policy"), HTTP with
  JSON, asked before every login on IMAP, POP3 and ManageSieve, and on SMTP AUTH, which
  Postfix hands to Dovecot's auth service with the client's address. An address that
  fails too many logins in a window is refused on all of them for a while; a login name
  that keeps failing, from whatever addresses, is answered ever more slowly.
- Postfix's policy delegation (SMTPD_POLICY_README), asked by the submission ports for
  each recipient and at the end of each message: a login sends at most so many messages
  an hour and so many recipients a message (``vmm configset submission.*``); past either
  the answer is temporary (4xx), so that the mail client keeps the message.

The counts are kept in memory: a restart forgets them, which errs on the side of the
users. Limits are read from PostgreSQL through ``postfix_submission_settings()``.
"""

from __future__ import annotations

import json
import signal
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from vmm import authrelay
from vmm.runtime import AuthLimits, Runtime

# Dovecot's own most: it waits at most 15 s between failures (auth penalty).
MAX_DELAY = 15
# How long read limits are trusted before PostgreSQL is asked again: `configset` takes
# effect within this time, at the cost of one query per period while mail is sent.
LIMITS_TTL = 10.0


class Window:
    """Event times per key within the last ``span`` seconds, bounded in keys."""

    def __init__(self, span: float, max_keys: int = 100_000) -> None:
        self.span = span
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def add(self, key: str, now: float) -> int:
        events = self._prune(key, now)
        if key not in self._events:
            if len(self._events) >= self.max_keys:
                # The key inserted longest ago (dicts keep insertion order): O(1), where
                # an attack from many addresses fills the table.
                del self._events[next(iter(self._events))]
            self._events[key] = events
        events.append(now)
        return len(events)

    def count(self, key: str, now: float) -> int:
        return len(self._prune(key, now))

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key, deque())
        while events and events[0] <= now - self.span:
            events.popleft()
        if not events:
            self._events.pop(key, None)
        return events


@dataclass
class LoginGuard:
    """Failed logins by client address (refused for ``ban`` seconds after ``failures``
    within ``window``) and by login name (delayed, doubling, after ``free`` failures)."""

    limits: AuthLimits
    exempt: tuple[str, ...] = ()
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._exempt_networks = [ip_network(net) for net in self.exempt]  # parsed once, not per login
        self._by_address = Window(self.limits.window)
        self._by_login = Window(self.limits.window)
        self._banned_until: dict[str, float] = {}

    def allow(self, remote: str, login: str) -> tuple[int, str]:
        """Dovecot's ``allow``: -1 refuses, 0 lets the login go on, N > 0 waits N s."""
        if self._exempt(remote):
            return 0, ""
        now = self.clock()
        with self._lock:
            banned = self._banned_until.get(remote, 0.0) > now
            by_name = self._by_login.count(login.lower(), now)
        if banned:
            return -1, "too many failed logins from this address; try again later"
        over = by_name - self.limits.free
        return (min(2 ** (over - 1), MAX_DELAY), "") if over > 0 else (0, "")

    def report(self, remote: str, login: str, success: bool, refused_by_policy: bool) -> None:
        """Dovecot's ``report`` after each login: failures count, a success clears the name."""
        if self._exempt(remote) or refused_by_policy:
            return
        now = self.clock()
        with self._lock:
            if success:
                self._by_login.clear(login.lower())
                return
            self._by_login.add(login.lower(), now)
            if self._by_address.add(remote, now) >= self.limits.failures:
                self._banned_until = {
                    address: until for address, until in self._banned_until.items() if until > now
                }
                self._banned_until[remote] = now + self.limits.ban
                self._by_address.clear(remote)
                print(
                    f"policy: {remote} refused for {self.limits.ban} s after "
                    f"{self.limits.failures} failed logins",
                    flush=True,
                )

    def _exempt(self, remote: str) -> bool:
        try:
            address = ip_address(remote)
        except ValueError:
            return False
        return address.is_loopback or any(address in network for network in self._exempt_networks)


@dataclass(frozen=True)
class SendLimits:
    messages_per_hour: int
    recipients_per_message: int


@dataclass
class SendGuard:
    """Messages an hour and recipients a message, per login, on the submission ports."""

    limits: Callable[[], SendLimits]
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._sent = Window(3600.0)
        self._recipients = Window(3600.0)

    def check(self, request: dict[str, str]) -> str:
        """The action for one Postfix policy request."""
        login = request.get("sasl_username", "").lower()
        if not login:
            return "DUNNO"
        limits, now = self.limits(), self.clock()
        state = request.get("protocol_state", "")
        with self._lock:
            if state == "RCPT":
                if self._sent.count(login, now) >= limits.messages_per_hour:
                    return (
                        f"DEFER 4.7.1 {login} has sent {limits.messages_per_hour} messages in the "
                        "last hour; the rest waits"
                    )
                # Recipients of the message under way (its instance), this transaction.
                if self._recipients.add(request.get("instance", ""), now) > limits.recipients_per_message:
                    return f"452 4.5.3 at most {limits.recipients_per_message} recipients a message"
            elif state == "END-OF-MESSAGE":
                self._sent.add(login, now)
                self._recipients.clear(request.get("instance", ""))
        return "DUNNO"


def _limits_from(runtime: Runtime) -> Callable[[], SendLimits]:
    """The limits stored in the database, read at the first submission and then at most
    every LIMITS_TTL; the last ones read while it is unreachable."""
    cached: SendLimits | None = None
    read_at = -LIMITS_TTL

    def current() -> SendLimits:
        # Imported here: psycopg and the settings (with the password libraries) double
        # this process's memory, and an idle stack has no submission to count.
        from vmm import db
        from vmm.errors import VmmError
        from vmm.settings import Settings

        nonlocal cached, read_at
        if cached is None or time.monotonic() - read_at >= LIMITS_TTL:
            read_at = time.monotonic()
            stored: dict[str, str] = {}
            try:
                with db.connect(runtime, role="postfix") as conn, db.transaction(conn):
                    rows = conn.execute("SELECT name, value FROM postfix_submission_settings()").fetchall()
                stored = {str(name): str(value) for name, value in rows}
            except VmmError as exc:
                print(f"policy: keeping the last submission limits: {exc}", flush=True)
                if cached is not None:
                    return cached
            settings = Settings(stored)
            cached = SendLimits(
                settings.number("submission.messages_per_hour"),
                settings.number("submission.recipients_per_message"),
            )
        return cached

    return current


def _auth_handler(guard: LoginGuard) -> type[socketserver.StreamRequestHandler]:
    class AuthPolicy(socketserver.StreamRequestHandler):
        """Dovecot's requests: ``POST /?command=allow|report`` with a JSON body, on a
        kept-alive HTTP/1.1 connection; a GET is the healthcheck (vmm-health http).
        Python's http.server would serve the same with a third more memory (the email
        package), for a protocol this small."""

        def handle(self) -> None:
            while request_line := self.rfile.readline():
                method, _, rest = request_line.decode("latin-1").partition(" ")
                headers = {}
                while line := self.rfile.readline().decode("latin-1").strip():
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = self.rfile.read(int(headers.get("content-length", "0") or 0))
                data = json.dumps(self._answer(method, rest.rpartition(" ")[0], body)).encode()
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
                )
                self.wfile.flush()
                if headers.get("connection", "").lower() == "close":
                    return

        def _answer(self, method: str, path: str, body: bytes) -> dict[str, object]:
            if method != "POST":
                return {"status": 0}
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                return {"status": 0, "msg": "not JSON"}
            remote, login = str(request.get("remote", "")), str(request.get("login", ""))
            if path.partition("command=")[2].partition("&")[0] == "report":
                guard.report(remote, login, bool(request.get("success")), bool(request.get("policy_reject")))
                return {"status": 0}
            status, message = guard.allow(remote, login)
            return {"status": status, "msg": message}

    return AuthPolicy


def _send_handler(guard: SendGuard) -> type[socketserver.StreamRequestHandler]:
    class SendPolicy(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            # Postfix keeps the connection for many requests: name=value lines, a blank
            # line ends each request, "action=..." and a blank line answers it.
            request: dict[str, str] = {}
            for raw in self.rfile:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    name, _, value = line.partition("=")
                    request[name] = value
                    continue
                action = guard.check(request)
                if action != "DUNNO":
                    print(f"policy: {request.get('sasl_username')}: {action}", flush=True)
                self.wfile.write(f"action={action}\n\n".encode())
                self.wfile.flush()
                request = {}

    return SendPolicy


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    """``python3 -m vmm.policy``: the three services, until the container stops."""
    # PID 1 gets no default action for SIGTERM: without a handler `docker stop` waits.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    runtime = Runtime.from_env()
    logins = LoginGuard(runtime.auth_limits, runtime.throttle_exempt)
    auth = _Server(("", runtime.auth_policy_port), _auth_handler(logins))
    send = _Server(("", runtime.send_policy_port), _send_handler(SendGuard(_limits_from(runtime))))
    relay = _Server(
        ("", runtime.auth_relay_port), authrelay.handler((runtime.dovecot_host, runtime.auth_port))
    )
    for server in (send, relay):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(
        f"policy: logins on :{runtime.auth_policy_port}, submission on :{runtime.send_policy_port},"
        f" SMTP AUTH relayed on :{runtime.auth_relay_port}",
        flush=True,
    )
    auth.serve_forever()


if __name__ == "__main__":
    main()
