"""The stack's policy service: what one client address and one login may do.

Two protocols, one process, so that every count lives in one place:

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
users. Limits are read from PostgreSQL through ``postfix_submission_limits()``.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address, ip_network

from vmm import db
from vmm.config import AuthLimits, Runtime
from vmm.errors import VmmError
from vmm.settings import Settings

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
                self._forget_oldest()
            self._events[key] = events
        events.append(now)
        return len(events)

    def count(self, key: str, now: float) -> int:
        return len(self._prune(key, now))

    def last(self, key: str) -> float:
        events = self._events.get(key)
        return events[-1] if events else 0.0

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key, deque())
        while events and events[0] <= now - self.span:
            events.popleft()
        if not events:
            self._events.pop(key, None)
        return events

    def _forget_oldest(self) -> None:
        oldest = min(self._events, key=self.last)
        del self._events[oldest]


@dataclass
class LoginGuard:
    """Failed logins by client address (refused for ``ban`` seconds after ``failures``
    within ``window``) and by login name (delayed, doubling, after ``free`` failures)."""

    limits: AuthLimits
    exempt: tuple[str, ...] = ()
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
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
                self._banned_until = {address: until for address, until in self._banned_until.items()
                                      if until > now}
                self._banned_until[remote] = now + self.limits.ban
                self._by_address.clear(remote)
                print(f"policy: {remote} refused for {self.limits.ban} s after "
                      f"{self.limits.failures} failed logins", flush=True)

    def _exempt(self, remote: str) -> bool:
        try:
            address = ip_address(remote)
        except ValueError:
            return False
        return address.is_loopback or any(address in ip_network(net) for net in self.exempt)


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
                    return (f"DEFER 4.7.1 {login} has sent {limits.messages_per_hour} messages in the "
                            "last hour; the rest waits")
                # Recipients of the message under way (its instance), this transaction.
                if self._recipients.add(request.get("instance", ""), now) > limits.recipients_per_message:
                    return f"452 4.5.3 at most {limits.recipients_per_message} recipients a message"
            elif state == "END-OF-MESSAGE":
                self._sent.add(login, now)
                self._recipients.clear(request.get("instance", ""))
        return "DUNNO"


def _send_limits(settings: Settings) -> SendLimits:
    return SendLimits(settings.number("submission.messages_per_hour"),
                      settings.number("submission.recipients_per_message"))


def _limits_from(runtime: Runtime) -> Callable[[], SendLimits]:
    """The limits stored in the database, read at most once a minute; the last ones
    read while it is unreachable (the settings' defaults before the first)."""
    cached = _send_limits(Settings({}))
    read_at = -LIMITS_TTL

    def current() -> SendLimits:
        nonlocal cached, read_at
        if time.monotonic() - read_at >= LIMITS_TTL:
            read_at = time.monotonic()
            try:
                with db.connect(runtime, role="postfix") as conn, db.transaction(conn):
                    rows = conn.execute("SELECT name, value FROM postfix_submission_settings()").fetchall()
            except VmmError as exc:
                print(f"policy: keeping the last submission limits: {exc}", flush=True)
            else:
                cached = _send_limits(Settings({str(name): str(value) for name, value in rows}))
        return cached

    return current


def _auth_handler(guard: LoginGuard) -> type[BaseHTTPRequestHandler]:
    class AuthPolicy(BaseHTTPRequestHandler):
        # Dovecot keeps its connections open between requests.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(200, {"status": 0})  # the healthcheck (vmm-health http)

        def do_POST(self) -> None:
            command = self.path.partition("command=")[2].partition("&")[0]
            length = int(self.headers.get("Content-Length", "0"))
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, {"status": 0, "msg": "not JSON"})
                return
            remote, login = str(request.get("remote", "")), str(request.get("login", ""))
            if command == "report":
                guard.report(remote, login, bool(request.get("success")), bool(request.get("policy_reject")))
                self._answer(200, {"status": 0})
            else:
                status, message = guard.allow(remote, login)
                self._answer(200, {"status": status, "msg": message})

        def _answer(self, code: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per login would double Dovecot's own

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
    """``python3 -m vmm.policy``: both services, until the container stops."""
    # PID 1 gets no default action for SIGTERM: without a handler `docker stop` waits.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    runtime = Runtime.from_env()
    logins = LoginGuard(runtime.auth_limits, runtime.throttle_exempt)
    auth = ThreadingHTTPServer(("", runtime.auth_policy_port), _auth_handler(logins))
    auth.daemon_threads = True
    send = _Server(("", runtime.send_policy_port), _send_handler(SendGuard(_limits_from(runtime))))
    threading.Thread(target=send.serve_forever, daemon=True).start()
    print(f"policy: logins on :{runtime.auth_policy_port}, submission on :{runtime.send_policy_port}",
          flush=True)
    auth.serve_forever()


if __name__ == "__main__":
    main()
