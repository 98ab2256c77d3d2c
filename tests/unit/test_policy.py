"""The policy service's rules on a clock the test moves: failed logins refuse an address
and slow down a login name; submission limits defer past their counts."""

from __future__ import annotations

from vmm.policy import LoginGuard, SendGuard, SendLimits
from vmm.runtime import AuthLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock) -> LoginGuard:
    return LoginGuard(AuthLimits(failures=5, window=60, ban=300, free=2), ("10.0.0.0/26",), clock)


def test_an_address_with_too_many_failures_is_refused_until_its_ban_ends() -> None:
    clock = Clock()
    guard = _guard(clock)
    for n in range(5):
        assert guard.allow("192.0.2.7", f"user{n}@example.test")[0] >= 0
        guard.report("192.0.2.7", f"user{n}@example.test", success=False, refused_by_policy=False)
    status, message = guard.allow("192.0.2.7", "right@example.test")
    assert status == -1 and "too many failed logins" in message
    assert guard.allow("192.0.2.8", "right@example.test") == (0, "")
    clock.now += 299
    assert guard.allow("192.0.2.7", "right@example.test")[0] == -1
    # Refusals during the ban do not extend it; the window has let the failures go.
    guard.report("192.0.2.7", "right@example.test", success=False, refused_by_policy=True)
    clock.now += 2
    assert guard.allow("192.0.2.7", "right@example.test") == (0, "")


def test_a_login_name_failing_from_many_addresses_waits_longer_each_time() -> None:
    clock = Clock()
    guard = _guard(clock)
    delays = []
    for n in range(8):
        delays.append(guard.allow(f"198.51.100.{n}", "Alice@example.test")[0])
        guard.report(f"198.51.100.{n}", "alice@example.test", success=False, refused_by_policy=False)
    assert delays == [0, 0, 0, 1, 2, 4, 8, 15]
    guard.report("198.51.100.99", "alice@example.test", success=True, refused_by_policy=False)
    assert guard.allow("198.51.100.99", "alice@example.test") == (0, "")


def test_exempt_and_loopback_addresses_are_never_refused() -> None:
    guard = _guard(Clock())
    for remote in ("10.0.0.1", "127.0.0.1"):
        for _ in range(20):
            guard.report(remote, "x@example.test", success=False, refused_by_policy=False)
        assert guard.allow(remote, "x@example.test") == (0, "")


def _request(state: str, login: str = "alice@example.test", instance: str = "1") -> dict[str, str]:
    return {"protocol_state": state, "sasl_username": login, "instance": instance}


def test_a_login_past_its_hourly_messages_is_deferred_others_are_not() -> None:
    clock = Clock()
    guard = SendGuard(lambda: SendLimits(messages_per_hour=3, recipients_per_message=10), clock)
    for n in range(3):
        assert guard.check(_request("RCPT", instance=str(n))) == "DUNNO"
        assert guard.check(_request("END-OF-MESSAGE", instance=str(n))) == "DUNNO"
    action = guard.check(_request("RCPT", instance="4"))
    assert action.startswith("DEFER 4.7.1") and "3 messages" in action
    assert guard.check(_request("RCPT", "bob@example.test", "5")) == "DUNNO"
    assert guard.check({"protocol_state": "RCPT"}) == "DUNNO"  # no login: not submission
    clock.now += 3601
    assert guard.check(_request("RCPT", instance="6")) == "DUNNO"


def test_recipients_past_the_limit_of_one_message_are_deferred() -> None:
    guard = SendGuard(lambda: SendLimits(messages_per_hour=100, recipients_per_message=2), Clock())
    actions = [guard.check(_request("RCPT", instance="m1")) for _ in range(3)]
    assert actions[:2] == ["DUNNO", "DUNNO"] and actions[2].startswith("452 4.5.3")
    guard.check(_request("END-OF-MESSAGE", instance="m1"))
    assert guard.check(_request("RCPT", instance="m2")) == "DUNNO"
