"""A full mail volume defers deliveries instead of bouncing them; they resume once there
is space again. The stack runs with its mail volume on a 16 MiB tmpfs."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.faults import Tally

pytestmark = pytest.mark.faults
STACK_FILES = ["tests/e2e/small-mail-volume.yaml"]
RECIPIENTS = ["full@disk.example", "also@disk.example"]


def test_full_disk_defers_and_resumes(stack: Stack) -> None:
    stack.add_domain("disk.example")
    for address in RECIPIENTS:
        stack.add_account(address, "disk-full-pw")
    filler = "/srv/mail/filler"
    # Fill the volume to the last block (dd stops with "No space left on device").
    stack.exec("dovecot", "dd", "if=/dev/zero", f"of={filler}", "bs=64k")
    free, _, _ = stack.exec("dovecot", "sh", "-c", "df -k --output=avail /srv/mail | tail -1")
    assert int(free) < 64

    tally = Tally("mail volume full", RECIPIENTS)
    tally.send(stack, 20)
    assert tally.accepted == 20, "Postfix keeps accepting: its queue is another volume"
    log = stack.compose.get_logs("postfix")[0]
    assert "status=bounced" not in log

    stack.exec("dovecot", "rm", "-f", filler)
    tally.settle(stack)
    tally.assert_clean()
