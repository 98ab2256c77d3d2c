#!/usr/bin/env bash
# Render the configuration, check the queue's ownership, run Postfix in the foreground.
set -euo pipefail
python3 -m vmm.render postfix /etc/postfix postfix
# The queue lives on a volume: repair ownership and modes a restore or copy may lose.
postfix set-permissions >/dev/null 2>&1 || true
postfix check
exec postfix start-fg
