"""Dovecot's doveadm HTTP API on the proxies and backends (the proxy and backend roles'
`service doveadm`, config-templates/dovecot): what `vmm usermove` asks of Dovecot. The
API runs a doveadm command on that server and answers with its result or exit code."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

from vmm.errors import ToolError
from vmm.runtime import Runtime

# A copy (dsync) takes as long as the mailbox is large: minutes for gigabytes.
COPY_TIMEOUT = 3600.0
TIMEOUT = 10.0
# dsync's exit code for a copy done without errors in which something changed meanwhile
# (a mail arrived while it ran): running it again usually finishes it.
UNFINISHED = 2
COPY_ATTEMPTS = 3


class Unfinished(ToolError):
    """A copy that dsync says to run again."""


@dataclass(frozen=True)
class Doveadm:
    http_port: int
    port: int
    password: str
    proxies: str  # the proxy tier's service name: every address it resolves to

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> Doveadm:
        return cls(
            runtime.doveadm_http_port, runtime.doveadm_port, runtime.doveadm_password(), runtime.dovecot_host
        )

    def run(self, host: str, command: str, parameters: dict[str, object], timeout: float = TIMEOUT) -> object:
        """One command on ``host``; its response. A failure is one line naming both."""
        body = json.dumps([[command, parameters, "vmm"]]).encode()
        login = base64.b64encode(f"doveadm:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"http://{_url_host(host)}:{self.http_port}/doveadm/v1",
            data=body,
            headers={"Authorization": f"Basic {login}", "Content-Type": "application/json"},
        )
        try:
            # Plain HTTP: the stack's own Dovecot, on its internal networks.
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                [[kind, result, _tag]] = json.load(answer)
        except (OSError, ValueError) as exc:
            raise ToolError(f"doveadm {command} on {host}: {_reason(exc)}") from None
        if kind == "error":
            failure = Unfinished if result.get("exitCode") == UNFINISHED else ToolError
            raise failure(f"doveadm {command} on {host} failed: {json.dumps(result)}")
        return result

    def copy(self, user: str, source: str, destination: str, *, merge: bool = False) -> None:
        """Make the mailbox on ``destination`` what it is on ``source`` (doveadm backup,
        which keeps UIDs and flags); with ``merge``, only add what ``source`` has beyond
        it (doveadm sync -1, which keeps what ``destination`` received since)."""
        parameters: dict[str, object] = {"user": user, "destination": [f"tcp:{destination}:{self.port}"]}
        if merge:
            parameters["onewaySync"] = True
        for attempt in range(COPY_ATTEMPTS):
            try:
                self.run(source, "sync" if merge else "backup", parameters, COPY_TIMEOUT)
                return
            except Unfinished:
                if attempt == COPY_ATTEMPTS - 1:
                    raise

    def drain(self, user: str) -> None:
        """On every proxy: forget the cached lookups, so that the next one for ``user``
        asks PostgreSQL again, and end the user's sessions. A reload restarts the auth
        process, whose cache goes with it; sessions stay (shutdown_clients = no). The
        API's own authCacheFlush kills the doveadm process in Dovecot 2.4.1 (an assertion
        on its user parameter)."""
        for proxy in self.proxy_addresses():
            self.run(proxy, "reload", {})
            self.run(proxy, "kick", {"mask": [user]})

    def proxy_addresses(self) -> list[str]:
        """Every address of the proxy tier: its service name resolves to each replica."""
        try:
            found = socket.getaddrinfo(self.proxies, self.http_port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise ToolError(f"cannot find the Dovecot proxies {self.proxies}: {_reason(exc)}") from None
        return sorted({str(address[4][0]) for address in found})


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
