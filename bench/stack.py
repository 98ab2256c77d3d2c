"""Shell helpers for the benchmark: docker compose on the running stack (project vmm)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The running stack: `make up`'s (project vmm), or the one COMPOSE_PROJECT_NAME names.
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "vmm")
NETWORK = f"{PROJECT}_default"
# rspamd's network, which it shares with Postfix alone (compose.yaml).
FILTER_NETWORK = f"{PROJECT}_filter"


def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=ROOT, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])}: {result.stderr.strip()[-500:]}")
    return result.stdout


def start_container(name: str, *args: str) -> None:
    """``docker run -d --name NAME ARGS``: a reference daemon of this run, in place of one
    an earlier run left behind."""
    run("docker", "rm", "-f", name, check=False)
    run("docker", "run", "-d", "--name", name, *args)


def compose(*args: str, stdin: str | None = None, check: bool = True) -> str:
    return run("docker", "compose", *args, stdin=stdin, check=check)


def vmm(*args: str, stdin: str | None = None, check: bool = True) -> str:
    return compose("run", "--rm", "-T", "vmm", *args, stdin=stdin, check=check)


def exec_in(service: str, *command: str, stdin: str | None = None) -> str:
    return compose("exec", "-T", service, *command, stdin=stdin)


def sql(query: str) -> list[list[str]]:
    """A query as PostgreSQL's superuser (local peer authentication in the container)."""
    out = exec_in(
        "postgres", "runuser", "-u", "postgres", "--", "psql", "-d", "mailsys", "-AtF", "\t", "-c", query
    )
    return [line.split("\t") for line in out.splitlines() if line]


def by_service(field: str) -> dict[str, str]:
    """``field`` (a docker ps template such as ``{{.Status}}``) of each running service of
    the stack, asked of the engine (``docker ps``, 30 ms of CPU, rather than ``docker
    compose ps``, 170 ms)."""
    out = run(
        "docker",
        "ps",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--format",
        '{{.Label "com.docker.compose.service"}}\t' + field,
    )
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def wait_healthy(timeout: float = 120) -> float:
    """Seconds until every running service with a healthcheck reports healthy (asked of
    the engine: the polling must not slow down the start it times)."""
    started = time.monotonic()
    while True:
        states = by_service("{{.Status}}")
        # A service without a healthcheck (the test stacks' DNS) shows no "(...)".
        if states and all("(" not in state or "(healthy)" in state for state in states.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not healthy after {timeout} s: {states}")
        time.sleep(0.2)
