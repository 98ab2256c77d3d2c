"""rspamd in the stack: what users send is DKIM-signed with the key `vmm dnsrecords`
prints, incoming mail is checked (SPF, DKIM, DMARC in Authentication-Results), spam is
refused at SMTP time, and a stopped filter defers mail instead of losing it. DNS answers
come from the stack's own server (tests/e2e/dns.yaml) serving the printed records."""

from __future__ import annotations

import base64
import email
import json
import re
import smtplib
import subprocess
import time
from pathlib import Path

import dkim
import dns.resolver
import pytest
from dns.rdtypes.ANY.TXT import TXT

from tests.e2e.conftest import ROOT, Stack, rspamd_verdict, wait_until_delivered
from tests.mail import message
from vmm.dnsrecords import Record

PASSWORD = "Filter-pass-1"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def mail(stack: Stack) -> Stack:
    """alice and bob on the default domain, whose records are published in the DNS."""
    for user in ("alice", "bob"):
        stack.add_account(f"{user}@example.test", PASSWORD)
    stack.publish(stack.vmm_ok("dnsrecords", "example.test", "--address", "192.0.2.25"))
    return stack


def note(sender: str, to: str, body: str = "Hello.") -> bytes:
    return message(to, body, sender=sender, dated=True)


def stack_dns(stack: Stack) -> dns.resolver.Resolver:
    """A resolver asking the stack's DNS container (reachable from this host)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [stack.dns_address()]
    return resolver


def verify_with_dns(stack: Stack, raw: bytes) -> bool:
    resolver = stack_dns(stack)

    def txt(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        return b"".join(b"".join(record.strings) for record in answer if isinstance(record, TXT))

    return bool(dkim.verify(raw, dnsfunc=txt))


def delivered(stack: Stack, user: str, sent: bytes) -> bytes:
    """The message ``user`` received for ``sent`` (found by its Subject), as stored."""
    subject = email.message_from_bytes(sent)["Subject"]
    deadline = time.monotonic() + 30
    while True:
        for raw in wait_until_delivered(stack, user, PASSWORD):
            if email.message_from_bytes(raw)["Subject"] == subject:
                return raw
        assert time.monotonic() < deadline, f"{subject} not delivered to {user}"
        time.sleep(0.3)


def header(raw: bytes, name: str) -> str | None:
    value = email.message_from_bytes(raw)[name]
    return None if value is None else " ".join(str(value).split())


def signature(raw: bytes) -> dict[str, str]:
    value = header(raw, "DKIM-Signature")
    assert value is not None, "no DKIM-Signature"
    return dict(tag.strip().split("=", 1) for tag in value.split(";") if "=" in tag)


def test_mail_submitted_on_587_is_signed_with_the_published_key(mail: Stack) -> None:
    sent = note("alice@example.test", "bob@example.test")
    mail.submit("alice@example.test", PASSWORD, ["bob@example.test"], sent)
    received = delivered(mail, "bob@example.test", sent)
    tags = signature(received)
    info = json.loads(mail.vmm_ok("dkiminfo", "example.test", "--json"))
    assert (tags["d"], tags["s"], tags["a"]) == ("example.test", info["selector"], "rsa-sha256")
    assert verify_with_dns(mail, received)


def test_the_printed_records_are_what_the_dns_serves(mail: Stack) -> None:
    records = json.loads(mail.vmm_ok("dnsrecords", "example.test", "--json"))
    resolver = stack_dns(mail)
    by_name = {(r["name"], r["type"]): r["value"] for r in records}
    assert resolver.resolve("example.test", "MX")[0].to_text() == "10 mail.example.test."
    spf = b"".join(resolver.resolve("example.test", "TXT")[0].strings).decode()
    assert spf == by_name[("example.test.", "TXT")] == "v=spf1 mx -all"
    selector = json.loads(mail.vmm_ok("dkiminfo", "example.test", "--json"))["selector"]
    dkim_name = f"{selector}._domainkey.example.test."
    served = b"".join(resolver.resolve(dkim_name, "TXT")[0].strings).decode()
    assert served == by_name[(dkim_name, "TXT")]
    srv = resolver.resolve("_submissions._tcp.example.test", "SRV")[0].to_text()
    assert srv == "0 1 465 mail.example.test."


def test_mail_from_outside_claiming_a_local_sender_is_neither_taken_nor_signed(mail: Stack) -> None:
    # Signing is for authenticated users only: a message arriving on port 25 that claims
    # to be from the local domain is refused before it could leave with its signature.
    sent = note("alice@example.test", "bob@example.test")
    with mail.smtp() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@example.test", ["bob@example.test"], sent)
    assert refused.value.smtp_code == 554 and b"log in on port 465 or 587" in refused.value.smtp_error
    # With the header alone forged, it is taken but not signed.
    sent = note("alice@example.test", "bob@example.test")
    mail.send("eve@sender.test", ["bob@example.test"], sent)
    assert header(delivered(mail, "bob@example.test", sent), "DKIM-Signature") is None


def test_gtube_is_refused_at_smtp_time_and_a_clean_message_passes(mail: Stack) -> None:
    with mail.smtp() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        spam = note("eve@sender.test", "bob@example.test", GTUBE)
        client.sendmail("eve@sender.test", ["bob@example.test"], spam)
    assert refused.value.smtp_code == 554
    clean = note("eve@sender.test", "bob@example.test", "Lunch at noon?")
    mail.send("eve@sender.test", ["bob@example.test"], clean)
    assert header(delivered(mail, "bob@example.test", clean), "X-Spam-Status") is not None


def test_a_scan_logs_no_error_about_redis(mail: Stack) -> None:
    # rspamd's Bayes classifier, greylisting and history keep their state in Valkey:
    # without it, every scan failed on it and logged an error beside its result line.
    sent = note("eve@sender.test", "bob@example.test", "Minutes attached.")
    mail.send("eve@sender.test", ["bob@example.test"], sent)
    delivered(mail, "bob@example.test", sent)
    log = mail.compose.get_logs("rspamd")[0]
    assert "rspamd_task_write_log" in log
    assert [line for line in log.splitlines() if "redis" in line.lower()] == []


# From a client container: its first attempt, its retry after the greylisting delay
# (VMM_GREYLIST_DELAY, 5 s in the test stacks), each as "code text".
GREYLISTED = """
import smtplib, time
message = MESSAGE
def attempt():
    try:
        with smtplib.SMTP("postfix", 25, local_hostname="mx.grey.test", timeout=60) as client:
            client.sendmail("eve@grey.test", ["bob@example.test"], message)
        return "250 accepted"
    except smtplib.SMTPDataError as refused:
        return f"{refused.smtp_code} {refused.smtp_error.decode()}"
