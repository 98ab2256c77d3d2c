"""Issue 19's accounting of a load: CPU by component from the kernel's cgroup counters
(each container's, the Docker engine's processes, the rest of the machine: the load
tools and the bench itself) and the log lines and bytes each service wrote."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stack import by_service, run

# The Docker engine: its daemons and the shim of each container, which carries the
# containers' output to the logging driver (process names as the kernel keeps them,
# cut to 15 characters).
ENGINE = ("dockerd", "containerd", "containerd-shim")
TICK = os.sysconf("SC_CLK_TCK")


def _init_processes() -> dict[str, int]:
    """service -> the init process of its container, in the running stack."""
    names = by_service("{{.Names}}")
    pids = run("docker", "inspect", "-f", "{{.State.Pid}}", *names.values()).split()
    return {service: int(pid) for service, pid in zip(names, pids, strict=True)}


def _cgroup_cpu_seconds(pid: int) -> float:
    """The CPU a container's processes used since it started: cgroup v1's cpuacct or
    v2's cpu.stat, whichever holds the process."""
    unified = ""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()) / 1e9
        if controllers == "":
            unified = path
    stat = Path(f"/sys/fs/cgroup{unified}/cpu.stat").read_text().split()
    return int(stat[stat.index("usage_usec") + 1]) / 1e6


def _process_cpu_seconds(names: tuple[str, ...]) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name in names:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _busy_cpu_seconds() -> float:
    """All CPUs' busy time since boot (user, nice, system, irq, softirq, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Snapshot:
    at: float
    containers: dict[str, float]
    engine: float
    busy: float

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            at=time.time(),
            containers={service: _cgroup_cpu_seconds(pid) for service, pid in _init_processes().items()},
            engine=_process_cpu_seconds(ENGINE),
            busy=_busy_cpu_seconds(),
        )


def cpu_ms_per_delivery(before: Snapshot, after: Snapshot, deliveries: int) -> dict[str, float]:
    """Milliseconds of CPU a delivery, by service, the Docker engine, and the rest."""
    spent = {
        service: after.containers[service] - before.containers.get(service, 0.0)
        for service in after.containers
    }
    spent["docker engine"] = after.engine - before.engine
    spent["load tools and the rest"] = (after.busy - before.busy) - sum(spent.values())
    return {name: seconds * 1000 / deliveries for name, seconds in spent.items() if seconds > 0.0005}


def log_per_message(before: Snapshot, after: Snapshot, messages: int) -> dict[str, tuple[float, float]]:
    """(lines, bytes) each service logged a message between the two snapshots."""
    found: dict[str, tuple[float, float]] = {}
    for service, name in by_service("{{.Names}}").items():
        # Both streams: a daemon's output is either, and Docker keeps both.
        out = subprocess.run(
            ["docker", "logs", "--since", f"{before.at:.3f}", "--until", f"{after.at:.3f}", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=True,
        ).stdout
        if out:
            found[service] = (out.count(b"\n") / messages, len(out) / messages)
    return found
