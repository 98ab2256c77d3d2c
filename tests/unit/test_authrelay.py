"""Which of Dovecot's auth replies the SMTP AUTH relay turns into Postfix's 454."""

from __future__ import annotations

import pytest

from vmm.authrelay import is_temporary_failure


@pytest.mark.parametrize(
    ("line", "temporary"),
    [
        (b"FAIL\t1\tuser=ann@example.test\tcode=temp_fail\n", True),  # Dovecot 2.4, database down
        (b"FAIL\t7\ttemp\n", True),  # before 2.4
        (b"FAIL\t1\tuser=ann@example.test\n", False),  # a wrong password
        (b"FAIL\t1\tuser=ann@example.test\tcode=user_disabled\n", False),
        (b"OK\t1\tuser=ann@example.test\n", False),
        (b"FAIL\ttemp\n", False),  # "temp" as the request id is no flag
    ],
)
def test_only_a_failure_dovecot_calls_temporary_closes_the_connection(line: bytes, temporary: bool) -> None:
    assert is_temporary_failure(line) is temporary
