"""`vmm migrate-from`: a Virtual Mail Manager database of each released schema
(tests/fixtures/vmm, vmm's own create_tables.pgsql), filled the way vmm writes rows, in a
PostgreSQL of its own, moves into ours with its Maildirs; bad input changes nothing."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import oldvmm
from tests.integration.conftest import DUMP, Cli, postgres

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "fixtures" / "vmm"
CRAM_MD5 = "{CRAM-MD5}" + "a1" * 32
SHA512_CRYPT = "{SHA512-CRYPT}$6$rounds=5000$salt$" + "x" * 86
SSHA = "{SSHA}" + "QUJD" * 8  # vmm 0.5 kept at most 74 characters

# Rows as vmm 0.6 and 0.7-dev write them: defaults by reference to the shared
# quotalimit/service_set/transport rows, an account's NULL meaning its domain's.
ROWS_06 = """
INSERT INTO quotalimit (bytes, messages) VALUES (1048576, 100);
INSERT INTO transport (transport) VALUES ('smtp:[relay.example]');
INSERT INTO domain_data (gid, domaindir, note) VALUES (70001, '/srv/mail/5/70001', 'the old domain');
INSERT INTO domain_name VALUES ('old.example', 70001, true), ('alias-old.example', 70001, false);
INSERT INTO domain_data (gid, domaindir, qid, ssid) VALUES (70002, '/srv/mail/a/70002', 2, 2);
INSERT INTO domain_name VALUES ('xn--mller-kva.example', 70002, true);
INSERT INTO users (local_part, passwd, name, uid, gid)
     VALUES ('inherit', '{CRAM_MD5}', 'Inherits', 70010, 70001);
-- qid 2: 1 MiB and 100 messages; ssid 10: no SMTP, no ManageSieve; tid 2: the relay
INSERT INTO users (local_part, passwd, name, uid, gid, qid, ssid, tid, note)
     VALUES ('own', '{SHA512_CRYPT}', 'Own Everything', 70011, 70001, 2, 10, 2, 'overrides');
INSERT INTO users (local_part, passwd, uid, gid) VALUES ('ida', '{SHA512_CRYPT}', 70012, 70002);
INSERT INTO alias VALUES (70001, 'team', 'inherit@old.example'), (70001, 'team', 'own@old.example'),
                         (70001, 'self', '%n@elsewhere.example');
INSERT INTO catchall VALUES (70001, 'inherit@old.example');
INSERT INTO relocated VALUES (70001, 'gone', 'new@elsewhere.example');
"""
# vmm 0.5: no quota, no catch-all, services and a transport on every account.
ROWS_05 = """
INSERT INTO domain_data (gid, domaindir) VALUES (70001, '/srv/mail/5/70001');
INSERT INTO domain_name VALUES ('old.example', 70001, true), ('alias-old.example', 70001, false);
INSERT INTO domain_data (gid, domaindir) VALUES (70002, '/srv/mail/a/70002');
INSERT INTO domain_name VALUES ('xn--mller-kva.example', 70002, true);
INSERT INTO transport (transport) VALUES ('smtp:[relay.example]');
INSERT INTO users (local_part, passwd, name, uid, gid)
     VALUES ('inherit', '{CRAM_MD5}', 'Inherits', 70010, 70001);
INSERT INTO users (local_part, passwd, name, uid, gid, tid, smtp, managesieve)
     VALUES ('own', '{SSHA}', 'Own Everything', 70011, 70001, 2, false, false);
INSERT INTO users (local_part, passwd, uid, gid) VALUES ('ida', '{SSHA}', 70012, 70002);
INSERT INTO alias VALUES (70001, 'team', 'inherit@old.example'), (70001, 'team', 'own@old.example'),
                         (70001, 'self', '%n@elsewhere.example');
