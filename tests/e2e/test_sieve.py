"""Sieve at delivery, managed over ManageSieve (4190, STARTTLS then AUTH): a user's
script files mail into a folder and answers with a vacation reply; an account without
the sieve service is refused."""

from __future__ import annotations

import email
import uuid

import pytest

from tests.e2e.conftest import Stack, wait_for_log, wait_until_delivered
from tests.mail import message

PASSWORD = "Sieve-pass-1"
SCRIPT = """require ["fileinto", "mailbox", "vacation"];
if header :contains "subject" "[lists]" {
    fileinto :create "Lists";
    stop;
}
vacation :days 1 :subject "Out of office" "I am away until Monday.";
"""


@pytest.fixture(scope="module")
def users(stack: Stack) -> Stack:
    for user in ("carol", "dave", "erin"):
        stack.add_account(f"{user}@example.test", PASSWORD)
    stack.vmm_ok("userservices", "erin@example.test", "-s", "imap", "smtp")  # no sieve
    return stack


def note(sender: str, to: str, subject: str) -> bytes:
    return message(to, "Hello.", sender=sender, subject=subject, dated=True)


def test_a_script_uploaded_over_managesieve_becomes_active(users: Stack) -> None:
    with users.managesieve() as session:
        assert session.authenticate("carol@example.test", PASSWORD)
        ok, answer = session.command('PUTSCRIPT "broken"', 'require ["nosuchext"];\n')
        assert not ok, answer  # checked on upload, never at delivery
        assert session.command('PUTSCRIPT "rules"', SCRIPT)[0]
        assert session.command('SETACTIVE "rules"')[0]
        ok, listing = session.command("LISTSCRIPTS")
        assert ok and '"rules" ACTIVE' in listing


def test_the_script_files_list_mail_into_its_folder(users: Stack) -> None:
    subject = f"[lists] digest {uuid.uuid4().hex}"
    users.send(
        "news@lists.example",
        ["carol@example.test"],
        note("news@lists.example", "carol@example.test", subject),
    )
    filed = wait_until_delivered(users, "carol@example.test", PASSWORD, folder="Lists")
    assert [email.message_from_bytes(raw)["Subject"] for raw in filed] == [subject]
    inbox = wait_until_delivered(users, "carol@example.test", PASSWORD, count=0)
    assert all(subject.encode() not in raw for raw in inbox)


def test_the_vacation_reply_reaches_the_sender_once(users: Stack) -> None:
    questions = [note("dave@example.test", "carol@example.test", f"question {n}") for n in range(2)]
    for question in questions:
        users.submit("dave@example.test", PASSWORD, ["carol@example.test"], question)
    replies = wait_until_delivered(users, "dave@example.test", PASSWORD)
    [reply] = [email.message_from_bytes(raw) for raw in replies]
    assert reply["Subject"] == "Out of office"
    assert str(reply["Auto-Submitted"]).startswith("auto-replied")
    assert "carol@example.test" in str(reply["From"])
    assert "I am away until Monday." in str(reply.get_payload())
    # Sieve has decided on the second question (:days 1 answers once) before it stores it.
    second = email.message_from_bytes(questions[1])["Message-ID"]
    wait_for_log(users, f"msgid={second}: vacation action: discarded duplicate", service="dovecot")
    assert len(wait_until_delivered(users, "dave@example.test", PASSWORD)) == 1
    assert len(wait_until_delivered(users, "carol@example.test", PASSWORD, count=2)) >= 2


def test_an_account_without_the_sieve_service_is_refused(users: Stack) -> None:
    assert not users.managesieve_login("erin@example.test", PASSWORD)
    assert users.managesieve_login("dave@example.test", PASSWORD)


DETAIL_SCRIPT = """require ["envelope", "subaddress", "fileinto", "mailbox"];
if envelope :detail "to" "lists" {
    fileinto :create "Tagged";
}
"""


def test_a_tagged_address_reaches_its_account_and_sieve_sees_the_tag(users: Stack) -> None:
    users.add_domain("tags.example")
    users.add_account("fay@tags.example", PASSWORD)
    # A catch-all answers for unknown addresses only, not for fay's tagged ones.
    users.add_account("bucket@tags.example", PASSWORD)
    users.vmm_ok("catchalladd", "tags.example", "bucket@tags.example")
    with users.managesieve() as session:
        assert session.authenticate("fay@tags.example", PASSWORD)
        assert session.command('PUTSCRIPT "tags"', DETAIL_SCRIPT)[0]
        assert session.command('SETACTIVE "tags"')[0]
    tagged, other = f"tagged {uuid.uuid4().hex}", f"other {uuid.uuid4().hex}"
    users.send(
        "a@sender.example",
        ["fay+lists@tags.example"],
        note("a@sender.example", "fay+lists@tags.example", tagged),
    )
    users.send(
        "a@sender.example",
        ["fay+shop@tags.example"],
        note("a@sender.example", "fay+shop@tags.example", other),
    )
    filed = wait_until_delivered(users, "fay@tags.example", PASSWORD, folder="Tagged")
    assert [email.message_from_bytes(raw)["Subject"] for raw in filed] == [tagged]
    inbox = wait_until_delivered(users, "fay@tags.example", PASSWORD)
    assert [email.message_from_bytes(raw)["Subject"] for raw in inbox] == [other]
    # An unknown address, tagged or not, still goes to the catch-all.
    users.send(
        "a@sender.example",
        ["nobody+x@tags.example"],
        note("a@sender.example", "nobody+x@tags.example", "lost"),
    )
    assert len(wait_until_delivered(users, "bucket@tags.example", PASSWORD)) == 1
    assert users.postmap("virtual_alias_maps", "fay+lists@tags.example") == ""


def test_submission_hides_the_senders_client_in_received(users: Stack) -> None:
    subject = f"private {uuid.uuid4().hex}"
    users.submit(
        "dave@example.test",
        PASSWORD,
        ["erin@example.test"],
        note("dave@example.test", "erin@example.test", subject),
    )
    [received] = [
        raw for raw in wait_until_delivered(users, "erin@example.test", PASSWORD) if subject.encode() in raw
    ]
    headers = email.message_from_bytes(received).get_all("Received") or []
    submission = headers[-1]  # the first hop, added by the submission service
    assert users.gateway() not in submission and "dave@example.test" not in submission
    assert "client.example" not in submission and "TLS" not in submission, submission
