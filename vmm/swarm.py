"""The stack on Docker Swarm (docs/scaling.md): compose.yaml as `docker compose config`
resolves it, rewritten for `docker stack deploy`, so that compose.yaml stays the one
source of every service's image, environment, networks, capabilities and limits. Only
what Swarm cannot take is changed here, each rule once:

- Service addresses: every service is found by DNS round robin (``dnsrr``), each task's
  own address, not by a virtual IP, whose load balancing needs the kernel's IPVS, which
  not every kernel has (this machine's has not; docs/scaling.md).
- Fixed addresses (the stack's resolver, which Docker's ``dns:`` needs by address): a
  service gets none in Swarm. The fixed-address services run on a manager and are
  deployed first; every use of their compose addresses is then replaced by their tasks'
  (``addresses``), and `make swarm-up` again follows them if they move.
- Secrets: compose mounts each service's own password from the secrets volume (a
  subpath); Swarm has no subpaths, and a volume is one node's. Each password is a Docker
  secret instead, mounted where the subpath was (``scripts/swarm.sh`` makes them).
- Front ends: Postfix, rspamd and the Dovecot proxy run ``replicas`` times; each Postfix
  replica keeps its queue in a volume of its own slot, so a rescheduled replica finds
  its queue. With ``backends`` the Dovecot service becomes the proxy tier, in front of
  that many backend services with a mail volume each (as tests/e2e/backends.yaml does
  for compose).
- Published ports bypass the routing mesh (host mode), which would hide the clients'
  addresses from the limits and SPF; then one replica of a front end per node.
- The one-shot setup runs in the ``vmm`` service, which waits for ``docker exec``.

Standard library only: ``make swarm-up`` runs it in the vmm-cli image."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

Service = dict[str, Any]

SECRETS_VOLUME = "secrets"
SETUP = "setup"
ADMIN = "vmm"
PROXY = "dovecot"
QUEUE_VOLUME = "queue"
MAIL_VOLUME = "mail"
REPLICATED = ("postfix", "rspamd", PROXY)
_ON_A_MANAGER = {"constraints": ["node.role == manager"]}
# What Swarm does not take (`docker stack deploy` refuses or ignores it) and compose
# needs: the build, the start order, restart policies (Swarm restarts every task), and
# no-new-privileges (not settable on a Swarm service).
_COMPOSE_ONLY = ("build", "depends_on", "restart", "profiles", "security_opt", "mem_limit", "pids_limit")


def secret_name(stack: str, part: str) -> str:
    """The Docker secret that holds one password of the secrets volume."""
    return f"{stack}_{part}_password"


def backend_service(number: int) -> str:
    return f"{PROXY}-b{number}"


def secret_parts(config: dict[str, Any]) -> list[str]:
    """Every password a service of ``config`` mounts (a subpath of the secrets volume)."""
    parts = {
        mount["volume"]["subpath"]
        for service in config["services"].values()
        for mount in service.get("volumes", [])
        if mount.get("source") == SECRETS_VOLUME and mount.get("volume", {}).get("subpath")
    }
    return sorted(parts)


def fixed_addresses(config: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each fixed address of ``config`` with its service and network."""
    found = {}
    for name, service in config["services"].items():
        for network, settings in (service.get("networks") or {}).items():
            if settings and settings.get("ipv4_address"):
                found[settings["ipv4_address"]] = (name, network)
    return found


def after_setup(config: dict[str, Any]) -> set[str]:
    """The services that start only once the setup (migrations, the first certificate)
    has run, directly or through another service."""
    services = config["services"]

    def needs(name: str, seen: frozenset[str] = frozenset()) -> bool:
        depends = services[name].get("depends_on") or {}
        return SETUP in depends or any(needs(other, seen | {name}) for other in depends if other not in seen)

    return {name for name in services if name != SETUP and needs(name)}


