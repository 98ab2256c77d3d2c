#!/usr/bin/env bash
# Render the configuration, repair the queue if need be, reload Postfix whenever the
# certificate is replaced, copy its log file to the output, run Postfix in the foreground.
set -euo pipefail
vmm-render postfix /etc/postfix postfix
# The stack's resolver validates and Docker's passes its AD bit on; the C library keeps
# the bit (DANE needs it) only with trust-ad, which Swarm cannot set (no dns_opt there).
grep -q trust-ad /etc/resolv.conf || echo "options trust-ad" >>/etc/resolv.conf
# The queue lives on a volume: a restore or copy may lose ownership and modes. Repairing
# walks the whole queue (a second or more), so only when its marker directory is wrong.
if [ "$(stat -c %U:%G /var/spool/postfix/maildrop 2>/dev/null)" != postfix:postdrop ]; then
    postfix set-permissions >/dev/null 2>&1 || true
fi
# start-fg would scan the installation and the queue again (postfix check, about 0.5 s,
# several seconds while the whole stack restarts at once); a configuration error still
# stops the master at once, with its reason in the log.
touch /var/spool/postfix/quick-start
vmm-tls-reload postfix reload &
vmm-maillog &
exec postfix start-fg
