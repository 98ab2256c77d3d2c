#!/usr/bin/env bash
# Render unbound.conf and run unbound in the foreground; it binds port 53 as root and
# then becomes the unbound user.
set -euo pipefail
vmm-render unbound /etc/unbound/vmm unbound
exec unbound -d -p -c /etc/unbound/vmm/unbound.conf