def _replace(value: Any, addresses: dict[str, str]) -> Any:
    if isinstance(value, str):
        return addresses.get(value, value)
    if isinstance(value, list):
        return [_replace(item, addresses) for item in value]
    return value


def _mounts(stack: str, service: Service, parts: list[str], given: set[str]) -> tuple[list[Any], list[Any]]:
    """The service's volumes and its secrets: a password's subpath becomes its secret;
    the whole secrets volume (PostgreSQL's, which sets every role's password) all of
    them; of compose's own secrets those ``given``."""
    volumes, secrets = [], []
    for mount in service.get("volumes", []):
        if mount.get("source") != SECRETS_VOLUME:
            volumes.append({key: value for key, value in mount.items() if key != "bind"})
            continue
        subpath = mount.get("volume", {}).get("subpath")
        if subpath:
            chosen = {subpath: mount["target"]}
        else:
            chosen = {part: f"{mount['target']}/{part}" for part in parts}
        secrets += [
            {"source": secret_name(stack, part), "target": f"{directory}/password", "mode": 0o400}
            for part, directory in chosen.items()
        ]
    volumes += [{"type": "tmpfs", "target": path} for path in service.get("tmpfs", [])]
    return volumes, secrets + [entry for entry in service.get("secrets", []) if entry["source"] in given]


def _service(
    stack: str, service: Service, parts: list[str], given: set[str], addresses: dict[str, str], publish: bool
) -> Service:
    out = {
        key: _replace(value, addresses)
        for key, value in service.items()
        if key not in _COMPOSE_ONLY and key != "tmpfs" and value is not None
    }
    out["environment"] = {
        key: addresses.get(value, value) for key, value in service.get("environment", {}).items()
    }
    out["networks"] = sorted(service.get("networks") or {"default": None})
    out["volumes"], out["secrets"] = _mounts(stack, service, parts, given)
    limits = {}
    if "mem_limit" in service:
        limits["memory"] = str(service["mem_limit"])
    if "pids_limit" in service:
        limits["pids"] = service["pids_limit"]
    out["deploy"] = {"endpoint_mode": "dnsrr", **({"resources": {"limits": limits}} if limits else {})}
    if publish and service.get("ports"):
        out["ports"] = [
            {
                "mode": "host",
                "target": port["target"],
                "published": int(port["published"]),
                "protocol": port["protocol"],
            }
            for port in service["ports"]
            if port.get("published")
        ]
    else:
        out.pop("ports", None)
    return {key: value for key, value in out.items() if value not in ([], {})}


def _with(service: Service, **deploy: Any) -> Service:
    return {**service, "deploy": {**service.get("deploy", {}), **deploy}}


def _environment(service: Service, **values: str) -> Service:
    return {**service, "environment": {**service.get("environment", {}), **values}}


def _backends(services: dict[str, Service], count: int) -> None:
    """The Dovecot service becomes the proxy tier (no mail of its own) in front of
    ``count`` backends, each with its own mail volume and no published port."""
    dovecot = services[PROXY]
    for number in range(1, count + 1):
        backend = _environment(dovecot, VMM_DOVECOT_ROLE="backend")
        backend.pop("ports", None)
        backend["volumes"] = [
            {**mount, "source": f"{MAIL_VOLUME}-b{number}"} if mount.get("source") == MAIL_VOLUME else mount
            for mount in dovecot["volumes"]
        ]
        services[backend_service(number)] = _with(backend, replicas=1)
    proxy = _environment(dovecot, VMM_DOVECOT_ROLE="proxy")
    proxy["volumes"] = [mount for mount in dovecot["volumes"] if mount.get("source") != MAIL_VOLUME]
    services[PROXY] = proxy
    services["postfix"] = _environment(services["postfix"], VMM_DOVECOT_ROLE="proxy")


