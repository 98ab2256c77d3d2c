"""compose.yaml rewritten for Docker Swarm (vmm/swarm.py), on a configuration shaped as
`docker compose config --format json` prints it."""

from __future__ import annotations

from typing import Any

from vmm import swarm


def _secret(part: str) -> dict[str, Any]:
    return {
        "type": "volume",
        "source": "secrets",
        "target": f"/run/vmm-secrets/{part}",
        "read_only": True,
        "volume": {"subpath": part},
    }


def _config() -> dict[str, Any]:
    hardened = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "restart": "unless-stopped"}
    runtime = {"VMM_RESOLVER_ADDRESS": "10.53.53.2", "VMM_DOMAIN": "example.test"}
    return {
        "name": "vmm",
        "services": {
            "postgres": {
                **hardened,
                "image": "vmm-postgres:latest",
                "build": {"context": "."},
                "volumes": [
                    {"type": "volume", "source": "db", "target": "/var/lib/postgresql"},
                    {"type": "volume", "source": "secrets", "target": "/run/vmm-secrets"},
                ],
                "networks": {"db": None},
                "mem_limit": "1073741824",
                "pids_limit": 256,
            },
            "resolver": {
                **hardened,
                "image": "vmm-resolver:latest",
                "environment": runtime,
                "networks": {"default": {}, "dns": {"ipv4_address": "10.53.53.2"}},
            },
            "setup": {"image": "vmm-cli:latest", "command": ["setup"], "depends_on": {"postgres": {}}},
            "postfix": {
                **hardened,
                "image": "vmm-postfix:latest",
                "environment": runtime,
                "dns": ["10.53.53.2"],
                "volumes": [
                    _secret("postfix"),
                    {"type": "volume", "source": "tls", "target": "/etc/vmm/tls", "read_only": True},
                    {"type": "volume", "source": "queue", "target": "/var/spool/postfix"},
                ],
                "secrets": [{"source": "relayhost", "target": "/run/secrets/relayhost"}],
                "ports": [
                    {
                        "mode": "ingress",
                        "host_ip": "127.0.0.1",
                        "target": 25,
                        "published": "25",
                        "protocol": "tcp",
                    }
                ],
                "networks": {"default": None, "dns": None, "db": None},
                "depends_on": {"setup": {"condition": "service_completed_successfully"}},
                "command": None,
            },
            "rspamd": {
                **hardened,
                "image": "vmm-rspamd:latest",
                "volumes": [
                    {"type": "volume", "source": "dkim", "target": "/var/lib/vmm/dkim", "read_only": True}
                ],
                "networks": {"dns": None},
                "depends_on": {"postfix": {}},
            },
            "dovecot": {
                **hardened,
                "image": "vmm-dovecot:latest",
                "environment": runtime,
                "volumes": [
                    _secret("dovecot"),
                    _secret("doveadm"),
                    {"type": "volume", "source": "mail", "target": "/srv/mail"},
                ],
                "ports": [
                    {
                        "mode": "ingress",
                        "host_ip": "127.0.0.1",
                        "target": 143,
                        "published": "143",
                        "protocol": "tcp",
                    }
                ],
                "networks": {"default": None, "db": None},
                "depends_on": {"setup": {}},
            },
            "prometheus": {
                **hardened,
                "image": "vmm-prometheus:latest",
                "tmpfs": ["/etc/prometheus"],
                "networks": {"dns": None},
            },
            "vmm": {
                "image": "vmm-cli:latest",
                "profiles": ["cli"],
                "volumes": [
                    _secret("vmm"),
                    _secret("doveadm"),
                    {"type": "volume", "source": "tls", "target": "/etc/vmm/tls"},
                    {"type": "volume", "source": "dkim", "target": "/var/lib/vmm/dkim"},
                ],
                "networks": {"db": None},
            },
        },
        "networks": {
            "default": {"name": "vmm_default", "ipam": {}},
            "db": {"name": "vmm_db", "internal": True},
            "dns": {"name": "vmm_dns", "internal": True, "ipam": {"config": [{"subnet": "10.53.53.0/28"}]}},
        },
        "volumes": {
            name: {"name": f"vmm_{name}"} for name in ("db", "secrets", "queue", "mail", "tls", "dkim")
        },
        "secrets": {"relayhost": {"name": "vmm_relayhost", "file": "/dev/null"}},
    }


def _stack(**changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "name": "vmm",
        "replicas": 2,
        "backends": 0,
        "publish": False,
        "addresses": {},
        "only_before_setup": False,
    }
    return swarm.stack(_config(), **(settings | changes))


def test_each_service_mounts_only_its_own_passwords_as_docker_secrets() -> None:
    services = _stack()["services"]
    assert swarm.secret_parts(_config()) == ["doveadm", "dovecot", "postfix", "vmm"]
    assert [secret["target"] for secret in services["vmm"]["secrets"]] == [
        "/run/vmm-secrets/vmm/password",
        "/run/vmm-secrets/doveadm/password",
    ]
    assert [secret["source"] for secret in services["postfix"]["secrets"]] == [
        "vmm_postfix_password",
        "vmm_tls_cert",
        "vmm_tls_key",
    ]
    # PostgreSQL sets every role's password: it gets them all.
    assert sorted(secret["source"] for secret in services["postgres"]["secrets"]) == [
        swarm.secret_name("vmm", part) for part in swarm.secret_parts(_config())
    ]
    assert not [
        mount
        for service in services.values()
        for mount in service.get("volumes", [])
        if mount.get("source") == "secrets"
    ]
    stack = _stack()
    assert "secrets" not in stack["volumes"]
    # The certificate: secrets for those that only read it, the volume for the vmm command.
    assert [secret["target"] for secret in services["postfix"]["secrets"][1:]] == [
        "/etc/vmm/tls/cert.pem",
        "/etc/vmm/tls/key.pem",
    ]
    assert "tls" in [mount["source"] for mount in services["vmm"]["volumes"]]
    # The smarthost login compose stands in for with /dev/null is not a Swarm secret.
    assert "relayhost" not in stack["secrets"]
    assert stack["secrets"]["vmm_dovecot_password"] == {"external": True}


