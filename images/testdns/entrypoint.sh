#!/bin/sh
# Serve /zones/test.zone, the signed zone of the records the tests publish (none at
# first; `publish` adds them); SIGHUP reloads it.
set -eu
mkdir -p /zones /run/nsd
publish --initial < /dev/null
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
