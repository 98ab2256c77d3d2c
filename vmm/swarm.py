"""The stack on Docker Swarm (README, "On Docker Swarm"): compose.yaml as `docker compose
config` resolves it, rewritten for `docker stack deploy`, so that compose.yaml stays the
one source of every service's image, environment, networks, capabilities and limits.
Only what Swarm cannot take is changed here, each rule once:

- Service addresses: every service is found by DNS round robin (``dnsrr``), each task's
  own address, not by a virtual IP, whose load balancing needs the kernel's IPVS, which
  not every kernel has (this project's CI machine's has not; docs/scaling.md).
- Fixed addresses (the stack's resolver, which Docker's ``dns:`` needs by address): a
  service gets none in Swarm. The fixed-address services run on a manager and are
  deployed first; every use of their compose addresses is then replaced by their tasks'
  (``addresses``), and `make swarm-up` again follows them if they move.
- Secrets: compose mounts each service's own password from the secrets volume (a
  subpath); Swarm has no subpaths, and a volume is one node's. Each password is a Docker
  secret instead, mounted where the subpath was (``scripts/swarm.sh`` makes them). So is
  the TLS certificate, for the services that only read it.
- Placement. A volume is one node's: Postgres and each Dovecot backend run on the node
  labelled for them (``vmm.SERVICE=yes``), where their volume is; every other service
  that shares a volume with the vmm command (which writes DKIM keys, the certificate)
  runs on a manager, as the vmm service does. Postfix and the Dovecot proxy, the front
  ends with the published ports, run on every node (global), and a Postfix that
  restarts finds its node's queue. rspamd runs ``replicas`` times.
- Published ports bypass the routing mesh (host mode), which would hide the clients'
  addresses from the limits and SPF.
- The one-shot setup runs in the ``vmm`` service, which waits for ``docker exec``.

With ``backends`` the Dovecot service becomes the proxy tier, in front of that many
backend services with a mail volume each (as tests/e2e/backends.yaml does for compose)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vmm.runtime import TLS_CERT, TLS_KEY

Service = dict[str, Any]

SECRETS_VOLUME = "secrets"
TLS_VOLUME = "tls"
SETUP = "setup"
ADMIN = "vmm"
PROXY = "dovecot"
MAIL_VOLUME = "mail"
DATABASE = "postgres"
# One on every node, with its published ports and its node's volumes.
GLOBAL = ("postfix", PROXY)
REPLICATED = ("rspamd",)
_ON_A_MANAGER = ["node.role == manager"]
# What Swarm does not take (`docker stack deploy` refuses or ignores it) and compose
# needs: the build, the start order, restart policies (Swarm restarts every task), and
# no-new-privileges (not settable on a Swarm service).
_COMPOSE_ONLY = (
    "build",
    "depends_on",
    "restart",
    "profiles",
    "security_opt",
    "mem_limit",
    "pids_limit",
    "tmpfs",
)


def secret_name(stack: str, part: str) -> str:
    """The Docker secret that holds one password of the secrets volume."""
    return f"{stack}_{part}_password"


def tls_secret(stack: str, file: str) -> str:
    """The Docker secret that holds the certificate or its key."""
    return f"{stack}_tls_{file.removesuffix('.pem')}"


def backend_service(number: int) -> str:
    return f"{PROXY}-b{number}"


def node_label(service: str) -> str:
    """The node label that places a service with a volume of its own."""
    return f"vmm.{service}"


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


def pinned(backends: int) -> list[str]:
    """The services placed by a node label: the database and each backend."""
    return [DATABASE, *(backend_service(number) for number in range(1, backends + 1))]


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


def _secret(source: str, target: str) -> dict[str, Any]:
    return {"source": source, "target": target, "mode": 0o400}


def _mounts(stack: str, service: Service, parts: list[str], given: set[str]) -> tuple[list[Any], list[Any]]:
    """The service's volumes and its secrets: a password's subpath becomes its secret;
    the whole secrets volume (PostgreSQL's, which sets every role's password) all of
    them; the certificate read only its two files; of compose's own secrets those
    ``given``."""
    volumes, secrets = [], []
    for mount in service.get("volumes", []):
        subpath = mount.get("volume", {}).get("subpath")
        if mount.get("source") == SECRETS_VOLUME:
            chosen = (
                {subpath: mount["target"]}
                if subpath
                else {part: f"{mount['target']}/{part}" for part in parts}
            )
            secrets += [
                _secret(secret_name(stack, part), f"{path}/password") for part, path in chosen.items()
            ]
        elif mount.get("source") == TLS_VOLUME and mount.get("read_only"):
            secrets += [
                _secret(tls_secret(stack, file), f"{mount['target']}/{file}") for file in (TLS_CERT, TLS_KEY)
            ]
        else:
            volumes.append({key: value for key, value in mount.items() if key != "bind"})
    volumes += [{"type": "tmpfs", "target": path} for path in service.get("tmpfs", [])]
    return volumes, secrets + [entry for entry in service.get("secrets", []) if entry["source"] in given]


def _service(
    stack: str, service: Service, parts: list[str], given: set[str], addresses: dict[str, str], publish: bool
) -> Service:
    out = {
        key: _replace(value, addresses)
        for key, value in service.items()
        if key not in _COMPOSE_ONLY and value is not None
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
    out.pop("ports", None)
    if publish:
        ports = [
            {
                "mode": "host",
                "target": port["target"],
                "published": int(port["published"]),
                "protocol": port["protocol"],
            }
            for port in service.get("ports", [])
            if port.get("published")
        ]
        out["ports"] = ports
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
        services[backend_service(number)] = backend
    proxy = _environment(dovecot, VMM_DOVECOT_ROLE="proxy")
    proxy["volumes"] = [mount for mount in dovecot["volumes"] if mount.get("source") != MAIL_VOLUME]
    services[PROXY] = proxy
    services["postfix"] = _environment(services["postfix"], VMM_DOVECOT_ROLE="proxy")


def _placed(name: str, service: Service, backends: int) -> Service:
    """Where a service runs and how many times (the module's docstring)."""
    if name in pinned(backends):
        return _with(service, placement={"constraints": [f"node.labels.{node_label(name)} == yes"]})
    if name in GLOBAL:
        return _with(service, mode="global")
    shares = [mount for mount in service.get("volumes", []) if mount["type"] == "volume"]
    return _with(service, placement={"constraints": _ON_A_MANAGER}) if shares else service


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
    fixed = fixed_addresses(config)
    chosen = {
        service_name: service
        for service_name, service in config["services"].items()
        if service_name != SETUP and not (only_before_setup and service_name in later)
    }
    # A service's own fixed address stays as it is in its own settings (the resolver's
    # runtime names it, unused there): replaced, every new address would restart it.
    services = {
        key: _service(
            name,
            service,
            parts,
            set(given),
            {address: task for address, task in addresses.items() if fixed.get(address, ("",))[0] != key},
            publish,
        )
        for key, service in chosen.items()
    }
    if ADMIN in services:
        # The CLI waits for `docker exec` on a manager, the node `make swarm-up` runs on.
        services[ADMIN] = {**services[ADMIN], "entrypoint": ["sleep", "infinity"], "stop_signal": "SIGKILL"}
    if backends and PROXY in services:
        _backends(services, backends)
    services = {key: _placed(key, service, backends) for key, service in services.items()}
    for placed in {service for service, _ in fixed.values()} & services.keys():
        services[placed] = _with(services[placed], placement={"constraints": _ON_A_MANAGER})
    for replicated in set(REPLICATED) & services.keys():
        services[replicated] = _with(services[replicated], replicas=replicas)
    used = {
        mount["source"]
        for service in services.values()
        for mount in service.get("volumes", [])
        if mount["type"] == "volume"
    }
    volumes: dict[str, Any] = {key: {} for key in sorted(used)}
    networks = {
        key: {
            "driver": "overlay",
            "attachable": True,
            **({"internal": True} if network.get("internal") else {}),
        }
        for key, network in config.get("networks", {}).items()
    }
    mounted = {secret["source"] for service in services.values() for secret in service.get("secrets", [])}
    secrets: dict[str, Any] = {
        key: {"file": secret["file"]} for key, secret in given.items() if key in mounted
    }
    secrets.update({key: {"external": True} for key in sorted(mounted - secrets.keys())})
    return {"services": services, "networks": networks, "volumes": volumes, "secrets": secrets}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m vmm.swarm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("secrets", help="the passwords the stack mounts, one a line")
    commands.add_parser("fixed", help="each fixed address with its service and network")
    tls = commands.add_parser("tls", help="each TLS secret with its file in the vmm service")
    tls.add_argument("--name", required=True)
    labels = commands.add_parser("pinned", help="the services placed by a node label, with the label")
    labels.add_argument("--backends", type=int, default=2)
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
    elif args.command == "tls":
        # Read from the vmm service, where the setup wrote them.
        [directory] = [
            mount["target"]
            for mount in config["services"][ADMIN]["volumes"]
            if mount.get("source") == TLS_VOLUME
        ]
        for file in (TLS_CERT, TLS_KEY):
            print(tls_secret(args.name, file), f"{directory}/{file}")
    elif args.command == "pinned":
        for service in pinned(args.backends):
            print(service, node_label(service))
    else:
        if args.replicas < 1 or args.backends < 0:
            parser.error("--replicas must be at least 1 and --backends at least 0")
        document = stack(
            config,
            name=args.name,
            replicas=args.replicas,
            backends=args.backends,
            publish=args.publish,
            addresses=dict(pair.split("=", 1) for pair in args.address),
            only_before_setup=args.before_setup,
        )
        json.dump(document, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
