#!/usr/bin/env bash
# Render the daemon's configuration and run it in the foreground.
set -euo pipefail
vmm-render mta-sts /etc/mta-sts
exec mta-sts-daemon -c /etc/mta-sts/mta-sts-daemon.yml