INSERT INTO relocated VALUES (70001, 'gone', 'new@elsewhere.example');
"""
VERSIONS = {"0.5": ("0.5.2", ROWS_05), "0.6": ("0.6.2", ROWS_06), "0.7-dev": ("0.7-dev", ROWS_06)}


def _psql(container: str, sql: str) -> None:
    result = subprocess.run(
        ["docker", "exec", "-i", container, "runuser", "-u", "postgres", "--", "psql", "-q", "-d", "mailsys"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "ERROR" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A PostgreSQL of its own (the old host's) with one schema per vmm version, each
    loaded from vmm's file and filled; the role vmm may read them. (host, port, password)"""
    secrets = tmp_path_factory.mktemp("old-secrets")
    with postgres("vmmtest-oldpg", secrets) as container:
        name = container.get_wrapped_container().name
        for version, (schema_file, rows) in VERSIONS.items():
            schema = schema_of(version)
            # PostgreSQL 17 has plpgsql built in; vmm 0.6's file still creates it.
            text = (SCHEMAS / f"{schema_file}.pgsql").read_text().replace("CREATE LANGUAGE plpgsql;", "")
            hashes = {"{CRAM_MD5}": CRAM_MD5, "{SHA512_CRYPT}": SHA512_CRYPT, "{SSHA}": SSHA}
            for token, value in hashes.items():
                rows = rows.replace(token, value)
            _psql(
                name,
                f"CREATE SCHEMA {schema}; SET search_path = {schema};\n{text}\n{rows}\n"
                f"GRANT USAGE ON SCHEMA {schema} TO vmm;"
                f" GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO vmm;",
            )
        password = (secrets / "vmm" / "password").read_text().strip()
        yield f"host=127.0.0.1 port={container.get_exposed_port(5432)} dbname=mailsys user=vmm", password


def schema_of(version: str) -> str:
    """The old server's schema that holds ``version``'s database: v05, v06, v07dev."""
    return "v" + version.replace(".", "").replace("-", "")


def dsn(server: tuple[str, str], version: str) -> str:
    return f"{server[0]} options=-csearch_path={schema_of(version)}"


