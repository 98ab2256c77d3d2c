"""backup and restore: what comes back is exactly what was saved (every row, file,
owner and mode), a bad archive changes nothing, and a populated installation is only
replaced on request."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.crafted_backups import CRAFTED, with_member
from tests.integration.conftest import DUMP, Cli
from vmm.errors import ExitCode

Files = dict[str, tuple[bytes, int, int, int]]


def files(root: Path) -> Files:
    """path -> (content, mode, uid, gid) of everything below ``root``."""
    found = {}
    for path in root.rglob("*"):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (content, info.st_mode, info.st_uid, info.st_gid)
    return found


def state(cli: Cli) -> tuple[list[tuple[object, ...]], Files, Files, Files]:
    env = cli.env
    return (
        cli.sql(DUMP),
        files(cli.mail_root),
        files(Path(env["VMM_DKIM_DIR"])),
        files(Path(env["VMM_TLS_DIR"])),
    )


def populate(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("configset", "account.password_length", "12")
    cli.ok("domainadd", "example.org")
    cli.ok("aliasdomainadd", "example.net", "example.org")
    for user in ("alice", "bob"):
        cli.ok("useradd", f"{user}@example.org", "--password-stdin", stdin=f"{user}-password\n")
    cli.ok("aliasadd", "team@example.org", "alice@example.org", "bob@example.org")
    cli.ok("relocatedadd", "carol@example.org", "carol@example.com")
    home = Path(cli.ok("userinfo", "alice@example.org").split("Home")[1].split(":", 1)[1].split()[0])
    message = home / "Maildir" / "new" / "1700000000.M1P1.mail"
    message.write_bytes(b"Subject: kept\r\n\r\nbyte for byte\r\n")
    os.chown(message, home.stat().st_uid, home.stat().st_gid)
    (Path(cli.env["VMM_TLS_DIR"]) / "cert.pem").write_text("certificate\n")


def test_restore_brings_back_exactly_what_was_backed_up(cli: Cli, tmp_path: Path) -> None:
    populate(cli)
    before = state(cli)
    archive = tmp_path / "backup.tar.gz"
    cli.ok("backup", str(archive))
    assert not Path(f"{archive}.partial").exists()
    # Life goes on after the backup: changes that the restore must undo.
    cli.ok("userdelete", "bob@example.org", "--delete-directory", "--force")
    cli.ok("useradd", "dave@example.org", "--password-stdin", stdin="dave-password\n")
    cli.ok("configset", "account.password_length", "20")
    cli.ok("dkimrotate", "example.org")

    refused = cli("restore", str(archive))
    assert refused.returncode == ExitCode.CONFLICT and "--force" in refused.stderr
    cli.ok("restore", str(archive), "--force")
    assert state(cli) == before
    # New accounts get fresh uids after the restored ones.
    cli.ok("useradd", "erin@example.org", "--password-stdin", stdin="erin-password\n")
    uids = [uid for (uid,) in cli.sql("SELECT uid FROM users ORDER BY uid")]
    assert len(set(uids)) == 3


def test_backup_streams_to_stdout_and_restore_reads_stdin(cli: Cli) -> None:
    populate(cli)
    before = state(cli)
    dumped = cli.run("backup", "-")
    assert dumped.returncode == 0, dumped.stderr
    assert gzip.decompress(dumped.stdout)  # a complete gzip stream
    cli.ok("userdelete", "alice@example.org", "--force")
    restored = cli.run("restore", "-", "--force", stdin=dumped.stdout)
    assert restored.returncode == 0, restored.stderr
    assert state(cli) == before


def test_a_damaged_archive_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    populate(cli)
    dumped = cli.run("backup", "-").stdout
    cli.ok("useradd", "dave@example.org", "--password-stdin", stdin="dave-password\n")
    before = state(cli)
    for damaged in (dumped[: len(dumped) // 2], b"not an archive", b""):
        result = cli.run("restore", "-", "--force", stdin=damaged)
        assert result.returncode == ExitCode.INVALID, result.stderr
        assert result.stderr.decode().count("\n") == 1, result.stderr
        assert state(cli) == before


def test_the_archive_is_readable_by_its_owner_alone(cli: Cli, tmp_path: Path) -> None:
    populate(cli)
    archive = tmp_path / "backup.tar.gz"
    os.umask(0o022)
    cli.ok("backup", str(archive))
    assert archive.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_archive_writes_nothing_and_changes_nothing(cli: Cli, tmp_path: Path, case: str) -> None:
    populate(cli)
    good = cli.run("backup", "-").stdout
    before = state(cli)
    outside = sorted(str(path) for path in cli.mail_root.parent.parent.rglob("*"))
    crafted = with_member(good, CRAFTED[case], b"bad")
    result = cli.run("restore", "-", "--force", stdin=crafted)
    assert result.returncode == ExitCode.INVALID, result.stderr
    assert result.stderr.decode().count("\n") == 1 and "Traceback" not in result.stderr.decode()
    assert state(cli) == before
    assert sorted(str(path) for path in cli.mail_root.parent.parent.rglob("*")) == outside
    assert not (Path(tempfile.gettempdir()) / "escaped.txt").exists()
    # The untouched archive still restores: the refusal was the crafted member's.
    assert cli.run("restore", "-", "--force", stdin=good).returncode == 0
