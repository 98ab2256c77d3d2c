"""vmm(1)'s semantics in the live stack, each proven with real mail or a real login:
catch-all priority, aliases, alias domains, relocated users, services, quotas,
transports, Maildir layout, IDN domains and every password scheme."""

from __future__ import annotations

import imaplib
import json
import poplib
import smtplib
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, mail_log, wait_for_log, wait_until_delivered
from tests.mail import message, tls_context
from vmm import passwords
from vmm.errors import ExitCode

PW = "correct horse"


@pytest.fixture(scope="module", autouse=True)
def never_bounces(stack: Stack) -> Iterator[None]:
    """Whatever the tests here refuse, defer or deliver, Postfix bounces none of it:
    checked after the last of them, whichever ran and in whatever order."""
    yield
    assert "status=bounced" not in mail_log(stack)


def test_catchall_has_the_lowest_priority(stack: Stack) -> None:
    stack.add_domain("catch.example")
    for user in ("alice", "bucket"):
        stack.add_account(f"{user}@catch.example", PW)
    stack.vmm_ok("aliasadd", "team@catch.example", "alice@catch.example")
    stack.vmm_ok("relocatedadd", "gone@catch.example", "gone@new.example")
    stack.vmm_ok("catchalladd", "catch.example", "bucket@catch.example")

    stack.send("s@sender.example", ["alice@catch.example"], message("alice@catch.example", "to alice"))
    stack.send("s@sender.example", ["team@catch.example"], message("team@catch.example", "to team"))
    stack.send("s@sender.example", ["whoever@catch.example"], message("whoever@catch.example", "to x"))
    code, reply = stack.rcpt("gone@catch.example")
    assert code == 550 and b"gone@new.example" in reply

    alice = wait_until_delivered(stack, "alice@catch.example", PW, count=2)
    bucket = wait_until_delivered(stack, "bucket@catch.example", PW, count=1)
    assert sorted(b"to alice" in m or b"to team" in m for m in alice) == [True, True]
    assert len(bucket) == 1 and b"to x" in bucket[0]


def test_alias_expands_to_several_destinations_with_placeholders(stack: Stack) -> None:
    stack.add_domain("alias.example")
    stack.vmm_ok("aliasdomainadd", "alias.example.net", "alias.example")
    for user in ("bob", "sales=alias.example", "sales=alias.example.net"):
        stack.add_account(f"{user}@alias.example", PW)
    # Local and remote destinations; %= is the address with @ replaced by =.
    stack.vmm_ok(
        "aliasadd", "sales@alias.example", "bob@alias.example", "%=@alias.example", "%n.%d@remote.example"
    )
    # Postfix's own lookup shows the substitution for each name of the domain.
    assert set(stack.postmap("virtual_alias_maps", "sales@alias.example.net").split(",")) == {
        "bob@alias.example",
        "sales=alias.example.net@alias.example",
        "sales.alias.example.net@remote.example",
    }
    stack.vmm_ok("aliasdelete", "sales@alias.example", "%n.%d@remote.example")  # no mail off the box

    stack.send("s@sender.example", ["sales@alias.example.net"], message("sales@alias.example.net"))
    stack.send("s@sender.example", ["sales@alias.example"], message("sales@alias.example"))
    assert len(wait_until_delivered(stack, "bob@alias.example", PW, count=2)) == 2
    assert len(wait_until_delivered(stack, "sales=alias.example.net@alias.example", PW)) == 1
    assert len(wait_until_delivered(stack, "sales=alias.example@alias.example", PW)) == 1


def test_alias_domain_delivers_to_the_target_domain_and_switches(stack: Stack) -> None:
    stack.add_domain("first.example")
    stack.add_domain("second.example")
    stack.add_account("carol@first.example", PW)
    stack.add_account("carol@second.example", PW)
    stack.vmm_ok("aliasdomainadd", "moving.example", "first.example")
    stack.send("s@sender.example", ["carol@moving.example"], message("carol@moving.example", "one"))
    [first] = wait_until_delivered(stack, "carol@first.example", PW)
    assert b"one" in first
    # The account also logs in under the alias domain's name.
    stack.imap_login("carol@moving.example", PW).logout()

    stack.vmm_ok("aliasdomainswitch", "moving.example", "second.example")
    stack.send("s@sender.example", ["carol@moving.example"], message("carol@moving.example", "two"))
    [second] = wait_until_delivered(stack, "carol@second.example", PW)
    assert b"two" in second
    assert stack.rcpt("nobody@moving.example")[0] == 550


def test_relocated_user_is_refused_with_postfix_relocated_reply(stack: Stack) -> None:
    stack.add_domain("reloc.example")
    stack.vmm_ok("relocatedadd", "dave@reloc.example", "dave@elsewhere.example")
    code, reply = stack.rcpt("dave@reloc.example")
    assert code == 550
    assert reply.startswith(b"5.1.6") and b"moved to dave@elsewhere.example" in reply


