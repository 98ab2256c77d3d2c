"""`vmm status`'s reading of Postfix's queue files and what it calls wrong."""

from __future__ import annotations

from pathlib import Path

from vmm import status


def record(kind: str, data: bytes) -> bytes:
    # Postfix's record: a type byte, the length in base-128 (low bits first), the data.
    length, encoded = len(data), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return kind.encode() + bytes(encoded) + data


def test_the_queue_counts_and_the_oldest_deferred_message_with_its_reason(tmp_path: Path) -> None:
    for queue, name, arrived in (
        ("deferred", "AAA111", 1000),
        ("deferred", "BBB222", 500),
        ("active", "C", 900),
    ):
        path = tmp_path / queue / name[0] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(record("C", b"x" * 200) + record("T", f"{arrived} 123".encode()) + record("E", b""))
    defer = tmp_path / "defer" / "B" / "BBB222"
    defer.parent.mkdir(parents=True)
    defer.write_text(
        "recipient=a@example.org\nreason=connect to dovecot[10.0.0.5]:24: Connection refused\n\n"
    )
    found = status.Status()
    status.read_queue(tmp_path, found, now=500 + 7200)
    assert found.queue == {"incoming": 0, "active": 1, "deferred": 2, "hold": 0}
    assert found.oldest_deferred == 7200
    assert found.deferred_reason == "connect to dovecot[10.0.0.5]:24: Connection refused"
    status.judge(found)
    assert found.problems == ["deferred: 2, oldest 2 h: connect to dovecot[10.0.0.5]:24: Connection refused"]


def test_what_counts_as_wrong() -> None:
    found = status.Status(
        services={"postfix": "ok", "dovecot": "unreachable (Connection refused)"},
        oldest_deferred=600,  # young: listed, not wrong
        certificate={"days_left": 3},
        volumes={"mail": 0.95, "db": 0.2},
    )
    status.judge(found)
    assert found.problems == [
        "dovecot: unreachable (Connection refused)",
        "certificate: expires in 3 days (vmm certinfo says why it was not renewed)",
        "volume mail: 95% used",
    ]
