#!/usr/bin/env bash
# The stack on Docker Swarm (docs/scaling.md), from the images `make images` built and
# compose.yaml rewritten by vmm/swarm.py:
#   swarm.sh up      a single-node swarm where there is none; node labels for the
#                    database and the backends; the passwords as Docker secrets; the
#                    services that start before the setup; the setup, the certificate
#                    as secrets and the backends, in the vmm service; then every
#                    service. Idempotent.
#   swarm.sh vmm ... the vmm command in the stack (stdin passes through)
#   swarm.sh down    removes the services (volumes and secrets stay)
#   swarm.sh purge   down, and the volumes and secrets too
# Settings: VMM_SWARM_STACK (vmm), VMM_SWARM_BACKENDS (2), VMM_SWARM_REPLICAS (rspamd's,
# 2), VMM_SWARM_PUBLISH (yes: the mail ports on every node), VMM_SWARM_ADVERTISE (the
# address `swarm init` advertises). DOCKER_HOST may name a manager's engine.
set -euo pipefail
cd "$(dirname "$0")/.."

stack=${VMM_SWARM_STACK:-vmm}
backends=${VMM_SWARM_BACKENDS:-2}
replicas=${VMM_SWARM_REPLICAS:-2}
publish=${VMM_SWARM_PUBLISH:-yes}
label="com.docker.stack.namespace=$stack"

die() { echo "swarm: $*" >&2; exit 1; }

generate() { docker run --rm -i --entrypoint python3 vmm-cli -m vmm.swarm "$@" <<<"$config"; }

# A command in the vmm service's container (on a manager: this node).
in_admin() {
    local task
    task=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_vmm" | head -n 1)
    [ -n "$task" ] || die "the stack $stack has no vmm service running on this node"
    docker exec -i "$task" "$@"
}

admin() { in_admin vmm "$@"; }

# Labels a node for each service with a volume of its own where no node has its label:
# the database on this node, the backends over the nodes, workers first.
label_nodes() {
    local nodes service label next=0
    mapfile -t nodes < <(docker node ls --format '{{.ManagerStatus}} {{.ID}}' | sort | awk '{ print $NF }')
    while read -r service label; do
        [ -n "$(docker node ls -q --filter "node.label=$label=yes")" ] && continue
        if [ "$service" = postgres ]; then
            docker node update --label-add "$label=yes" "$(docker info -f '{{.Swarm.NodeID}}')" >/dev/null
        else
            docker node update --label-add "$label=yes" "${nodes[next % ${#nodes[@]}]}" >/dev/null
            next=$((next + 1))
        fi
    done < <(generate pinned --backends "$backends")
}

# Every service of the stack at its replica count; a task counts once it is healthy.
converge() {
    local waited services
    for waited in $(seq 300); do
        sleep 1
        docker service ls --filter "label=$label" --format '{{.Replicas}}' \
            | awk -F'[/ ]' '$1 != $2 { short = 1 } END { exit short }' || continue
        mapfile -t services < <(docker service ls -q --filter "label=$label")
        docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${services[@]}" \
            | grep -q updating || return 0
    done
    docker service ls --filter "label=$label" >&2
    die "the stack $stack did not converge in $waited s"
}

# The address of a service's task on one of the stack's networks (it runs on a manager,
# this node: vmm/swarm.py).
address() {
    local task waited
    for waited in $(seq 120); do
        task=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | head -n 1)
        if [ -n "$task" ]; then
            docker inspect -f "{{(index .NetworkSettings.Networks \"${stack}_$2\").IPAddress}}" "$task"
            return
        fi
        sleep 1
    done
    die "the service $1 has no task on this node after $waited s"
}

deploy() {
    generate stack --name "$stack" --replicas "$replicas" --backends "$backends" $publish_flag "$@" \
        | docker stack deploy --detach=false --resolve-image never -c - "$stack" >/dev/null
}

up() {
    [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = active ] \
        || docker swarm init --advertise-addr "${VMM_SWARM_ADVERTISE:-127.0.0.1}" >/dev/null
    config=$(docker compose --profile cli config --format json)
    publish_flag=
    [ "$publish" = yes ] && publish_flag=--publish
    label_nodes
    local part name
    for part in $(generate secrets); do
        name="${stack}_${part}_password"
        docker secret inspect "$name" >/dev/null 2>&1 \
            || head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | docker secret create "$name" - >/dev/null
    done
    # Services with a fixed address in compose.yaml: deployed, then their tasks'
    # addresses are known and replace the fixed ones everywhere, until no task moves (the
    # resolver restarts once it knows another's address, and gets a new one).
    local addresses=() found=() fixed service network round
    deploy --before-setup
    for round in 1 2 3 4 5; do
        converge
        found=()
        while read -r fixed service network; do
            found+=(--address "$fixed=$(address "$service" "$network")")
        done < <(generate fixed)
        [ "$round" -gt 1 ] && [ "${found[*]}" = "${addresses[*]}" ] && break
        addresses=("${found[@]}")
        deploy --before-setup "${addresses[@]}"
    done
    admin setup
    # The certificate the setup made, for the services that read it on any node.
    local secret file
    while read -r secret file; do
        docker secret inspect "$secret" >/dev/null 2>&1 \
            || in_admin cat "$file" </dev/null | docker secret create "$secret" - >/dev/null
    done < <(generate tls --name "$stack")
    for number in $(seq "$backends"); do
        admin backendlist --json | grep -q "\"name\": \"b$number\"" \
            || admin backendadd "b$number" "dovecot-b$number"
    done
    deploy "${addresses[@]}"
    converge
    docker service ls --filter "label=$label" --format 'table {{.Name}}\t{{.Replicas}}\t{{.Ports}}'
}

down() {
    docker stack rm "$stack" >/dev/null
    # The volumes are free once the last task's container is gone.
    local waited
    for waited in $(seq 120); do
        [ -z "$(docker ps -aq --filter "label=$label")" ] && return 0
        sleep 1
    done
    die "the stack's containers were still there after $waited s"
}

purge() {
    down
    docker volume ls -q --filter "name=^${stack}_" | xargs -r docker volume rm >/dev/null
    docker secret ls -q --filter "name=${stack}_" | xargs -r docker secret rm >/dev/null
}

case "${1:-}" in
    up) up ;;
    vmm) shift; admin "$@" ;;
    down) down ;;
    purge) purge ;;
    *) die "usage: swarm.sh up|vmm ARGS|down|purge" ;;
esac