def test_disabled_services_refuse_logins(stack: Stack) -> None:
    stack.add_domain("svc.example")
    stack.add_account("erin@svc.example", PW)
    stack.add_account("frank@svc.example", PW)
    stack.vmm_ok("userservices", "erin@svc.example", "-s", "pop3", "smtp")  # no imap
    stack.vmm_ok("userservices", "frank@svc.example", "-s", "imap")  # no smtp, no pop3

    with pytest.raises(imaplib.IMAP4.error):
        stack.imap_login("erin@svc.example", PW)
    pop = poplib.POP3("127.0.0.1", stack.port(110), timeout=30)
    pop.stls(context=tls_context())
    pop.user("erin@svc.example")
    assert pop.pass_(PW).startswith(b"+OK")
    pop.quit()

    stack.imap_login("frank@svc.example", PW).logout()
    with stack.smtp(587) as client:
        client.starttls(context=tls_context())
        client.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("frank@svc.example", PW)
        assert client.login("erin@svc.example", PW)[0] == 235

    # ManageSieve follows the sieve service.
    stack.vmm_ok("userservices", "frank@svc.example", "-s", "imap", "sieve")
    assert stack.managesieve_login("frank@svc.example", PW)
    assert not stack.managesieve_login("erin@svc.example", PW)

    # A domain-wide change reaches accounts without an override of their own.
    stack.add_account("gina@svc.example", PW)
    stack.vmm_ok("domainservices", "svc.example", "-s", "smtp")
    with pytest.raises(imaplib.IMAP4.error):
        stack.imap_login("gina@svc.example", PW)


def test_quota_refuses_at_rcpt_and_never_bounces(stack: Stack) -> None:
    stack.add_domain("quota.example")
    stack.add_account("hank@quota.example", PW)
    stack.add_account("ivy@quota.example", PW)
    stack.vmm_ok("userquota", "hank@quota.example", "20k")
    stack.vmm_ok("domainquota", "quota.example", "0", "-m", "1")  # ivy: one message

    stack.send("s@sender.example", ["hank@quota.example"], message("hank@quota.example", size=12_000))
    wait_until_delivered(stack, "hank@quota.example", PW)
    # The next 12 kB would exceed 20 kB: refused at RCPT, the sender is told.
    code, reply = stack.rcpt("hank@quota.example", size=12_000)
    assert code == 552 and b"5.2.2" in reply
    assert stack.rcpt("hank@quota.example", size=1_000)[0] == 250
    # The same mailbox under an alias domain's name is just as full.
    stack.vmm_ok("aliasdomainadd", "quota-alias.example", "quota.example")
    assert stack.rcpt("hank@quota-alias.example", size=12_000)[0] == 552

    stack.send("s@sender.example", ["ivy@quota.example"], message("ivy@quota.example"))
    wait_until_delivered(stack, "ivy@quota.example", PW)
    assert stack.rcpt("ivy@quota.example", size=100)[0] == 552

    # A client that declares no SIZE gets past RCPT; Dovecot then answers LMTP with a
    # temporary failure, so the message waits in the queue instead of bouncing.
    with stack.smtp() as client:
        client.mail("forged@victim.example")
        assert client.rcpt("hank@quota.example")[0] == 250
        assert client.data(message("hank@quota.example", size=12_000))[0] == 250
    log = wait_for_log(stack, "to=<hank@quota.example>, relay=dovecot")
    assert "status=deferred" in log and "status=bounced" not in log
    assert "forged@victim.example" not in log.split("status=deferred")[-1]
    assert len(wait_until_delivered(stack, "hank@quota.example", PW)) == 1


def test_transports_reach_postfix(stack: Stack) -> None:
    stack.add_domain("transport.example")
    stack.add_account("jack@transport.example", PW)
    assert stack.postmap("transport_maps", "jack@transport.example") == "lmtp:inet:dovecot:24"
    stack.vmm_ok("domaintransport", "transport.example", "smtp:[mx.transport.example]:2025")
    assert stack.postmap("transport_maps", "jack@transport.example") == "smtp:[mx.transport.example]:2025"
    # vmm(1)'s own example: hold mail for an account while its mailbox is migrated.
    stack.vmm_ok("usertransport", "jack@transport.example", "retry:4.0.0 Mailbox being migrated")
    code, reply = stack.rcpt("jack@transport.example")
    assert code == 450 and b"Mailbox being migrated" in reply
    stack.vmm_ok("usertransport", "jack@transport.example", "domain")
    stack.vmm_ok("domaintransport", "transport.example", "lmtp:inet:dovecot:24")
    stack.send("s@sender.example", ["jack@transport.example"], message("jack@transport.example"))
    assert len(wait_until_delivered(stack, "jack@transport.example", PW)) == 1


