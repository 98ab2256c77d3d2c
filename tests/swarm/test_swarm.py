"""The stack on a Docker Swarm of three nodes on this machine (scripts/swarm.sh up,
vmm/swarm.py): each node a Docker engine in a container of its own (images/swarmnode,
Debian's docker.io), the images loaded into each with `docker save | docker load`, the
test DNS as the stack's internet. Postfix and the Dovecot proxy on every node, two
rspamd replicas, two Dovecot backends on two nodes. Mail sent through every Postfix
reaches each account's backend once; logins through every proxy reach it; a stopped
backend defers only its own users' mail; a killed Postfix restarts on its node with
its queue and delivers it; `vmm usermove` under a trickle of mail loses nothing. The
clients run in containers on the stack's network: the test stack publishes no port."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import free_subnet
from tests.mail import message

ROOT = Path(__file__).resolve().parents[2]
STACK = "vmmswarm"
PREFIX = "vmmtest-swarm"
CLIENT = f"{PREFIX}-client"
NODES = 3
PW = "swarm test password"
SENDER = "sender@sender.example"
USERS = [f"{name}@example.test" for name in ("ann", "bob", "cat", "dan")]
SETTINGS = {
    "VMM_SWARM_STACK": STACK,
    "VMM_SWARM_PUBLISH": "no",
    "VMM_SWARM_REPLICAS": "2",
    "VMM_SWARM_BACKENDS": "2",
}
# The nested engines' own networks and the swarm's, apart from each other and from the
# 10.x test networks outside (a join fails where they overlap).
SWARM_POOL = "172.29.0.0/16"
COMPOSE = {
    "COMPOSE_FILE": "compose.yaml:tests/e2e/dns.yaml:tests/swarm/exempt.yaml",
    "COMPOSE_PROJECT_NAME": STACK,
    "VMM_SWARM_POOL": SWARM_POOL,
}

# Sends stdin as one message through the Postfix at argv[1]; prints the refused.
SEND = """
import smtplib, sys
with smtplib.SMTP(sys.argv[1], 25, timeout=60) as smtp:
    smtp.ehlo("client.sender.example")
    print(smtp.sendmail(sys.argv[2], sys.argv[3:], sys.stdin.buffer.read()) or "")
"""
# Logs in through the proxy at argv[1] (STARTTLS); prints the INBOX's UIDVALIDITY and
# each message's UID and Subject.
INBOX = """
import imaplib, ssl, sys
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
client = imaplib.IMAP4(sys.argv[1], 143, timeout=60)
client.starttls(context)
client.login(sys.argv[2], sys.argv[3])
client.select("INBOX", readonly=True)
print(client.response("UIDVALIDITY")[1][0].decode())
_, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for item in data:
    if isinstance(item, tuple):
        uid = item[0].split(b"UID ")[1].split()[0].decode()
        print(uid, item[1].decode().strip().removeprefix("Subject: "))
