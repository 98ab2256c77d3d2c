"""Mail backends (schema 0012): accounts pinned to the Dovecot that holds their mail, the
placement of new ones, and the proxy tier's lookup that routes logins and deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import DUMP, Cli
from vmm.errors import ExitCode

PW = "a long enough password\n"


def _accounts(cli: Cli, domain: str, *names: str) -> None:
    for name in names:
        cli.ok("ua", f"{name}@{domain}", "--password-stdin", stdin=PW)


def _backends(cli: Cli) -> dict[str, dict[str, object]]:
    return {entry["name"]: entry for entry in json.loads(cli.ok("backendlist", "--json"))}


@pytest.fixture
def domain(cli: Cli) -> str:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "tiers.example")
    return "tiers.example"


def test_without_backends_one_dovecot_holds_every_mailbox(cli: Cli, domain: str) -> None:
    _accounts(cli, domain, "solo")
    info = json.loads(cli.ok("ui", f"solo@{domain}", "--json"))
    assert info["backend"] is None and (Path(info["home"]) / "Maildir" / "new").is_dir()
    assert "None (one Dovecot holds every mailbox)" in cli.ok("backendlist")
    # No backend to proxy to: the proxy lookup finds nobody.
    assert cli.sql("SELECT * FROM dovecot_proxy('solo', 'tiers.example', 'imap')") == []


def test_the_first_backend_takes_existing_accounts_and_new_ones_go_to_the_emptiest(
    cli: Cli, domain: str
) -> None:
    _accounts(cli, domain, "old1", "old2")
    assert "2 existing accounts are now on mail1" in cli.ok("backendadd", "mail1", "dovecot-1")
    cli.ok("ba", "mail2", "dovecot-2")
    _accounts(cli, domain, "new1", "new2", "new3")
    placed = {
        name: json.loads(cli.ok("ui", f"{name}@{domain}", "--json"))["backend"]
        for name in ("old1", "old2", "new1", "new2", "new3")
    }
    # mail2 was empty: it takes new accounts until it holds as many as mail1 (ties: by name).
    assert placed == {"old1": "mail1", "old2": "mail1", "new1": "mail2", "new2": "mail2", "new3": "mail1"}
    assert "Backend" in cli.ok("ui", f"new1@{domain}")
    assert {name: entry["accounts"] for name, entry in _backends(cli).items()} == {"mail1": 3, "mail2": 2}
    # A backend closed to new accounts gets none; its accounts stay.
    cli.ok("backendaccept", "mail2", "no")
    _accounts(cli, domain, "new4", "new5")
    assert {name: entry["accounts"] for name, entry in _backends(cli).items()} == {"mail1": 5, "mail2": 2}
    cli.ok("bx", "mail1", "no")
    refused = cli("ua", f"new6@{domain}", "--password-stdin", stdin=PW)
    assert refused.returncode == ExitCode.CONFLICT
    assert refused.stderr.strip() == "Error: no backend accepts new accounts (vmm backendaccept NAME yes)"


def test_accounts_on_a_backend_get_no_maildir_from_the_cli_and_imports_are_spread(
    cli: Cli, domain: str
) -> None:
    """The backend's Dovecot creates a Maildir at the first delivery or login; this
    stack's mail root is not where that mail lives."""
    cli.ok("ba", "mail1", "dovecot-1")
    cli.ok("ba", "mail2", "dovecot-2")
    _accounts(cli, domain, "kim")
    kim = json.loads(cli.ok("ui", f"kim@{domain}", "--json"))
    # In the backend's volume, where no domain directory exists (schema 0013); the
    # backend's Dovecot is told the same.
    assert kim["home"] == f"/srv/mail/homes/{kim['uid']}" and not Path(kim["home"]).exists()
    assert cli.sql("SELECT home FROM dovecot_user('kim', 'tiers.example')") == [(kim["home"],)]
    rows = "address,password\n" + "".join(f"bulk{n}@{domain},password-number-{n}\n" for n in range(6))
    assert "imported 6 accounts" in cli.ok("import", "-", stdin=rows)
    # kim went to mail1 (a tie, by name); the six fill mail2 up, then alternate.
    assert {name: entry["accounts"] for name, entry in _backends(cli).items()} == {"mail1": 4, "mail2": 3}
    homes = [json.loads(cli.ok("ui", f"bulk{n}@{domain}", "--json"))["home"] for n in range(6)]
    assert not any(Path(home).exists() for home in homes)


