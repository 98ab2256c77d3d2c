"""The vmm CLI against the real PostgreSQL image, migrated by the CLI itself. Each test
starts from empty tables and a fresh mail root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from testcontainers.core.container import DockerContainer

import vmm.cli

ROOT = Path(__file__).resolve().parents[2]
TABLES = "settings, alias, relocated, users, domain_name, domain_data, mail_backend"
# Every row of every table, comparable before and after a command.
DUMP = """SELECT 'domain', d::text FROM domain_data d
          UNION ALL SELECT 'name', n::text FROM domain_name n
          UNION ALL SELECT 'user', u::text FROM users u
          UNION ALL SELECT 'alias', a::text FROM alias a
          UNION ALL SELECT 'relocated', r::text FROM relocated r
          UNION ALL SELECT 'backend', b::text FROM mail_backend b
          UNION ALL SELECT 'setting', s::text FROM settings s ORDER BY 1, 2"""


@dataclass
class Cli:
    env: dict[str, str]
    mail_root: Path

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """``vmm ARGS`` in a child forked from this interpreter, which has imported vmm
        already: the process boundary of ``python -m vmm`` (its own standard streams,
        environment, working directory and exit code) without 0.6 s of imports a call."""
        with (
            tempfile.TemporaryFile() as given,
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
        ):
            given.write(stdin)
            given.seek(0)
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child never returns to pytest)
                _run_in_child(args, self.env, given.fileno(), out.fileno(), err.fileno())
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                ["vmm", *args], os.waitstatus_to_exitcode(status), out.read(), err.read()
            )

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, stdin=(stdin or "").encode())
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )

    def process(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m vmm ARGS`` as a new interpreter: for commands that run at once
        (a fork from one of several threads could inherit another thread's locks)."""
        return subprocess.run(
            [sys.executable, "-m", "vmm", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"vmm {' '.join(args)}: {result.stderr}"
        return result.stdout

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with psycopg.connect(
            host=self.env["VMM_DB_HOST"],
            port=int(self.env["VMM_DB_PORT"]),
            dbname="mailsys",
            user="vmm",
            password=(Path(self.env["VMM_SECRETS_DIR"]) / "vmm" / "password").read_text(),
            autocommit=True,
        ) as conn:
            # Several statements run as one transaction; the rows are the last one's.
            cursor = conn.execute(query.encode())
            rows = cursor.fetchall() if cursor.description else []
            while cursor.nextset():
                rows = cursor.fetchall() if cursor.description else []
            return rows


def _run_in_child(args: tuple[str, ...], env: dict[str, str], stdin: int, stdout: int, stderr: int) -> None:
    """What ``python -m vmm`` does, in a forked child; never returns."""
    code: int | str | None = 1
    try:
        signal.alarm(60)  # the time limit subprocess.run(timeout=60) gave
        for source, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, target)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        os.chdir(ROOT)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["vmm", *args]
        # A new interpreter's warning filters, not pytest's "error".
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        vmm.cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:
        traceback.print_exc()
    finally:
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


@contextmanager
def postgres(name: str, secrets: Path) -> Iterator[DockerContainer]:
    """A container of the real vmm-postgres image, once healthy; its role passwords are
    written into ``secrets``."""
    container = (
        DockerContainer("vmm-postgres:latest")
        .with_name(f"{name}-{os.getpid()}")
        .with_exposed_ports(5432)
        .with_volume_mapping(str(secrets), "/run/vmm-secrets", "rw")
    )
    with container:
        deadline = time.monotonic() + 60
        while True:
            health = container.get_wrapped_container()
            health.reload()
            if health.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            assert time.monotonic() < deadline, "PostgreSQL did not become healthy"
            time.sleep(0.5)
        yield container


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    secrets = tmp_path_factory.mktemp("secrets")
    with postgres("vmmtest-pg", secrets) as container:
        port = int(container.get_exposed_port(5432))
        env = {
            **os.environ,
            "VMM_DB_HOST": "127.0.0.1",
            "VMM_DB_PORT": str(port),
            "VMM_SECRETS_DIR": str(secrets),
            "PYTHONPATH": str(ROOT),
        }
        migrate = subprocess.run(
            [sys.executable, "-m", "vmm", "migrate"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield env


@contextmanager
def fresh_cli(database: dict[str, str], mail_root: Path) -> Iterator[Cli]:
    """A CLI on empty tables with its own mail root; empties the tables again after."""
    mail_root.mkdir()
    (mail_root.parent / "dkim").mkdir()
    (mail_root.parent / "tls").mkdir()
    runner = Cli(
        {
            **database,
            "VMM_DKIM_DIR": str(mail_root.parent / "dkim"),
            "VMM_TLS_DIR": str(mail_root.parent / "tls"),
        },
        mail_root,
    )
    runner.ok("configset", "misc.base_directory", str(mail_root))
    try:
        yield runner
    finally:
        runner.sql(f"TRUNCATE {TABLES}")


@pytest.fixture
def cli(database: dict[str, str], tmp_path: Path) -> Iterator[Cli]:
    with fresh_cli(database, tmp_path / "mail") as runner:
        yield runner
