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


def send_note(stack: Stack, sender: str, to: str, subject: str) -> None:
    """A note from ``sender`` to ``to`` over port 25."""
    stack.send(sender, [to], note(sender, to, subject))


def activate(stack: Stack, user: str, name: str, script: str) -> None:
    """Upload ``script`` over ManageSieve as ``user``'s active script."""
    with stack.managesieve() as session:
        assert session.authenticate(user, PASSWORD)
        assert session.command(f'PUTSCRIPT "{name}"', script)[0]
        assert session.command(f'SETACTIVE "{name}"')[0]


def subjects(stack: Stack, user: str, folder: str = "INBOX") -> list[str]:
    """The subjects in one of ``user``'s folders, once it holds a message."""
    return [
        str(email.message_from_bytes(raw)["Subject"])
        for raw in wait_until_delivered(stack, user, PASSWORD, folder=folder)
    ]


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
    send_note(users, "news@lists.example", "carol@example.test", subject)
    assert subjects(users, "carol@example.test", folder="Lists") == [subject]
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
    activate(users, "fay@tags.example", "tags", DETAIL_SCRIPT)
    tagged, other = f"tagged {uuid.uuid4().hex}", f"other {uuid.uuid4().hex}"
    send_note(users, "a@sender.example", "fay+lists@tags.example", tagged)
    send_note(users, "a@sender.example", "fay+shop@tags.example", other)
    assert subjects(users, "fay@tags.example", folder="Tagged") == [tagged]
    assert subjects(users, "fay@tags.example") == [other]
    # An unknown address, tagged or not, still goes to the catch-all.
    send_note(users, "a@sender.example", "nobody+x@tags.example", "lost")
    assert subjects(users, "bucket@tags.example") == ["lost"]
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
