"""Postfix's way to Dovecot's auth service for SMTP AUTH: a relay of Dovecot's auth
protocol, line by line both ways, run by the policy service (vmm/policy.py), that
passes on a temporary failure as one.

Postfix 3.10's Dovecot SASL client answers every FAIL with ``535 5.7.8`` (a mail client
then tells its user the password is wrong) and only a lost connection with ``454 4.7.0``
(RFC 4954: try again later). Dovecot marks a failure that is not the password's (its
database unreachable) as temporary: ``code=temp_fail`` (2.4; ``temp`` before). So at
such a FAIL the relay closes
Postfix's connection instead of passing the line on: Postfix answers 454 and connects
again for its next AUTH. Everything else passes unchanged, the client's address and TLS
state included, so Dovecot's auth policy and penalty see what they saw before."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading

# How long a connection to Dovecot's auth service may take to open, seconds.
CONNECT_TIMEOUT = 5


# The fields by which Dovecot's FAIL reply calls a failure temporary.
TEMPORARY = frozenset({b"code=temp_fail", b"temp"})


def is_temporary_failure(line: bytes) -> bool:
    """``FAIL<TAB>id<TAB>...code=temp_fail...``: a failure Dovecot calls temporary."""
    fields = line.rstrip(b"\r\n").split(b"\t")
    return fields[0] == b"FAIL" and not TEMPORARY.isdisjoint(fields[2:])


def handler(dovecot: tuple[str, int]) -> type[socketserver.StreamRequestHandler]:
    class Relay(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                upstream = socket.create_connection(dovecot, timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                print(f"authrelay: Dovecot's auth service: {exc}", flush=True)
                return  # Postfix sees the connection lost: 454
            # A login may wait seconds on Dovecot's auth penalty: no read timeout.
            upstream.settimeout(None)
            with upstream:
                threading.Thread(target=self._to_dovecot, args=(upstream,), daemon=True).start()
                for line in upstream.makefile("rb"):
                    if is_temporary_failure(line):
                        print("authrelay: a temporary failure: Postfix answers 454", flush=True)
                        break
                    self.wfile.write(line)
                    self.wfile.flush()
                # Ends the other direction's read, whichever side closed first.
                self.request.shutdown(socket.SHUT_RDWR)

        def _to_dovecot(self, upstream: socket.socket) -> None:
            # Either side gone: the reading direction ends the connection.
            with contextlib.suppress(OSError):
                for line in self.rfile:
                    upstream.sendall(line)
                upstream.shutdown(socket.SHUT_WR)

    return Relay
