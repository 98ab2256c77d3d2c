"""The command line's error boundary and its session's last steps: each failure has its
documented exit code, and the error the user sees is the one that happened."""

import importlib
import os
import re
import stat
from pathlib import Path

import pytest

from vmm import dkim, tls
from vmm.errors import ExitCode, FileSystemError, ToolError
from vmm.runtime import Runtime
from vmm.session import run_each


def test_an_aborted_command_exits_with_its_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**_: object) -> None:
        raise KeyboardInterrupt

    # The module, not the package's attribute of the same name (the Typer app).
    cli_app = importlib.import_module("vmm.cli.app")
    monkeypatch.setattr(cli_app, "app", interrupted)
    with pytest.raises(SystemExit) as exited:
        cli_app.main()
    assert exited.value.code == ExitCode.ABORTED


def _failing(message: str) -> None:
    raise FileSystemError(message)


def test_a_step_that_fails_is_a_warning_and_the_others_still_run(capsys: pytest.CaptureFixture[str]) -> None:
    done: list[str] = []
    run_each(
        [lambda: _failing("cannot remove /srv/mail/x"), lambda: done.append("second")],
        "could not undo a step",
    )
    assert done == ["second"]
    assert capsys.readouterr().err == "Warning: could not undo a step: cannot remove /srv/mail/x\n"


@pytest.fixture
def failing_openssl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An openssl on PATH that fails as a broken installation would."""
    tool = tmp_path / "bin" / "openssl"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'openssl: out of entropy' >&2\nexit 1\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.usefixtures("failing_openssl")
def test_openssl_failing_is_a_tool_error_not_an_invalid_value(tmp_path: Path) -> None:
    with pytest.raises(
        ToolError, match=re.escape("cannot create a DKIM key for example.org: openssl: out of entropy")
    ) as failed:
        dkim.generate(tmp_path / "dkim", "example.org")
    assert failed.value.code == ExitCode.TOOL
    assert list((tmp_path / "dkim").iterdir()) == []  # no half-written key left


def test_a_missing_openssl_is_a_tool_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VMM_TLS_DIR", str(tmp_path / "tls"))
    with pytest.raises(ToolError, match="cannot create a self-signed certificate: openssl") as failed:
        tls.ensure_certificate(Runtime.from_env())
    assert failed.value.code == ExitCode.TOOL
