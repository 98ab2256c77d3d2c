#!/usr/bin/env bash
# First start: initialise the cluster, generate one password per role into the secrets
# volume, create roles (and a role a newer stack added) and database; the TLS key pair
# once. Every start: render configs, exec postgres.
set -euo pipefail

# One directory per role: each service mounts only its own (compose volume subpath).
# And doveadm's, no role: the Dovecot proxies and backends and vmm (`vmm usermove`).
roles=(vmm postfix dovecot web metrics)
secrets=/run/vmm-secrets
install -d -m 0711 "$secrets"
for role in "${roles[@]}" doveadm; do
    install -d -m 0700 "$secrets/$role"
    if [ ! -s "$secrets/$role/password" ]; then
        (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$secrets/$role/password")
    fi
done

new_cluster=no
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    new_cluster=yes
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    runuser -u postgres -- initdb --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
fi
# Roles a newer stack added to an older cluster are created on its first start (a marker
# per role in PGDATA), before the setup service's migrations grant them their functions.
missing=()
for role in "${roles[@]}"; do
    [ -e "$PGDATA/vmm-role-$role" ] || missing+=("$role")
done
if [ ${#missing[@]} -gt 0 ]; then
    runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    # Passwords travel on stdin to psql, never on a command line.
    {
        for role in "${missing[@]}"; do
            echo "SELECT 'CREATE ROLE $role LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role')\\gexec"
            echo "ALTER ROLE $role PASSWORD '$(cat "$secrets/$role/password")';"
        done
        # The monitoring profile's exporter reads PostgreSQL's statistics, no mail data.
        if [[ " ${missing[*]} " == *" metrics "* ]]; then
            echo "GRANT pg_monitor TO metrics;"
        fi
        if [ "$new_cluster" = yes ]; then
            echo "CREATE DATABASE mailsys OWNER vmm ENCODING 'UTF8' TEMPLATE template0;"
            echo "REVOKE ALL ON DATABASE mailsys FROM PUBLIC;"
        fi
        echo "\\connect mailsys"
        if [ "$new_cluster" = yes ]; then
            echo "CREATE EXTENSION pg_stat_statements;"
            echo "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
            echo "ALTER SCHEMA public OWNER TO vmm;"
        fi
        # The daemons' roles may see the schema; the migrations grant each its functions.
        echo "GRANT CONNECT ON DATABASE mailsys TO $(IFS=,; echo "${missing[*]}");"
        echo "GRANT USAGE ON SCHEMA public TO $(IFS=,; echo "${missing[*]}");"
    } | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres
    runuser -u postgres -- pg_ctl -D "$PGDATA" -w stop >/dev/null
    for role in "${missing[@]}"; do
        runuser -u postgres -- touch "$PGDATA/vmm-role-$role"
    done
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
