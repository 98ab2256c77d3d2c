#!/usr/bin/env bash
# Render the configuration and the alert rules, check them, run Prometheus in the
# foreground with its data in the metrics volume (15 days).
set -euo pipefail
vmm-render prometheus /etc/prometheus
promtool check config /etc/prometheus/prometheus.yml >/dev/null
exec prometheus --config.file=/etc/prometheus/prometheus.yml \
    --storage.tsdb.path=/var/lib/prometheus --storage.tsdb.retention.time=15d \
    --web.listen-address=:9090
