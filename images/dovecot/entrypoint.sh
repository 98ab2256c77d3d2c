#!/usr/bin/env bash
# Render the configuration, reload Dovecot whenever the certificate is replaced, run
# Dovecot in the foreground.
set -euo pipefail
vmm-render dovecot /etc/dovecot dovecot
vmm-tls-reload doveadm reload &
exec dovecot -F -c /etc/dovecot/dovecot.conf
