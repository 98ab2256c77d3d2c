"""Counting every message through a fault: what was sent, accepted, refused for now
(4xx) and accepted on retry, refused for good, delivered exactly once, bounced, lost."""

from __future__ import annotations

import json
import re
import smtplib
import time
from dataclasses import dataclass, field

from tests.e2e.conftest import Stack, mail_log
from tests.mail import message

# Read by pytest_terminal_summary (tests/conftest.py) to print the report.
REPORT: list[Tally] = []

_COUNT_SCRIPT = """
import collections, json, os, sys
counts = collections.Counter()
for root, _, files in os.walk('/srv/mail'):
    if os.path.basename(root) not in ('new', 'cur'):
        continue
    for name in files:
        try:
            with open(os.path.join(root, name), 'rb') as handle:
                head = handle.read(8192)
        except OSError:
            continue
        for line in head.split(b'\\n'):
            if line.startswith(b'Subject: ' + sys.argv[1].encode()):
                counts[line.split()[1].decode()] += 1
print(json.dumps(counts))
"""


@dataclass(eq=False)  # identity: a tally is one run of a scenario
class Tally:
    scenario: str
    recipients: list[str]
    sent: int = 0
    accepted: int = 0  # 250 at the first attempt
    deferred: list[str] = field(default_factory=list)  # 4xx at SMTP time: to retry
    retried: int = 0  # deferred, then accepted on retry
    refused: int = 0  # 5xx: an unexpected refusal is a bounce to the sender
    delivered: int = 0
    duplicates: int = 0
    bounced: int = 0
    lost: int = 0
    markers: list[str] = field(default_factory=list)  # accepted messages

    @property
    def prefix(self) -> str:
        """The scenario as it stands in the Subject of its messages."""
        return re.sub(r"[^a-z0-9]+", "-", self.scenario.lower()).strip("-") + "-"

    def send(self, stack: Stack, count: int) -> None:
        """Offer ``count`` more messages, spread over the recipients, one SMTP session
        each (a fault may drop a session)."""
        for _ in range(count):
            number = self.sent
            self.sent += 1
            self._offer(stack, f"{self.prefix}{number}", first=True)

    def _offer(self, stack: Stack, marker: str, first: bool) -> bool:
        recipient = self.recipients[int(marker.rsplit("-", 1)[1]) % len(self.recipients)]
        body = message(recipient).replace(b"Subject: ", f"Subject: {marker} ".encode(), 1)
        try:
            with stack.smtp() as client:
                client.sendmail("fault@sender.example", [recipient], body)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
        except (OSError, smtplib.SMTPException):
            code = 421  # the connection failed: a temporary failure for the sender
        else:
            self.markers.append(marker)
            if first:
                self.accepted += 1
            else:
                self.retried += 1
            return True
        if 400 <= code < 500:
            if first:
                self.deferred.append(marker)
        else:
            self.refused += 1
        return False

    def retry_deferred(self, stack: Stack, timeout: float = 60) -> None:
        """Offer the refused-for-now messages again until each is accepted."""
        deadline = time.monotonic() + timeout
        pending = list(self.deferred)
        while pending:
            pending = [marker for marker in pending if not self._offer(stack, marker, first=False)]
            if pending:
                assert time.monotonic() < deadline, f"{len(pending)} still refused"
                time.sleep(1)

    def settle(self, stack: Stack, timeout: float = 90) -> None:
        """Flush the queue, then count what arrived, until all accepted mail is in or the
        time is up; what is not in by then is lost."""
        deadline = time.monotonic() + timeout
        while True:
            stack.exec("postfix", "postqueue", "-f")
            out, err, code = stack.exec("dovecot", "python3", "-c", _COUNT_SCRIPT, self.prefix)
            assert code == 0, err
            counts: dict[str, int] = json.loads(out)
            arrived = [marker for marker in self.markers if counts.get(marker, 0) >= 1]
            if len(arrived) == len(self.markers) or time.monotonic() > deadline:
                break
            time.sleep(2)
        self.delivered = len(arrived)
        self.duplicates = sum(1 for marker in self.markers if counts.get(marker, 0) > 1)
        self.lost = len(self.markers) - self.delivered
        log = mail_log(stack)
        self.bounced = sum(
            1
            for line in log.splitlines()
            if "status=bounced" in line and any(r in line for r in self.recipients)
        )
        if self not in REPORT:
            REPORT.append(self)

    def row(self) -> list[object]:
        return [
            self.scenario,
            self.sent,
            self.accepted + self.retried,
            self.delivered,
            self.retried,
            self.refused + self.bounced,
            self.lost,
            self.duplicates,
        ]

    def assert_clean(self) -> None:
        assert self.sent > 0 and self.accepted + self.retried == self.sent, self.row()
        assert (self.lost, self.duplicates, self.bounced, self.refused) == (0, 0, 0, 0), self.row()


HEADER = [
    "scenario",
    "sent",
    "accepted",
    "delivered",
    "deferred then delivered",
    "bounced",
    "lost",
    "duplicates",
]


def table() -> str:
    rows = [HEADER] + [[str(value) for value in tally.row()] for tally in REPORT]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(lines)
