#!/bin/sh
# Serve /zones/test.zone (an empty zone until a test writes it); SIGHUP reloads it.
set -eu
mkdir -p /zones /run/nsd
[ -s /zones/test.zone ] || printf '%s\n' \
    '$ORIGIN test.' '$TTL 60' \
    '@ IN SOA ns.test. hostmaster.test. 1 60 60 600 60' '@ IN NS ns.test.' > /zones/test.zone
cat >/etc/nsd/nsd.conf <<CONF
server:
  ip-address: 0.0.0.0
  port: 53
  username: ""
  zonesdir: "/zones"
  pidfile: "/run/nsd/nsd.pid"
  database: ""
  verbosity: 1
  # No response rate limiting: every query here is the stack's own, and a benchmark's
  # few hundred a second would otherwise be dropped into rspamd's 1 s timeouts.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "test"
  zonefile: "test.zone"
CONF
exec nsd -d -c /etc/nsd/nsd.conf