def stack(
    config: dict[str, Any],
    *,
    name: str,
    replicas: int,
    backends: int,
    publish: bool,
    addresses: dict[str, str],
    only_before_setup: bool,
) -> dict[str, Any]:
    """The stack file for `docker stack deploy`: every service but the setup, or (with
    ``only_before_setup``) those that start before it."""
    parts = secret_parts(config)
    # Swarm refuses an empty secret: compose's stand-in for one not given (/dev/null: no
    # smarthost login) is left out, as the services read it only when it is there.
    given = {
        key: secret for key, secret in config.get("secrets", {}).items() if secret.get("file") != "/dev/null"
    }
    later = after_setup(config)
    chosen = {
        service_name: service
        for service_name, service in config["services"].items()
        if service_name != SETUP and not (only_before_setup and service_name in later)
    }
    services = {
        key: _service(name, service, parts, set(given), addresses, publish) for key, service in chosen.items()
    }
    for fixed in {service for service, _ in fixed_addresses(config).values()} & services.keys():
        services[fixed] = _with(services[fixed], placement=_ON_A_MANAGER)
    if ADMIN in services:
        # The CLI waits for `docker exec` on a manager, the node `make swarm-up` runs on.
        services[ADMIN] = _with(
            {**services[ADMIN], "entrypoint": ["sleep", "infinity"]},
            placement=_ON_A_MANAGER,
        )
    if backends and PROXY in services:
        _backends(services, backends)
    for front in REPLICATED:
        if front in services:
            spread = {"max_replicas_per_node": 1} if "ports" in services[front] else {}
            services[front] = _with(services[front], replicas=replicas, placement=spread)
    if "postfix" in services:
        # Each replica's queue outlives the replica: its slot's volume.
        services["postfix"]["volumes"] = [
            {**mount, "source": f"{QUEUE_VOLUME}-slot"} if mount.get("source") == QUEUE_VOLUME else mount
            for mount in services["postfix"]["volumes"]
        ]
    volumes: dict[str, Any] = {key: {} for key in config.get("volumes", {}) if key != SECRETS_VOLUME}
    volumes[f"{QUEUE_VOLUME}-slot"] = {"name": f"{name}_{QUEUE_VOLUME}-{{{{.Task.Slot}}}}"}
    volumes.update({f"{MAIL_VOLUME}-b{number}": {} for number in range(1, backends + 1)})
    networks = {
        key: {
            "driver": "overlay",
            "attachable": True,
            **({"internal": True} if network.get("internal") else {}),
        }
        for key, network in config.get("networks", {}).items()
    }
    secrets: dict[str, Any] = {key: {"file": secret["file"]} for key, secret in given.items()}
    secrets.update({secret_name(name, part): {"external": True} for part in parts})
    return {"services": services, "networks": networks, "volumes": volumes, "secrets": secrets}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m vmm.swarm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("secrets", help="the passwords the stack mounts, one a line")
    commands.add_parser("fixed", help="each fixed address with its service and network")
    deploy = commands.add_parser("stack", help="the stack file, JSON")
    deploy.add_argument("--name", required=True)
    deploy.add_argument("--replicas", type=int, default=2)
    deploy.add_argument("--backends", type=int, default=2)
    deploy.add_argument("--publish", action="store_true")
    deploy.add_argument("--address", action="append", default=[], metavar="FIXED=TASK")
    deploy.add_argument("--before-setup", action="store_true")
    args = parser.parse_args(argv)
    config = json.load(sys.stdin)
    if args.command == "secrets":
        print("\n".join(secret_parts(config)))
    elif args.command == "fixed":
        for address, (service, network) in fixed_addresses(config).items():
            print(address, service, network)
    else:
        if args.replicas < 1 or args.backends < 0:
            parser.error("--replicas must be at least 1 and --backends at least 0")
        addresses = dict(pair.split("=", 1) for pair in args.address)
        document = stack(
            config,
            name=args.name,
            replicas=args.replicas,
            backends=args.backends,
            publish=args.publish,
            addresses=addresses,
            only_before_setup=args.before_setup,
        )
        json.dump(document, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
