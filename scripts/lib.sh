#!/usr/bin/env bash
# fanrush local stack: install what is missing, start or reuse Redis,
# PostgreSQL and the SQS endpoint, and stop on exit only what *this* shell
# started (by PID or process group), never anything else.
#
# Sourced by run.sh, test.sh and friends. Ports and URLs come from the
# environment with the defaults below.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.local"
mkdir -p "$STATE"

REDIS_PORT=${REDIS_PORT:-6379}
PG_PORT=${PG_PORT:-5432}
SQS_PORT=${SQS_PORT:-9324}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:$SQS_PORT}
export AWS_REGION=${AWS_REGION:-us-east-1}
# Local endpoints need some credentials; these are not secrets.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
# Keep the SDK away from ~/.aws and instance metadata.
export AWS_EC2_METADATA_DISABLED=true

STARTED_PIDS=()      # processes this shell started (killed by process group)
STARTED_PG_CLUSTER="" # a PostgreSQL cluster this shell started

log() { printf '\033[1m[fanrush]\033[0m %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port, what, seconds
  local i
  for ((i = 0; i < ${3:-30} * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  log "$2 did not come up on 127.0.0.1:$1"
  return 1
}

# Starts a command in its own process group, remembers it, logs to .local/.
start_bg() { # name, command...
  local name=$1
  shift
  setsid "$@" >"$STATE/$name.log" 2>&1 &
  STARTED_PIDS+=("$!")
  log "started $name (pid $!, log .local/$name.log)"
}

stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
  if [ -n "$STARTED_PG_CLUSTER" ]; then
    log "stopping the PostgreSQL cluster this run started"
    pg_ctlcluster --skip-systemctl-redirect $STARTED_PG_CLUSTER stop || true
    STARTED_PG_CLUSTER=""
  fi
}

ensure_rust() {
  command -v cargo >/dev/null || { log "cargo is required (rustup)"; exit 1; }
  command -v gcc >/dev/null || apt_install build-essential
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "reusing Redis on 127.0.0.1:$REDIS_PORT"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
  wait_port "$REDIS_PORT" Redis
}

# A private Redis cluster on loopback (cluster mode enabled, as ElastiCache's):
# $1 primaries, each with one replica, from redis-server and
# `redis-cli --cluster create`, on ports from REDIS_CLUSTER_PORT (7100) up,
# stopped with everything else this script started. Sets REDIS_URL to a node
# (the cluster client reads the slots from it) and REDIS_CLUSTER=true.
start_redis_cluster() {
  local primaries=$1 base=${REDIS_CLUSTER_PORT:-7100} nodes=() port i
  command -v redis-server >/dev/null || apt_install redis-server
  rm -rf "$STATE/cluster"
  for ((i = 0; i < primaries * 2; i++)); do
    port=$((base + i))
    if port_open "$port"; then
      log "127.0.0.1:$port is taken; set REDIS_CLUSTER_PORT"
      exit 1
    fi
    mkdir -p "$STATE/cluster/$port"
    start_bg "redis-cluster-$port" redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$STATE/cluster/$port/nodes.conf" --cluster-node-timeout 2000 \
      --dir "$STATE/cluster/$port"
    nodes+=("127.0.0.1:$port")
  done
  for node in "${nodes[@]}"; do wait_port "${node##*:}" "Redis cluster node"; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$STATE/redis-cluster-create.log"
  for ((i = 0; i < 300; i++)); do
    redis-cli -p "$base" cluster info | grep -q "cluster_state:ok" && break
    sleep 0.1
  done
  export REDIS_URL="redis://127.0.0.1:$base" REDIS_CLUSTER=true
  log "Redis cluster of $primaries shards (a primary and a replica each) on 127.0.0.1:$base-$((base + primaries * 2 - 1))"
}

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "reusing PostgreSQL on 127.0.0.1:$PG_PORT"
    return
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    # A fresh Debian cluster asks for passwords on TCP; trust loopback for
    # this local, single-user stack.
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  STARTED_PG_CLUSTER="$version main"
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return; sleep 0.1; done
  log "PostgreSQL did not come up"
  exit 1
}

ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d "$ROOT/local/sqs/node_modules/fauxqs" ]; then
    log "npm ci (fauxqs)"
    (cd "$ROOT/local/sqs" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_sqs() {
  if port_open "$SQS_PORT"; then
    log "reusing the SQS endpoint on 127.0.0.1:$SQS_PORT"
    return
  fi
  ensure_node
  start_bg sqs env FAUXQS_PORT="$SQS_PORT" node "$ROOT/local/sqs/server.mjs"
  wait_port "$SQS_PORT" "the SQS endpoint (fauxqs)"
}

ensure_services() {
  ensure_redis
  ensure_postgres
  ensure_sqs
}

# The line's ticket key for local runs: made once, kept in .local, so tickets
# survive a restart of `make run` (in AWS the template generates it as a
# Secrets Manager secret).
line_ticket_secret() { local_secret line-ticket; }
# The key admitted fans' receipts are signed with (locally, as the ticket's).
receipt_secret() { local_secret receipt; }
local_secret() { # name
  local file="$STATE/$1.secret"
  if [ ! -s "$file" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# Writes the environment file of locally run functions: the services of this
# stack, the queue and its DLQ, local AWS credentials, AUTH_MODE=dev, the
# line's ticket key, the mark of a local run (FANRUSH_LOCAL=1: an emulator
# that sets Lambda's own variables is still not AWS, where dev mode and
# plain keys are refused), then any extra KEY=value lines given.
write_function_env() { # file, queue url, DLQ url, extra KEY=value...
  local file=$1 queue_url=$2 dlq_url=$3
  shift 3
  {
    echo "REDIS_URL=$REDIS_URL"
    echo "REDIS_CLUSTER=${REDIS_CLUSTER:-false}"
    echo "DATABASE_URL=$DATABASE_URL"
    echo "SQS_QUEUE_URL=$queue_url"
    echo "SQS_DLQ_URL=$dlq_url"
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "AWS_REGION=$AWS_REGION"
    echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    echo "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    echo "AWS_EC2_METADATA_DISABLED=true"
    echo "AUTH_MODE=dev"
    echo "LINE_TICKET_SECRET=$(line_ticket_secret)"
    echo "RECEIPT_SECRET=$(receipt_secret)"
    echo "FANRUSH_LOCAL=1"
    printf '%s\n' "$@"
  } >"$file"
}

# Python tools live in the project's own virtual environment, never in the
# machine's interpreter: created on first use, its bin/ first on PATH.
VENV="$STATE/venv"
export PATH="$VENV/bin:$PATH"
ensure_venv() {
  [ -x "$VENV/bin/pip" ] && return
  python3 -m venv -h >/dev/null 2>&1 || apt_install python3-venv
  log "python3 -m venv $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
}

# cfn-guard, as AWS builds it: the static Linux binary the cdklabs validator
# package carries on the npm registry. Compiling it from crates.io took
# 2.5 min of make test's budget on 2 cores; this takes seconds. Pinned: the
# package, and the version of the binary it holds.
CFN_GUARD_PACKAGE="@cdklabs/cdk-validator-cfnguard@0.0.62"
CFN_GUARD_VERSION="3.1.1"
CFN_GUARD_DIR="$STATE/cfn-guard"
export PATH="$CFN_GUARD_DIR:$PATH"

ensure_cfn_guard() {
  if [ -x "$CFN_GUARD_DIR/cfn-guard" ] && "$CFN_GUARD_DIR/cfn-guard" --version | grep -qx "cfn-guard $CFN_GUARD_VERSION"; then
    return
  fi
  command -v npm >/dev/null || apt_install nodejs npm
  log "cfn-guard $CFN_GUARD_VERSION from $CFN_GUARD_PACKAGE (into $CFN_GUARD_DIR)"
  local pack
  pack=$(mktemp -d)
  (cd "$pack" && npm pack --silent "$CFN_GUARD_PACKAGE" >/dev/null)
  tar -xzf "$pack"/*.tgz -C "$pack" "package/bin/ubuntu/$(uname -m)/cfn-guard"
  mkdir -p "$CFN_GUARD_DIR"
  install -m 0755 "$pack/package/bin/ubuntu/$(uname -m)/cfn-guard" "$CFN_GUARD_DIR/cfn-guard"
  rm -rf "$pack"
  "$CFN_GUARD_DIR/cfn-guard" --version | grep -qx "cfn-guard $CFN_GUARD_VERSION" ||
    { log "$CFN_GUARD_PACKAGE did not hold cfn-guard $CFN_GUARD_VERSION"; exit 1; }
  hash -r
}

ensure_pip_tool() { # command, pinned pip package (name==version)
  if [ -x "$VENV/bin/$1" ] && "$VENV/bin/pip" freeze 2>/dev/null | grep -qix "$2"; then
    return
  fi
  ensure_venv
  log "pip install $2 (into $VENV)"
  "$VENV/bin/pip" install -q "$2"
  hash -r
}

ensure_pip_package() { # pinned pip package (name==version), a library rather than a command
  ensure_venv
  "$VENV/bin/pip" freeze 2>/dev/null | grep -qix "$1" && return
  log "pip install $1 (into $VENV)"
  "$VENV/bin/pip" install -q "$1"
}

# The fan page's browser test: Debian's Chromium, run headless.
ensure_chromium() {
  command -v chromium >/dev/null && return
  apt_install chromium
}

# The README's walk-through against an API at $1 (what make run serves):
# define `walk`, alice enters (202, then 200 again), reads her entry and the
# event, and her row reaches PostgreSQL through the bridge and the writer
# within $2 seconds. Says what answered wrong and returns 1.
walk_through() { # base URL, seconds to wait for the row
  local base=$1 out status
  walk_expect() { # wanted status, method, path, fan (or '')
    out=$(curl -s -w '\n%{http_code}' -X "$2" ${4:+-H "x-fan-id: $4"} ${body:+-d "$body"} "$base$3")
    status=${out##*$'\n'}
    [ "$status" = "$1" ] || { log "$2 $base$3 answered $status, not $1: ${out%$'\n'*}"; return 1; }
  }
  local body='{"title":"Demo drop","opensAt":"2026-01-01T00:00:00Z","closesAt":"2030-01-01T00:00:00Z",
    "capacity":5000,"expectedPeakRps":10000}'
  walk_expect 201 PUT /admin/events/walk '' || return 1
  body=
  walk_expect 202 POST /events/walk/entries alice || return 1
  walk_expect 200 POST /events/walk/entries alice || return 1
  walk_expect 200 GET /events/walk/entries/me alice || return 1
  walk_expect 200 GET /events/walk alice || return 1
  for _ in $(seq 1 "$2"); do
    curl -s "$base/admin/events/walk" | grep -q '"written":1' && return 0
    sleep 1
  done
  log "alice's entry never reached PostgreSQL within $2 s (the bridge, the Invoke API, the writer)"
  return 1
}
