#!/usr/bin/env bash
# Make this machine able to build and run the stack: a Docker engine with Compose v2
# and buildx, a running daemon, and the debian:trixie-slim base image. Idempotent: each
# step is skipped when what it provides is already there.
set -euo pipefail

log_dir=${VMM_BOOTSTRAP_LOG_DIR:-/var/log/vmm-bootstrap}
mkdir -p "$log_dir"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

install_docker() {
    if docker compose version >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "Docker with Compose v2 is missing and installing it needs root"; exit 1
    fi
    say "installing Docker engine, Compose v2 and buildx from Debian trixie"
    # Trixie packages at a low pin priority: only the packages named below come from
    # it, the host keeps its own libc and everything else (never `-t trixie`).
    cat >/etc/apt/sources.list.d/vmm-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat >/etc/apt/preferences.d/vmm-trixie <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap \
        docker.io/trixie docker-cli/trixie docker-compose/trixie docker-buildx/trixie \
        >"$log_dir/apt.log" 2>&1 || { tail -20 "$log_dir/apt.log" >&2; exit 1; }
}

start_daemon() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    say "starting dockerd (log: $log_dir/dockerd.log)"
    # setsid: the daemon must outlive the make or CI step that started it.
    setsid dockerd >"$log_dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    say "dockerd did not answer within 60 s"; tail -20 "$log_dir/dockerd.log" >&2; exit 1
}

provide_base_image() {
    local image=debian:trixie-slim
    if docker image inspect "$image" >/dev/null 2>&1; then
        return
    fi
    if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
        return
    fi
    say "no registry answered: building $image with debootstrap"
    command -v debootstrap >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    local rootfs
    rootfs=$(mktemp -d /var/tmp/trixie-rootfs.XXXXXX)
    debootstrap --variant=minbase trixie "$rootfs" http://deb.debian.org/debian \
        >"$log_dir/debootstrap.log" 2>&1 || { tail -20 "$log_dir/debootstrap.log" >&2; exit 1; }
    # Like the official slim image: no apt lists, caches or downloaded packages baked in,
    # and apt deletes the packages it downloads in every later layer (its docker-clean).
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb
    cat >"$rootfs"/etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
    rm -rf "$rootfs"
}

install_docker
start_daemon
provide_base_image
