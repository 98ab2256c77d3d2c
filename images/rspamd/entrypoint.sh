#!/usr/bin/env bash
# Render the local.d and override.d files and run rspamd in the foreground.
set -euo pipefail
vmm-render rspamd /etc/rspamd _rspamd
install -d -o _rspamd -g _rspamd /run/rspamd /var/lib/rspamd /var/lib/rspamd/hyperscan
# A first start compiles the Hyperscan databases: in a throwaway rspamd (vmm-warm-up).
[ -n "$(ls -A /var/lib/rspamd/hyperscan)" ] || vmm-warm-up
exec rspamd -f -u _rspamd -g _rspamd
