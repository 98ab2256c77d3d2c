#!/usr/bin/env bash
# First start: initialise the cluster, generate one password per role into the secrets
# volume, create roles and database; the TLS key pair once. Every start: render configs,
# exec postgres.
set -euo pipefail

# One directory per role: each service mounts only its own (compose volume subpath).
secrets=/run/vmm-secrets
install -d -m 0711 "$secrets"
for role in vmm postfix dovecot; do
    install -d -m 0700 "$secrets/$role"
    if [ ! -s "$secrets/$role/password" ]; then
        (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$secrets/$role/password")
    fi
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    runuser -u postgres -- initdb --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
    runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    # Passwords travel on stdin to psql, never on a command line.
    {
        echo "CREATE ROLE vmm LOGIN PASSWORD '$(cat "$secrets/vmm/password")';"
        echo "CREATE ROLE postfix LOGIN PASSWORD '$(cat "$secrets/postfix/password")';"
        echo "CREATE ROLE dovecot LOGIN PASSWORD '$(cat "$secrets/dovecot/password")';"
        echo "CREATE DATABASE mailsys OWNER vmm ENCODING 'UTF8' TEMPLATE template0;"
        echo "REVOKE ALL ON DATABASE mailsys FROM PUBLIC;"
        echo "GRANT CONNECT ON DATABASE mailsys TO vmm, postfix, dovecot;"
        echo "\\connect mailsys"
        echo "CREATE EXTENSION pg_stat_statements;"
        echo "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
        echo "ALTER SCHEMA public OWNER TO vmm;"
        echo "GRANT USAGE ON SCHEMA public TO postfix, dovecot;"
    } | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres
    runuser -u postgres -- pg_ctl -D "$PGDATA" -w stop >/dev/null
fi

# The cluster's TLS key pair, made once per installation (an older one gets it now).
if [ ! -s "$PGDATA/server.key" ]; then
    (umask 077; runuser -u postgres -- openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -days 3650 -subj /CN=postgres -keyout "$PGDATA/server.key" -out "$PGDATA/server.crt" 2>/dev/null)
fi

vmm-render postgres /etc/vmm-postgres postgres
# setpriv execs (runuser would stay as PID 1 and not pass on the stop signal).
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" \
    -c config_file=/etc/vmm-postgres/postgresql.conf -c hba_file=/etc/vmm-postgres/pg_hba.conf