def test_the_proxy_lookup_names_the_backend_for_logins_and_deliveries(cli: Cli, domain: str) -> None:
    cli.ok("ba", "mail1", "dovecot-1.tiers.internal")
    cli.ok("ada", "tiers.example.net", domain)
    _accounts(cli, domain, "kim")

    # Under the alias domain's name, in another case: as a client may type it.
    routes = """SELECT protocol, "user", proxy, host
                  FROM unnest(ARRAY['imap', 'pop3', 'sieve', 'lmtp']) AS protocol,
                       dovecot_proxy('Kim', 'Tiers.Example.NET', protocol)"""
    backend = (f"kim@{domain}", "y", "dovecot-1.tiers.internal")
    assert cli.sql(routes) == [(protocol, *backend) for protocol in ("imap", "pop3", "sieve", "lmtp")]
    # A service the account may not use finds nobody, as the backend's own lookup does;
    # a delivery is no login and still reaches the backend.
    cli.ok("userservices", f"kim@{domain}", "pop3")
    assert cli.sql(routes) == [(protocol, *backend) for protocol in ("pop3", "lmtp")]


def test_bad_input_leaves_the_data_as_it_was(cli: Cli, domain: str) -> None:
    _accounts(cli, domain, "kim")
    cli.ok("ba", "mail1", "dovecot-1")
    before = cli.sql(DUMP)
    cases = [
        (("ba", "Mail_1", "dovecot-9"), ExitCode.INVALID, "invalid backend name 'Mail_1'"),
        (("ba", "mail9", "dove cot"), ExitCode.INVALID, "invalid backend host 'dove cot'"),
        (("ba", "mail1", "dovecot-9"), ExitCode.EXISTS, "the backend mail1 already exists"),
        (("ba", "mail9", "dovecot-1"), ExitCode.EXISTS, "the backend mail1 already exists"),
        (("bd", "mail1"), ExitCode.CONFLICT, "1 account(s) are on the backend mail1"),
        (("bd", "mail9"), ExitCode.NOT_FOUND, "the backend mail9 does not exist"),
        (("bx", "mail9", "yes"), ExitCode.NOT_FOUND, "the backend mail9 does not exist"),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert cli.sql(DUMP) == before
    cli.ok("ba", "mail2", "dovecot-2")
    cli.ok("bd", "mail2")
    assert list(_backends(cli)) == ["mail1"]


def test_a_moving_account_is_held_by_the_proxy_lookup(cli: Cli, domain: str) -> None:
    cli.ok("ba", "mail1", "dovecot-1")
    cli.ok("ba", "mail2", "dovecot-2")
    _accounts(cli, domain, "kim")
    routes = "SELECT host FROM dovecot_proxy('kim', 'tiers.example', 'lmtp')"
    assert cli.sql(routes) == [("dovecot-1",)]
    # What `usermove` sets for the seconds of its last copy: Dovecot answers the failed
    # lookup with a temporary failure (LMTP 451), so Postfix holds the mail.
    cli.sql("UPDATE users SET moving_to = 'mail2' WHERE local_part = 'kim'")
    with pytest.raises(psycopg.errors.LockNotAvailable, match=r"the mailbox of kim@tiers\.example is moving"):
        cli.sql(routes)


def test_usermove_refuses_what_it_cannot_move(cli: Cli, domain: str) -> None:
    _accounts(cli, domain, "solo")
    result = cli("usermove", f"solo@{domain}", "mail1")
    assert result.returncode == ExitCode.CONFLICT and "this stack has no mail backends" in result.stderr
    cli.ok("ba", "mail1", "dovecot-1")
    cli.ok("ba", "mail2", "dovecot-2")
    cli.ok("ba", "mail3", "dovecot-3")
    cli.sql("UPDATE users SET moving_to = 'mail2' WHERE local_part = 'solo'")
    # An interrupted move shows, and can only be finished.
    assert json.loads(cli.ok("ui", f"solo@{domain}", "--json"))["moving_to"] == "mail2"
    assert "Moving to........: mail2" in cli.ok("ui", f"solo@{domain}")
    _accounts(cli, domain, "kim")
    kim = json.loads(cli.ok("ui", f"kim@{domain}", "--json"))["backend"]
    before = cli.sql(DUMP)
    cases = [
        (("um", f"kim@{domain}", kim), ExitCode.CONFLICT, f"kim@{domain} is on the backend {kim} already"),
        (("um", f"kim@{domain}", "mail9"), ExitCode.NOT_FOUND, "the backend mail9 does not exist"),
        (
            ("um", f"nobody@{domain}", "mail2"),
            ExitCode.NOT_FOUND,
            f"the account nobody@{domain} does not exist",
        ),
        (("um", "not an address", "mail2"), ExitCode.INVALID, "not an address"),
        (
            ("um", f"solo@{domain}", "mail3"),
            ExitCode.CONFLICT,
            "is being moved to mail2; finish that move first",
        ),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert cli.sql(DUMP) == before
