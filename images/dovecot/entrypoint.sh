#!/usr/bin/env bash
# Render the configuration, reload Dovecot whenever the certificate is replaced, run
# Dovecot in the foreground.
set -euo pipefail
vmm-render dovecot /etc/dovecot dovecot
# A mail backend's accounts make their homes in homes/ themselves (schema 0013): kept
# root's, sticky and unlistable, whatever volume is mounted. A single host's mail volume
# mounted here has its homes moved there first (vmm/mailboxes.py): its accounts are this
# backend's if it is the first one added.
if [ "${VMM_DOVECOT_ROLE:-single}" = backend ]; then
    install -d -m 1733 /srv/mail/homes
    python3 -m vmm.mailboxes /srv/mail
fi
vmm-tls-reload doveadm reload &
exec dovecot -F -c /etc/dovecot/dovecot.conf
