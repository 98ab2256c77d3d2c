#!/usr/bin/env bash
# Render the configuration and run Dovecot in the foreground.
set -euo pipefail
vmm-render dovecot /etc/dovecot dovecot
exec dovecot -F -c /etc/dovecot/dovecot.conf