def old_mail(root: Path) -> Path:
    """The old mail root: a Maildir with Dovecot's uidlist and keywords, a flagged
    message, a subfolder and a Sieve script for inherit@old.example."""
    home = root / "5" / "70001" / "70010"
    maildir = oldvmm.maildir(
        home / "Maildir", {1: ("1700000000.M1P1.old:2,FS", "Subject: kept\n\nhello\n")}, 2, 1700000000
    )
    oldvmm.maildir(maildir / ".Lists", {}, 1, 1700000001)
    (home / "Maildir" / "dovecot-keywords").write_text("0 $Forwarded\n")
    (home / ".dovecot.sieve").write_text('require "fileinto";\nfileinto "Lists";\n')
    for uid, where in ((70011, "5/70001"), (70012, "a/70002")):
        (root / where / str(uid) / "Maildir" / "cur").mkdir(parents=True)
    return root


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_every_object_moves_with_its_mail(
    cli: Cli, old_server: tuple[str, str], tmp_path: Path, version: str
) -> None:
    source = old_mail(tmp_path / "old")
    args = ("migrate-from", dsn(old_server, version), "--password-file", "-", "--maildirs", str(source))
    weak = {**cli.env, "VMM_ALLOW_WEAK_SCHEMES": "yes"}
    dry = Cli(weak, cli.mail_root)(*args, "--dry-run", "--json", stdin=old_server[1] + "\n")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["version"] == version
    assert report["counts"]["accounts"] == 3 and report["counts"]["alias domains"] == 1
    assert report["weak_hashes"] == {"inherit@old.example": "CRAM-MD5"}
    assert report["disk_bytes"] > 0
    assert cli.sql("SELECT count(*) FROM users") == [(0,)]  # a dry run changes nothing
    moved = Cli(weak, cli.mail_root)(*args, stdin=old_server[1] + "\n")
    assert moved.returncode == 0, moved.stderr
    assert "moved 3 accounts of 2 domains" in moved.stderr
    info = json.loads(cli.ok("userinfo", "own@old.example", "--json"))
    assert info["uid"] == 70011 and info["name"] == "Own Everything"
    assert info["transport"] == "smtp:[relay.example]" and info["own_transport"]
    assert info["services"]["smtp"] is False and info["services"]["sieve"] is False
    inherit = json.loads(cli.ok("userinfo", "inherit@old.example", "--json"))
    assert not inherit["own_transport"] and not inherit["own_services"] and not inherit["own_quota"]
    assert inherit["transport"].startswith("lmtp:inet:")  # vmm's Dovecot transport: ours
    assert cli.sql("SELECT passwd FROM users WHERE uid = 70010") == [(CRAM_MD5,)]
    assert sorted(json.loads(cli.ok("aliasinfo", "team@old.example", "--json"))["destinations"]) == [
        "inherit@old.example",
        "own@old.example",
    ]
    assert json.loads(cli.ok("aliasinfo", "self@old.example", "--json"))["destinations"] == [
        "%n@elsewhere.example"
    ]
    assert "new@elsewhere.example" in cli.ok("relocatedinfo", "gone@old.example")
    assert "alias-old.example" in cli.ok("aliasdomaininfo", "alias-old.example")
    assert json.loads(cli.ok("domaininfo", "müller.example", "--json"))["domain"] == "xn--mller-kva.example"
    if version != "0.5":
        assert json.loads(cli.ok("catchallinfo", "old.example", "--json"))["destinations"] == [
            "inherit@old.example"
        ]
        assert json.loads(cli.ok("domaininfo", "old.example", "--json"))["note"] == "the old domain"
    # The mail, where Dovecot looks for it, owned by the account, uidlist and all.
    home = Path(inherit["home"])
    assert home == cli.mail_root / "5" / "70001" / "70010"
    assert (home / "Maildir" / "cur" / "1700000000.M1P1.old:2,FS").read_text().startswith("Subject: kept")
    assert (home / "Maildir" / "dovecot-uidlist").read_text().startswith("3 V1700000000")
    assert (home / ".dovecot.sieve").exists() and (home / "Maildir" / ".Lists" / "cur").is_dir()
    assert (home / "Maildir" / "dovecot-keywords").stat().st_uid == 70010
    # New accounts and domains get ids past the old ones.
    cli.ok("useradd", "new@old.example", "--password-stdin", stdin="a new password 1\n")
    assert json.loads(cli.ok("userinfo", "new@old.example", "--json"))["uid"] > 70012
    # A second run finds everything there: refused, nothing doubled.
    before = cli.sql(DUMP)
    again = Cli(weak, cli.mail_root)(*args, stdin=old_server[1] + "\n")
    assert again.returncode != 0 and "nothing moved" in again.stderr
    assert cli.sql(DUMP) == before