print(attempt())
time.sleep(7)
print(attempt())
"""


def test_suspicious_mail_from_a_new_sender_is_greylisted_once(mail: Stack) -> None:
    client = mail.client_address(91)
    mail.publish(
        "\n".join(
            record.zone_line()
            for record in [
                Record("grey.test.", "A", client),
                Record("mx.grey.test.", "A", client),
                Record("grey.test.", "MX", "10 mx.grey.test."),
                Record("grey.test.", "TXT", "v=spf1 -all"),
            ]
        )
        + "\n"
    )
    # SPF fails, no Date:, no Message-ID: a score past the greylist threshold (4).
    message = re.sub(rb"(Date|Message-ID): [^\r]*\r\n", b"", note("eve@grey.test", "bob@example.test"))
    first, retry = mail.client(91, GREYLISTED.replace("MESSAGE", repr(message))).splitlines()
    assert first.startswith("451 ") and "Try again later" in first, first
    assert retry == "250 accepted", retry
    delivered(mail, "bob@example.test", message)


def test_what_rspamd_learns_is_kept_in_valkey_across_restarts(mail: Stack) -> None:
    def learned_spam() -> int:
        stat, _, _ = mail.exec("rspamd", "rspamc", "stat")
        found = re.search(r"^Statfile: BAYES_SPAM .*; learned: (\d+);", stat, re.MULTILINE)
        assert found, stat
        return int(found[1])

    def stored() -> str:
        out, _, _ = mail.exec("valkey", "valkey-cli", "hget", "RS", "learns_spam")
        return out.strip()

    before = learned_spam()
    spam = note(
        "spammer@sender.test",
        "bob@example.test",
        "Cheap pills now: best price, limited offer, click here today for the discount "
        "pharmacy, free shipping worldwide, order before midnight.",
    )
    out, err, code = mail.exec_input(spam.decode(), "rspamd", "rspamc", "learn_spam")
    assert code == 0 and "success = true" in out, out + err
    # rspamc stat shows what rspamd last read from Valkey: it catches up within a minute.
    deadline = time.monotonic() + 90
    while learned_spam() != before + 1:
        assert time.monotonic() < deadline, "the learnt message is not counted"
        time.sleep(2)
    kept = stored()
    assert kept == str(before + 1)
    subprocess.run(["docker", "compose", "restart", "valkey"], cwd=ROOT, check=True, capture_output=True)
    assert stored() == kept


def _rsa_key(directory: Path) -> tuple[bytes, str]:
    """A private key (PEM) and its public key (base64 DER) for a sending domain."""
    private = directory / "sender.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private.read_bytes(), base64.b64encode(public).decode()


def test_incoming_mail_carries_spf_dkim_and_dmarc_results(mail: Stack, tmp_path: Path) -> None:
    private, public = _rsa_key(tmp_path)
    mail.publish(
        "\n".join(
            record.zone_line()
            for record in [
                Record("sender.test.", "TXT", f"v=spf1 ip4:{mail.gateway()} -all"),
                Record("s1._domainkey.sender.test.", "TXT", f"v=DKIM1; k=rsa; p={public}"),
                Record("_dmarc.sender.test.", "TXT", "v=DMARC1; p=reject"),
                Record("forged.test.", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
                Record("_dmarc.forged.test.", "TXT", "v=DMARC1; p=reject"),
            ]
        )
        + "\n"
    )
    genuine = note("eve@sender.test", "bob@example.test")
    genuine = dkim.sign(genuine, b"s1", b"sender.test", private) + genuine
    mail.send("eve@sender.test", ["bob@example.test"], genuine)
    results = str(header(delivered(mail, "bob@example.test", genuine), "Authentication-Results"))
    for verdict in ("dkim=pass", "spf=pass", "dmarc=pass"):
        assert verdict in results, results


def test_forged_verdict_headers_from_outside_are_replaced_by_the_stacks_own(mail: Stack) -> None:
    forged = note("eve@sender.test", "bob@example.test").replace(
        b"\r\n\r\n",
        (
            b"\r\nAuthentication-Results: mail.example.test; dkim=pass; spf=pass; dmarc=pass"
            b"\r\nX-Spam-Status: No, score=-100.00\r\nX-Spamd-Bar: ---------\r\n\r\n"
        ),
        1,
    )
    mail.send("eve@sender.test", ["bob@example.test"], forged)
    received = email.message_from_bytes(delivered(mail, "bob@example.test", forged))
    for name in ("Authentication-Results", "X-Spam-Status", "X-Spamd-Bar"):
        assert len(received.get_all(name) or []) <= 1, name
    assert "dkim=pass" not in str(received["Authentication-Results"])
    assert "-100.00" not in str(received["X-Spam-Status"])


def test_the_senders_dmarc_policy_acts_on_mail_that_fails_it(mail: Stack) -> None:
    # SPF "?all": neutral, so that no score of its own decides; DMARC fails (no SPF pass,
    # no DKIM) and the policy alone acts.
    mail.publish(
        "\n".join(
            record.zone_line()
            for domain, policy in [("strict", "reject"), ("careful", "quarantine"), ("relaxed", "none")]
            for record in [
                Record(f"{domain}.test.", "TXT", "v=spf1 ?all"),
                Record(f"_dmarc.{domain}.test.", "TXT", f"v=DMARC1; p={policy}"),
            ]
        )
        + "\n"
    )
    # p=reject: refused at SMTP time; the sending server tells its sender.
    rejected = note("ceo@strict.test", "bob@example.test")
    with mail.smtp() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("ceo@strict.test", ["bob@example.test"], rejected)
    assert refused.value.smtp_code == 554
    assert 'forced: reject "Action set by DMARC"' in rspamd_verdict(mail, rejected)
    # p=quarantine: delivered, marked as spam.
    quarantined = note("ceo@careful.test", "bob@example.test")
    mail.send("ceo@careful.test", ["bob@example.test"], quarantined)
    received = delivered(mail, "bob@example.test", quarantined)
    assert "dmarc=fail" in str(header(received, "Authentication-Results"))
    assert header(received, "X-Spam") == "Yes"
    assert 'forced: add header "Action set by DMARC"' in rspamd_verdict(mail, quarantined)
    # p=none: delivered as the score says, the failure recorded.
    relaxed = note("ceo@relaxed.test", "bob@example.test")
    mail.send("ceo@relaxed.test", ["bob@example.test"], relaxed)
    received = delivered(mail, "bob@example.test", relaxed)
    assert "dmarc=fail" in str(header(received, "Authentication-Results"))
    assert "Action set by DMARC" not in rspamd_verdict(mail, relaxed)


def test_a_rotated_key_signs_within_seconds_and_the_old_one_stays(mail: Stack) -> None:
    old = json.loads(mail.vmm_ok("dkiminfo", "example.test", "--json"))["selector"]
    mail.vmm_ok("dkimrotate", "example.test")
    new = json.loads(mail.vmm_ok("dkiminfo", "example.test", "--json"))["selector"]
    assert new != old
    records = mail.vmm_ok("dnsrecords", "example.test")
    mail.publish("\n".join(line for line in records.splitlines() if "_domainkey" in line) + "\n")
    stdout, _, _ = mail.exec("rspamd", "ls", "/var/lib/vmm/dkim")
    assert f"example.test.{old}.key" in stdout.split()
    deadline = time.monotonic() + 40  # rspamd rereads selectors.map every 10 s
    while True:
        sent = note("alice@example.test", "bob@example.test")
        mail.submit("alice@example.test", PASSWORD, ["bob@example.test"], sent)
        received = delivered(mail, "bob@example.test", sent)
        if signature(received)["s"] == new:
            break
        assert signature(received)["s"] == old
        assert time.monotonic() < deadline, "the new selector was not used"
        time.sleep(3)
    assert verify_with_dns(mail, received)


def test_with_the_filter_stopped_mail_is_deferred_then_accepted(mail: Stack) -> None:
    subprocess.run(["docker", "compose", "stop", "rspamd"], cwd=ROOT, check=True, capture_output=True)
    sent = note("eve@sender.test", "bob@example.test")
    try:
        with mail.smtp() as client, pytest.raises(smtplib.SMTPResponseException) as deferred:
            client.sendmail("eve@sender.test", ["bob@example.test"], sent)
        assert 400 <= deferred.value.smtp_code < 500, deferred.value
    finally:
        subprocess.run(
            ["docker", "compose", "up", "-d", "--wait", "rspamd"], cwd=ROOT, check=True, capture_output=True
        )
    mail.send("eve@sender.test", ["bob@example.test"], sent)  # the client's retry
    assert delivered(mail, "bob@example.test", sent)