def test_useradd_creates_a_maildir_dovecot_serves_with_subscribed_folders(stack: Stack) -> None:
    stack.add_domain("dirs.example")
    stack.add_account("kim@dirs.example", PW)
    info = json.loads(stack.vmm_ok("userinfo", "kim@dirs.example", "--json"))
    stdout, _, code = stack.exec("dovecot", "stat", "-c", "%u %g %a", info["home"] + "/Maildir/.Sent")
    assert code == 0 and stdout.split() == [str(info["uid"]), str(info["gid"]), "700"]
    client = stack.imap_login("kim@dirs.example", PW)
    _, subscribed = client.lsub()
    client.logout()
    names = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in subscribed if isinstance(line, bytes)}
    assert {"Drafts", "Sent", "Templates", "Trash"} <= names


def test_idn_domain_receives_mail(stack: Stack) -> None:
    stack.add_domain("bücher.example")
    stack.add_account("anna@bücher.example", PW)
    stack.send("s@sender.example", ["anna@xn--bcher-kva.example"], message("anna@xn--bcher-kva.example"))
    assert len(wait_until_delivered(stack, "anna@xn--bcher-kva.example", PW)) == 1


@pytest.mark.parametrize("scheme", [scheme.name for scheme in passwords.WRITABLE])
def test_every_scheme_verifies_in_dovecot_and_logs_in(stack: Stack, scheme: str) -> None:
    hashed = passwords.hash_password(PW, scheme, passwords.Rounds())
    _, stderr, code = stack.exec("dovecot", "doveadm", "pw", "-t", hashed, "-p", PW)
    assert code == 0, f"{scheme}: {stderr}"
    _, _, code = stack.exec("dovecot", "doveadm", "pw", "-t", hashed, "-p", PW + "!")
    assert code != 0
    address = f"pw-{scheme.lower()}@schemes.example"
    if "schemes.example" not in stack.vmm_ok("listdomains"):
        stack.add_domain("schemes.example")
    stack.add_account(address, "initial-password")
    change = ("userpassword", address, "-s", scheme, "--password-stdin")
    if scheme in {weak.name for weak in passwords.WRITABLE if weak.weak}:
        # Weak schemes are written only where the postmaster allows them.
        refused = stack.vmm(*change, stdin=PW + "\n")
        assert refused.returncode == ExitCode.INVALID and "VMM_ALLOW_WEAK_SCHEMES" in refused.stderr
        stack.vmm_ok(*change, stdin=PW + "\n", env={"VMM_ALLOW_WEAK_SCHEMES": "yes"})
    else:
        stack.vmm_ok(*change, stdin=PW + "\n")
    stack.imap_login(address, PW).logout()


def _stored_hash(stack: Stack) -> str:
    """The stored hash of cramuser@legacy.example (below)."""
    out, err, code = stack.psql_as("vmm", "SELECT passwd FROM users WHERE local_part = 'cramuser'")
    assert code == 0, err
    return out.strip()


def test_legacy_hash_is_rehashed_at_the_first_login(stack: Stack) -> None:
    """vmm 0.6's default CRAM-MD5 keeps working, and the first login with it stores the
    password in the installation's scheme; a wrong password changes nothing."""
    stack.add_domain("legacy.example")
    address = "cramuser@legacy.example"
    stack.add_account(address, "initial-password")
    cram, err, code = stack.exec("dovecot", "doveadm", "pw", "-s", "CRAM-MD5", "-p", PW)
    assert code == 0, err
    weak = {"VMM_ALLOW_WEAK_SCHEMES": "yes"}
    stack.vmm_ok("userpassword", address, "--hash", stdin=cram.strip() + "\n", env=weak)
    before = json.loads(stack.vmm_ok("listpwschemes", "--json"))
    assert before["stored"]["CRAM-MD5"] >= 1 and before["legacy_hashes"] >= 1

    with pytest.raises(imaplib.IMAP4.error):
        stack.imap_login(address, PW + "!")
    assert _stored_hash(stack) == cram.strip()

    stack.imap_login(address, PW).logout()
    rehashed = _stored_hash(stack)
    assert rehashed.startswith("{" + passwords.DEFAULT_SCHEME + "}"), rehashed
    _, _, code = stack.exec("dovecot", "doveadm", "pw", "-t", rehashed, "-p", PW)
    assert code == 0
    after = json.loads(stack.vmm_ok("listpwschemes", "--json"))
    assert after["legacy_hashes"] == before["legacy_hashes"] - 1
    assert "rehash: the password moved from a legacy scheme" in mail_log(stack, "dovecot")
    # Past Dovecot's cache too: the new hash is what the next lookup finds.
    stack.exec("dovecot", "doveadm", "auth", "cache", "flush")
    stack.imap_login(address, PW).logout()
    assert _stored_hash(stack) == rehashed