def test_the_old_configuration_comes_along_where_it_means_something(
    cli: Cli, old_server: tuple[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "vmm.cfg"
    config.write_text(
        "[database]\nhost = old.example\n"
        "[domain]\nauto_postmaster = false\ntransport = dovecot:\nquota_bytes = 500M\n"
        "[misc]\nbase_directory = /srv/mail\npassword_scheme = CRAM-MD5\n"
    )
    weak = Cli({**cli.env, "VMM_ALLOW_WEAK_SCHEMES": "yes"}, cli.mail_root)
    args = ("migrate-from", dsn(old_server, "0.6"), "--password-file", "-", "--config", str(config))
    report = json.loads(weak.ok(*args, "--dry-run", "--json", stdin=old_server[1] + "\n"))
    assert report["config"] == {
        "domain.auto_postmaster": "false",
        "domain.transport": "",
        "domain.quota_bytes": "500M",
    }
    assert set(report["config_left"]) == {"database.host", "misc.base_directory", "misc.password_scheme"}
    weak.ok(*args, stdin=old_server[1] + "\n")
    assert cli.ok("configget", "domain.auto_postmaster").strip() == "domain.auto_postmaster = false"
    assert cli.ok("configget", "domain.quota_bytes").strip() == "domain.quota_bytes = 500M"


def test_weak_hashes_need_the_postmasters_consent(cli: Cli, old_server: tuple[str, str]) -> None:
    result = cli("migrate-from", dsn(old_server, "0.6"), "--password-file", "-", stdin=old_server[1] + "\n")
    assert result.returncode != 0
    assert "VMM_ALLOW_WEAK_SCHEMES=yes" in result.stdout and "nothing moved" in result.stderr
    assert cli.sql("SELECT count(*) FROM domain_data") == [(0,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the old database as DSN or as --dump FILE"),
        (("host=127.0.0.1 port=1 dbname=mailsys user=vmm",), "cannot connect to the old database"),
        (("host=127.0.0.1 dbname=x user=vmm password=secret",), "never on the command line"),
        (("{old} options=-csearch_path=public",), "not a Virtual Mail Manager database"),
        (("{old} options=-csearch_path=v06", "--maildirs", "/nonexistent"), "no mail root at /nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, old_server: tuple[str, str], args: tuple[str, ...], message: str
) -> None:
    weak = Cli({**cli.env, "VMM_ALLOW_WEAK_SCHEMES": "yes"}, cli.mail_root)
    before = cli.sql(DUMP)
    given = [arg.format(old=old_server[0]) for arg in args]
    result = weak("migrate-from", *given, "--password-file", "-", stdin=old_server[1] + "\n")
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert cli.sql(DUMP) == before


def _pg_dump(version: str) -> bytes:
    """A plain pg_dump of the old server's ``version`` database, as a postmaster makes one."""
    container = f"vmmtest-oldpg-{os.getpid()}"
    dump = ["pg_dump", "-n", schema_of(version), "mailsys"]
    dumped = subprocess.run(
        ["docker", "exec", container, "runuser", "-u", "postgres", "--", *dump],
        capture_output=True,
        check=True,
    )
    return dumped.stdout


@pytest.mark.parametrize("compressed", [False, True])
def test_a_dump_moves_in_like_the_database(
    cli: Cli, old_server: tuple[str, str], tmp_path: Path, compressed: bool
) -> None:
    dump = tmp_path / ("old.sql.gz" if compressed else "old.sql")
    text = _pg_dump("0.6")
    dump.write_bytes(gzip.compress(text) if compressed else text)
    weak = Cli({**cli.env, "VMM_ALLOW_WEAK_SCHEMES": "yes"}, cli.mail_root)
    report = json.loads(weak.ok("migrate-from", "--dump", str(dump), "--dry-run", "--json"))
    assert report["version"] == "0.6" and report["counts"]["accounts"] == 3
    weak.ok("migrate-from", "--dump", str(dump))
    assert json.loads(cli.ok("userinfo", "own@old.example", "--json"))["uid"] == 70011
    assert json.loads(cli.ok("catchallinfo", "old.example", "--json"))["destinations"] == [
        "inherit@old.example"
    ]
    # The dump's tables were the command's own: ours hold what moved, and only that.
    assert cli.sql("SELECT count(*) FROM users") == [(3,)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the dump"),
        (b"PGDMP\x01\x0e", "custom-format dump"),
        (b"INSERT INTO users VALUES (1);\n", "no table data"),
        (b"CREATE TABLE public.users (\n    uid bigint); DROP TABLE users; --\n);\n", "cannot read"),
        (b"\xff\xfe", "not a plain-text pg_dump"),
    ],
)
def test_a_bad_dump_is_one_line_and_changes_nothing(
    cli: Cli, tmp_path: Path, content: bytes | None, message: str
) -> None:
    dump = tmp_path / "old.sql"
    if content is not None:
        dump.write_bytes(content)
    before = cli.sql(DUMP)
    result = cli("migrate-from", "--dump", str(dump))
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert cli.sql(DUMP) == before
    assert cli.sql("SELECT count(*) FROM users") == [(0,)]