client.logout()
"""


def _run(
    *command: str, stdin: bytes | None = None, check: bool = True, env: dict[str, str] | None = None
) -> str:
    done = subprocess.run(
        command, input=stdin, capture_output=True, env=os.environ | (env or {}), cwd=ROOT, timeout=900
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {done.stderr.decode()}")
    return done.stdout.decode()


def _wait(what: str, done: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.5)


@dataclass(frozen=True)
class Node:
    name: str
    address: str

    @property
    def engine(self) -> str:
        return f"tcp://{self.address}:2375"

    def docker(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        return _run("docker", "-H", self.engine, *args, stdin=stdin, check=check)

    def answers(self) -> bool:
        command = ["docker", "-H", self.engine, "info"]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0


@dataclass(frozen=True)
class Task:
    node: Node
    container: str

    def exec(self, *command: str, check: bool = True) -> str:
        return self.node.docker("exec", self.container, *command, check=check)

    def exists(self, path: str) -> bool:
        command = ["docker", "-H", self.node.engine, "exec", self.container, "test", "-e", path]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def address(self) -> str:
        found = f'{{{{(index .NetworkSettings.Networks "{STACK}_default").IPAddress}}}}'
        return self.node.docker("inspect", "-f", found, self.container).strip()


@dataclass(frozen=True)
class Swarm:
    nodes: list[Node]

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def script(self, *args: str, stdin: str | None = None) -> str:
        return _run(
            "bash", "scripts/swarm.sh", *args,
            stdin=None if stdin is None else stdin.encode(),
            env=COMPOSE | SETTINGS | {"DOCKER_HOST": self.manager.engine},
        )  # fmt: skip

    def vmm(self, *args: str, stdin: str | None = None) -> str:
        return self.script("vmm", *args, stdin=stdin)

    def tasks(self, service: str) -> list[Task]:
        """The running containers of a service, on every node."""
        found = []
        for node in self.nodes:
            label = f"label=com.docker.swarm.service.name={STACK}_{service}"
            found += [
                Task(node, container) for container in node.docker("ps", "-q", "--filter", label).split()
            ]
        return found

    def client(self, script: str, *args: str, stdin: bytes | None = None) -> str:
        """A Python client in the test's own container on the stack's default network (one
        container for all: each started anew costs a second, and the nested engines
        now and then fail one's start)."""
        return self.manager.docker("exec", "-i", CLIENT, "python3", "-c", script, *args, stdin=stdin)

    def send(self, postfix: Task, recipients: list[str], subject: str | None = None) -> None:
        sent = message(recipients, subject=subject, dated=True)
        refused = self.client(SEND, postfix.address(), SENDER, *recipients, stdin=sent)
        assert refused.strip() == "", refused

    def inbox(self, proxy: Task, user: str) -> tuple[str, dict[str, str]]:
        """The INBOX through a proxy: its UIDVALIDITY, and each message's UID by Subject."""
        validity, *lines = self.client(INBOX, proxy.address(), user, PW).splitlines()
        return validity, {subject: uid for uid, _, subject in (line.partition(" ") for line in lines)}

    def on_backend(self, backend: str, user: str) -> int:
        """The messages in the user's INBOX as the backend's own Dovecot counts them."""
        [task] = self.tasks(f"dovecot-{backend}")
        out = task.exec("doveadm", "-f", "flow", "mailbox", "status", "-u", user, "messages", "INBOX")
        return int(out.strip().removeprefix("INBOX messages="))

    def arrived(self, backend: str, user: str, count: int) -> None:
        """Waits until the user's INBOX on the backend holds ``count`` messages."""
        _wait(f"{count} messages for {user} on {backend}", lambda: self.on_backend(backend, user) == count)

    def scale(self, service: str, replicas: int) -> None:
        self.manager.docker("service", "scale", "--detach", f"{STACK}_{service}={replicas}")
        _wait(
            f"{service} at {replicas}",
            lambda: len(self.tasks(service)) == replicas and self.converged(service),
        )

    def converged(self, service: str) -> bool:
        """Every task of the service running (and healthy, where it has a check)."""
        listed = self.manager.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}").splitlines()
        [replicas] = [line.split()[1] for line in listed if line.split()[0] == f"{STACK}_{service}"]
        running, _, wanted = replicas.partition("/")
        return running == wanted


def _engines(subnet: str) -> list[Node]:
    """Three engines in containers on a network of their own, as one swarm."""
    _run("docker", "network", "create", "--subnet", f"{subnet}.0/24", f"{PREFIX}-net")
    nodes = [Node(f"node{number}", f"{subnet}.{10 + number}") for number in range(1, NODES + 1)]
    for number, node in enumerate(nodes, start=1):
        _run(
            "docker", "run", "-d", "--privileged", "--name", f"{PREFIX}-{node.name}", "--hostname", node.name,
            "--network", f"{PREFIX}-net", "--ip", node.address,
            "-v", f"{PREFIX}-{node.name}:/var/lib/docker", "-v", f"{ROOT}:{ROOT}:ro",
            "vmm-swarmnode", "dockerd", "--host=unix:///var/run/docker.sock", "--host=tcp://0.0.0.0:2375",
            "--tls=false", f"--default-address-pool=base=172.2{number}.0.0/16,size=24",
        )  # fmt: skip
    for node in nodes:
        _wait(f"{node.name}'s engine", node.answers, timeout=60)
    manager, *workers = nodes
    manager.docker("swarm", "init", "--advertise-addr", manager.address, "--default-addr-pool", SWARM_POOL)
    token = manager.docker("swarm", "join-token", "-q", "worker").strip()
    for worker in workers:
        worker.docker(
            "swarm", "join", "--advertise-addr", worker.address, "--token", token, f"{manager.address}:2377"
        )
    # No registry: every node gets the stack's images from this engine.
    images = _run("docker", "compose", "--profile", "cli", "config", "--images", env=COMPOSE).split()
    for node in nodes:
        with subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE) as saved:
            load = ["docker", "-H", node.engine, "load", "-q"]
            subprocess.run(load, stdin=saved.stdout, check=True, capture_output=True)
        assert saved.returncode == 0
    return nodes


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    try:
        deployed = Swarm(_engines(free_subnet()))
        deployed.script("up")
        client = ["--name", CLIENT, "--network", f"{STACK}_default", "--entrypoint", "sleep"]
        deployed.manager.docker("run", "-d", *client, "vmm-cli", "infinity")
        yield deployed
    finally:
        names = [f"{PREFIX}-node{number}" for number in range(1, NODES + 1)]
        _run("docker", "rm", "-f", "-v", *names, check=False)
        _run("docker", "volume", "rm", *names, check=False)
        _run("docker", "network", "rm", f"{PREFIX}-net", check=False)


