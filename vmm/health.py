"""Healthchecks that speak to the real daemon: ``python3 -m vmm.health PROTO PORT``
succeeds when the server's greeting is what the protocol promises."""

from __future__ import annotations

import socket
import sys

GREETINGS = {"smtp": b"220 ", "lmtp": b"220 ", "imap": b"* OK", "pop3": b"+OK", "rspamd": b"HTTP/1.1 200"}
# Servers that speak only when asked: rspamd's controller answers /ping once its
# configuration is loaded.
REQUESTS = {"rspamd": b"GET /ping HTTP/1.0\r\n\r\n"}


def check(protocol: str, port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        if protocol in REQUESTS:
            conn.sendall(REQUESTS[protocol])
        greeting = conn.recv(512)
    return greeting.startswith(GREETINGS[protocol])


def main() -> None:
    protocol, port = sys.argv[1], int(sys.argv[2])
    try:
        healthy = check(protocol, port)
    except OSError as exc:
        print(f"{protocol} on {port}: {exc}", file=sys.stderr)
        sys.exit(1)
    if not healthy:
        print(f"{protocol} on {port}: unexpected greeting", file=sys.stderr)
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
