"""Shell helpers for the benchmark: docker compose on the running stack (project vmm)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The running stack: `make up`'s (project vmm), or the one COMPOSE_PROJECT_NAME names.
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "vmm")
NETWORK = f"{PROJECT}_default"


def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=ROOT, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])}: {result.stderr.strip()[-500:]}")
    return result.stdout


def compose(*args: str, stdin: str | None = None, check: bool = True) -> str:
    return run("docker", "compose", *args, stdin=stdin, check=check)


def vmm(*args: str, stdin: str | None = None, check: bool = True) -> str:
    return compose("run", "--rm", "-T", "vmm", *args, stdin=stdin, check=check)


def exec_in(service: str, *command: str, stdin: str | None = None) -> str:
    return compose("exec", "-T", service, *command, stdin=stdin)


def sql(query: str) -> list[list[str]]:
    """A query as PostgreSQL's superuser (local peer authentication in the container)."""
    out = exec_in("postgres", "runuser", "-u", "postgres", "--", "psql", "-d", "mailsys", "-AtF", "\t",
                  "-c", query)
    return [line.split("\t") for line in out.splitlines() if line]


def wait_healthy(timeout: float = 120) -> float:
    """Seconds until every long-running service with a healthcheck reports healthy."""
    started = time.monotonic()
    while True:
        rows = [json.loads(line) for line in compose("ps", "--format", "json").splitlines() if line]
        states = {row["Service"]: row.get("Health", "") for row in rows}
        # "" is a service without a healthcheck (the test stacks' DNS).
        if states and all(state in ("healthy", "") for state in states.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not healthy after {timeout} s: {states}")
        time.sleep(0.1)
