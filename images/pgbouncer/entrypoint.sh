#!/usr/bin/env bash
# Render the configuration (it holds Dovecot's database password) and, once per
# container, a TLS key pair for Dovecot's connections; run PgBouncer in the foreground
# as postgres.
set -euo pipefail
conf=/etc/pgbouncer
vmm-render pgbouncer "$conf" postgres
if [ ! -s "$conf/client.key" ]; then
    (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj /CN=pgbouncer -keyout "$conf/client.key" -out "$conf/client.crt" 2>/dev/null)
    chown postgres:postgres "$conf/client.key" "$conf/client.crt"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer "$conf/pgbouncer.ini"
