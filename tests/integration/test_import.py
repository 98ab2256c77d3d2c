"""`vmm import`: many accounts in one transaction, all or none."""

from __future__ import annotations

import json
from pathlib import Path

from passlib.hash import bcrypt

from tests.integration.conftest import Cli
from vmm.errors import ExitCode


def test_import_creates_accounts_with_maildirs_from_csv_and_json(cli: Cli, tmp_path: Path) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    ready = "{SHA512-CRYPT}$6$saltsalt$" + "b" * 86
    rows = "address,password\n" + "".join(f"user{n}@example.org,import-password-{n}\n" for n in range(20))
    rows += f"hashed@example.org,{ready}\n"
    out = cli.ok("import", "-", stdin=rows)
    assert "imported 21 accounts" in out
    assert cli.sql("SELECT count(*) FROM users") == [(21,)]
    [(stored,)] = cli.sql("SELECT passwd FROM users WHERE local_part = 'user7'")
    assert bcrypt.verify("import-password-7", str(stored).removeprefix("{BLF-CRYPT}"))
    assert cli.sql("SELECT passwd FROM users WHERE local_part = 'hashed'") == [(ready,)]
    info = json.loads(cli.ok("ui", "user19@example.org", "--json"))
    assert (Path(info["home"]) / "Maildir" / "new").is_dir()

    source = tmp_path / "more.json"
    source.write_text(json.dumps([{"address": "json@example.org", "password": "json-password"}]))
    cli.ok("import", str(source), "--format", "json")
    assert cli.sql("SELECT count(*) FROM users") == [(22,)]


def test_import_reports_its_phases_as_json(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    ready = "{SHA512-CRYPT}$6$saltsalt$" + "b" * 86
    rows = "address,password\nplain@example.org,import-password-1\n" + f"ready@example.org,{ready}\n"
    report = json.loads(cli.ok("import", "-", "--json", stdin=rows))
    assert report["imported"] == 2 and report["hashed"] == 1 and report["weak_hashes"] == 0
    assert report["workers"] >= 1
    assert all(report[phase] >= 0 for phase in ("hash_seconds", "store_seconds", "rest_seconds"))


def test_import_is_all_or_nothing(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "taken@example.org", "--password-stdin", stdin="pw-long-enough\n")
    before = sorted(p.name for p in cli.mail_root.rglob("*"))
    rows = "address,password\nnew1@example.org,a\ntaken@example.org,b\n"
    result = cli("import", "-", stdin=rows)
    assert result.returncode == ExitCode.EXISTS and "taken@example.org" in result.stderr
    rows = "address,password\nnew1@example.org,a\nnew2@missing.example,b\n"
    assert cli("import", "-", stdin=rows).returncode == ExitCode.NOT_FOUND
    assert cli("import", "-", stdin="address,password\nbad address,a\n").returncode == ExitCode.INVALID
    assert cli("import", "-", stdin="nonsense").returncode == ExitCode.INVALID
    assert cli.sql("SELECT count(*) FROM users") == [(1,)]
    assert sorted(p.name for p in cli.mail_root.rglob("*")) == before