@pytest.fixture(scope="module")
def pinned(swarm: Swarm) -> dict[str, str]:
    """Four accounts, each with the backend it is pinned to."""
    for user in USERS:
        swarm.vmm("useradd", user, "--password-stdin", stdin=PW + "\n")
    return {user: json.loads(swarm.vmm("userinfo", user, "--json"))["backend"] for user in USERS}


def test_front_ends_on_every_node_and_the_backends_on_nodes_of_their_own(
    swarm: Swarm, pinned: dict[str, str]
) -> None:
    for front in ("postfix", "dovecot"):
        assert sorted(task.node.name for task in swarm.tasks(front)) == ["node1", "node2", "node3"], front
    assert len(swarm.tasks("rspamd")) == 2
    [b1], [b2] = swarm.tasks("dovecot-b1"), swarm.tasks("dovecot-b2")
    assert b1.node != b2.node
    assert sorted(pinned.values()) == ["b1", "b1", "b2", "b2"]


def test_mail_through_every_postfix_reaches_each_backend_once(swarm: Swarm, pinned: dict[str, str]) -> None:
    fronts = swarm.tasks("postfix")
    for postfix in fronts:
        swarm.send(postfix, USERS, subject=f"through {postfix.node.name}")
    for user, backend in pinned.items():
        swarm.arrived(backend, user, len(fronts))
        # The other backend holds nothing of it, not even a home (asked without doveadm,
        # which would make one).
        home = json.loads(swarm.vmm("userinfo", user, "--json"))["home"]
        [other] = swarm.tasks("dovecot-b2" if backend == "b1" else "dovecot-b1")
        assert not other.exists(home), f"{user} has a home on {other.node.name} too"
    # Logins through every proxy reach the one backend that holds the mail.
    for proxy in swarm.tasks("dovecot"):
        for user in USERS:
            _, messages = swarm.inbox(proxy, user)
            assert sorted(messages) == sorted(f"through {task.node.name}" for task in fronts), (proxy, user)


def test_a_stopped_backend_defers_only_its_users_and_a_killed_postfix_delivers_its_queue(
    swarm: Swarm, pinned: dict[str, str]
) -> None:
    up = next(user for user, backend in pinned.items() if backend == "b2")
    down = next(user for user, backend in pinned.items() if backend == "b1")
    before = {user: swarm.on_backend(pinned[user], user) for user in (up, down)}
    postfix = next(task for task in swarm.tasks("postfix") if task.node.name == "node2")
    swarm.scale("dovecot-b1", 0)
    try:
        swarm.send(postfix, [up, down])
        swarm.arrived("b2", up, before[up] + 1)
        # Held in that Postfix's queue with a temporary failure, never bounced.
        _wait(f"{down}'s mail deferred", lambda: '"deferred"' in postfix.exec("postqueue", "-j"))
        log = postfix.node.docker("logs", postfix.container)
        assert f"to=<{down}>" in log and "status=bounced" not in log
        postfix.node.docker("kill", postfix.container)

        def restarted() -> bool:
            return any(task.node == postfix.node and task != postfix for task in swarm.tasks("postfix"))

        _wait("Postfix restarted on node2", lambda: restarted() and swarm.converged("postfix"))
    finally:
        swarm.scale("dovecot-b1", 1)
    [successor] = [task for task in swarm.tasks("postfix") if task.node == postfix.node]
    assert down in successor.exec("postqueue", "-j")
    successor.exec("postqueue", "-f")
    swarm.arrived("b1", down, before[down] + 1)


def test_usermove_under_a_trickle_of_mail_loses_nothing_and_keeps_uids(
    swarm: Swarm, pinned: dict[str, str]
) -> None:
    user = next(user for user, backend in pinned.items() if backend == "b1")
    proxy = swarm.tasks("dovecot")[0]
    validity, earlier = swarm.inbox(proxy, user)
    fronts = swarm.tasks("postfix")
    sent: list[str] = []
    moved = threading.Event()

    def trickle() -> None:
        while not moved.is_set() or len(sent) < 3:
            subject = f"trickle {len(sent)}"
            swarm.send(fronts[len(sent) % len(fronts)], [user], subject=subject)
            sent.append(subject)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        swarm.vmm("usermove", user, "b2")
    finally:
        moved.set()
        sender.join(timeout=300)
    assert json.loads(swarm.vmm("userinfo", user, "--json"))["backend"] == "b2"
    swarm.arrived("b2", user, len(earlier) + len(sent))
    after_validity, after = swarm.inbox(proxy, user)
    assert after_validity == validity
    assert sorted(after) == sorted([*earlier, *sent])
    assert {subject: after[subject] for subject in earlier} == earlier
