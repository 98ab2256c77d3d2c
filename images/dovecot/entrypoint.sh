#!/usr/bin/env bash
# Render the configuration, reload Dovecot whenever the certificate is replaced, run
# Dovecot in the foreground.
set -euo pipefail
vmm-render dovecot /etc/dovecot dovecot
# A mail backend's accounts make their homes in homes/ themselves (schema 0013): kept
# root's, sticky and unlistable, whatever volume is mounted.
[ "${VMM_DOVECOT_ROLE:-single}" != backend ] || install -d -m 1733 /srv/mail/homes
vmm-tls-reload doveadm reload &
exec dovecot -F -c /etc/dovecot/dovecot.conf