def test_fixed_addresses_become_the_tasks_addresses_and_their_services_run_on_a_manager() -> None:
    assert swarm.fixed_addresses(_config()) == {"10.53.53.2": ("resolver", "dns")}
    services = _stack(addresses={"10.53.53.2": "10.0.7.3"})["services"]
    assert services["postfix"]["dns"] == ["10.0.7.3"]
    assert services["postfix"]["environment"]["VMM_RESOLVER_ADDRESS"] == "10.0.7.3"
    assert services["resolver"]["networks"] == ["default", "dns"]
    # Its own address left as it was: a new one would restart it, and move it again.
    assert services["resolver"]["environment"]["VMM_RESOLVER_ADDRESS"] == "10.53.53.2"
    assert services["resolver"]["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    # Found by DNS round robin, never through a virtual IP (IPVS).
    assert {service["deploy"]["endpoint_mode"] for service in services.values()} == {"dnsrr"}


def test_what_swarm_cannot_take_is_translated_or_left_out() -> None:
    stack = _stack()
    postgres = stack["services"]["postgres"]
    assert postgres["deploy"]["resources"] == {"limits": {"memory": "1073741824", "pids": 256}}
    for service in stack["services"].values():
        assert not set(service) & {"build", "depends_on", "restart", "profiles", "security_opt", "mem_limit"}
        assert "command" not in service or service["command"] is not None
    assert {"type": "tmpfs", "target": "/etc/prometheus"} in stack["services"]["prometheus"]["volumes"]
    assert stack["networks"]["db"] == {"driver": "overlay", "attachable": True, "internal": True}
    # The small fixed subnet existed for the fixed address only.
    assert stack["networks"]["dns"] == {"driver": "overlay", "attachable": True, "internal": True}
    assert "name" not in stack


def test_the_setup_is_no_service_and_the_first_deploy_holds_what_starts_before_it() -> None:
    assert "setup" not in _stack()["services"]
    assert swarm.after_setup(_config()) == {"postfix", "rspamd", "dovecot"}
    early = _stack(only_before_setup=True)["services"]
    assert sorted(early) == ["postgres", "prometheus", "resolver", "vmm"]
    assert swarm.pinned(2) == ["postgres", "dovecot-b1", "dovecot-b2"]
    assert early["vmm"]["entrypoint"] == ["sleep", "infinity"]


def test_front_ends_run_on_every_node_and_what_shares_the_cli_volumes_on_a_manager() -> None:
    stack = _stack(replicas=3)
    services = stack["services"]
    for front in ("postfix", "dovecot"):
        assert services[front]["deploy"]["mode"] == "global"
    [queue] = [mount for mount in services["postfix"]["volumes"] if mount["target"] == "/var/spool/postfix"]
    assert queue["source"] == "queue" and "queue" in stack["volumes"]
    assert services["rspamd"]["deploy"]["replicas"] == 3
    # rspamd reads the DKIM keys the vmm command writes: both on a manager.
    for service in ("rspamd", "vmm"):
        assert services[service]["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    # The database where its label is.
    assert services["postgres"]["deploy"]["placement"] == {"constraints": ["node.labels.vmm.postgres == yes"]}
    assert "placement" not in services["prometheus"]["deploy"]
    assert "ports" not in services["postfix"]


def test_published_ports_bypass_the_routing_mesh() -> None:
    postfix = _stack(publish=True)["services"]["postfix"]
    assert postfix["ports"] == [{"mode": "host", "target": 25, "published": 25, "protocol": "tcp"}]


def test_backends_behind_the_dovecot_proxy_each_with_its_own_mail() -> None:
    stack = _stack(backends=2, publish=True)
    services = stack["services"]
    proxy = services["dovecot"]
    assert proxy["environment"]["VMM_DOVECOT_ROLE"] == "proxy"
    assert services["postfix"]["environment"]["VMM_DOVECOT_ROLE"] == "proxy"
    assert "/srv/mail" not in [mount["target"] for mount in proxy["volumes"]]
    assert proxy["ports"][0]["published"] == 143
    for number in (1, 2):
        backend = services[swarm.backend_service(number)]
        assert backend["environment"]["VMM_DOVECOT_ROLE"] == "backend"
        assert backend["deploy"]["placement"] == {
            "constraints": [f"node.labels.vmm.dovecot-b{number} == yes"]
        }
        assert "ports" not in backend
        [mail] = [mount for mount in backend["volumes"] if mount["target"] == "/srv/mail"]
        assert mail["source"] == f"mail-b{number}" and f"mail-b{number}" in stack["volumes"]
        assert [secret["target"] for secret in backend["secrets"]] == [
            "/run/vmm-secrets/dovecot/password",
            "/run/vmm-secrets/doveadm/password",
        ]
