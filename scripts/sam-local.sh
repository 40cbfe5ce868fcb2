#!/usr/bin/env bash
# `make sam-local`: every function under `sam local invoke`, as the design
# card says the suite is used, against the local stack, each answer checked
# (db-setup aside: it needs the deployed stack's secrets; locally the
# schema's owner migrates).
#
# - Docker: Debian's docker.io if absent; a dockerd of the project's own on
#   a socket under .local/ (vfs storage), started only if none answers there
#   and stopped at the end; nothing else's engine is touched.
# - The base image: the public provided.al2023 image is out of reach here, so
#   a STAND-IN is built once from a Debian root filesystem (debootstrap,
#   minbase plus CA roots) and imported as fanrush/provided-al2023-standin.
#   SAM layers its own Lambda Runtime Interface Emulator on top, so the
#   bootstrap is driven by the real Runtime API; the OS is Debian, not
#   Amazon Linux 2023.
# - The build: `sam build` for x86_64 (this machine's architecture) into
#   .local/sam-build; `--quick` uses the debug binaries of `cargo build`
#   instead (what a smoke run needs: minutes less).
# - The template: the built one, with the secrets extension left out
#   (SecretsExtensionLayerArn=none; SAM's local resolver cannot evaluate the
#   condition around Layers, so the property is dropped) and the local
#   variables in the secrets' place (REDIS_URL, DATABASE_URL, the ticket key).
# - `sam local start-api` serves the fan and admin APIs on 127.0.0.1:3000 and
#   `sam local start-lambda` the Invoke API on 3001, which `fanrush-local
#   bridge` drives (the SQS mapping to the writer, the minute schedule), as
#   `make run` does with its own stand-ins. SAM cannot check a JWT or an IAM
#   signature locally, so the APIs run in dev mode there (x-fan-id names the
#   fan), as under `make run`; `sam local invoke` keeps the deployed modes,
#   fed by the sample events' authorizer context. The full run replays the
#   README's walk-through through them; `--serve` stays up until Ctrl-C.
# - The network: the containers join a bridge network the project's dockerd
#   creates (fanrush-sam, on the first 172.31.x.0/24 no interface here holds;
#   removed at the end, since its bridge interface outlives the dockerd); the local services listen on 127.0.0.1 only, so a
#   socat forwarder per service listens on the bridge's gateway address and
#   nothing but those services is reachable through it.
source "$(dirname "$0")/lib.sh"
drop_run_schema() {
  psql "$DATABASE_URL" -q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $PREFIX CASCADE" 2>/dev/null || true
}
# What this run made, undone in order: SAM and the forwarders first, then
# the network (a bridge interface outlives its dockerd), then the dockerd.
DOCKERD_PID= MADE_NETWORK=
clean_up() {
  drop_run_schema
  stop_started
  # Ours when this run made it, or when it lives in the dockerd this run started.
  if [ -n "$MADE_NETWORK" ] || [ -n "$DOCKERD_PID" ]; then docker network rm "$NETWORK" >/dev/null 2>&1; fi
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap clean_up EXIT

QUICK= SERVE=
case "${1:-}" in
  --quick) QUICK=1 ;;
  --serve) SERVE=1 ;;
esac
API_PORT=${SAM_API_PORT:-3000}
LAMBDA_PORT=${SAM_LAMBDA_PORT:-3001}
DOCKER_DIR="$STATE/docker"
export DOCKER_HOST="unix://$DOCKER_DIR/docker.sock"
IMAGE=fanrush/provided-al2023-standin:bookworm
NETWORK=fanrush-sam
SLACK_PORT=${SLACK_PORT:-9330}
# A queue, schema and key prefix of this run's own, so a second run's fan
# is new again (202) and no run inherits another's state.
PREFIX="samlocal_$$_$(date +%s)"

ensure_rust
ensure_services
ensure_pip_tool sam aws-sam-cli==1.170.0
export SAM_CLI_TELEMETRY=0
command -v dockerd >/dev/null || apt_install docker.io
command -v debootstrap >/dev/null || apt_install debootstrap
command -v socat >/dev/null || apt_install socat
command -v ip >/dev/null || apt_install iproute2
command -v psql >/dev/null || apt_install postgresql-client

if ! docker info >/dev/null 2>&1; then
  mkdir -p "$DOCKER_DIR"
  setsid dockerd --storage-driver=vfs --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" \
    --pidfile "$DOCKER_DIR/dockerd.pid" -H "$DOCKER_HOST" >"$STATE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  log "started dockerd (pid $DOCKERD_PID, log .local/dockerd.log)"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start (.local/dockerd.log)"; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  rootfs="$STATE/sam-image/rootfs"
  log "building $IMAGE (a stand-in for provided.al2023) from a Debian root filesystem, once"
  rm -rf "$rootfs" && mkdir -p "$(dirname "$rootfs")"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian \
    >"$STATE/sam-image/debootstrap.log" 2>&1 || { log "debootstrap failed (.local/sam-image/debootstrap.log)"; exit 1; }
  tar -C "$rootfs" -c . | docker import -c 'WORKDIR /var/task' \
    -c 'ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime' - "$IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# The network's subnet: the first of 172.31.240-254.0/24 whose gateway
# address no interface on this machine holds (another engine's bridge may).
if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
  for n in $(seq 240 254); do
    ip -4 -o addr show | grep -q " 172\.31\.$n\.1/" && continue
    docker network create --subnet "172.31.$n.0/24" --gateway "172.31.$n.1" "$NETWORK" >/dev/null &&
      MADE_NETWORK=1 && break
  done
  [ -n "$MADE_NETWORK" ] || { log "no free subnet in 172.31.240-254.0/24 for $NETWORK"; exit 1; }
fi
GATEWAY=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' "$NETWORK")
[[ "$GATEWAY" =~ ^172\.31\.[0-9]+\.1$ ]] || { log "$NETWORK has no gateway address ($GATEWAY): docker network rm $NETWORK"; exit 1; }
for port in "$REDIS_PORT" "$PG_PORT" "$SQS_PORT" "$SLACK_PORT"; do
  start_bg "sam-forward-$port" socat "TCP-LISTEN:$port,bind=$GATEWAY,fork,reuseaddr" "TCP:127.0.0.1:$port"
done
# The Slack stand-in: records every post it gets, one JSON body a line.
SLACK_LOG="$STATE/sam-slack.jsonl"
: >"$SLACK_LOG"
start_bg sam-slack "$VENV/bin/python" "$ROOT/scripts/slack-standin.py" "$SLACK_PORT" "$SLACK_LOG"
wait_port "$SLACK_PORT" "the Slack stand-in" 20

cd "$ROOT"
BUILD="$STATE/sam-build"
started=$(date +%s)
if [ -n "$QUICK" ]; then
  log "cargo build (debug binaries as the functions' bootstrap)"
  cargo build --quiet --workspace --bins
  rm -rf "$BUILD" && mkdir -p "$BUILD"
  for pair in EntryApiFunction:entry-api AdminApiFunction:admin-api WriterFunction:writer \
    SchedulerFunction:scheduler NotifierFunction:notifier DatabaseSetupFunction:db-setup; do
    mkdir -p "$BUILD/${pair%%:*}"
    cp "target/debug/${pair##*:}" "$BUILD/${pair%%:*}/bootstrap"
  done
  cp template.yaml "$BUILD/template.yaml"
else
  log "sam build for x86_64 into .local/sam-build"
  sam build --build-dir "$BUILD" --parameter-overrides Architecture=x86_64
fi
log "built in $(( $(date +%s) - started )) s"

setup=$(REDIS_KEY_PREFIX=$PREFIX DATABASE_SCHEMA=$PREFIX target/debug/fanrush-local setup --queue "$PREFIX")
eval "$setup" # SQS_QUEUE_URL, SQS_DLQ_URL
"$VENV/bin/python" "$ROOT/scripts/sam-local-template.py" "$BUILD/template.yaml" "$BUILD/local.yaml" \
  REDIS_URL="redis://$GATEWAY:$REDIS_PORT" REDIS_CLUSTER=false REDIS_KEY_PREFIX=$PREFIX \
  DATABASE_URL="${DATABASE_URL/127.0.0.1/$GATEWAY}" DATABASE_SCHEMA=$PREFIX DATABASE_MIGRATIONS=apply \
  SQS_QUEUE_URL="$SQS_QUEUE_URL" SQS_DLQ_URL="$SQS_DLQ_URL" AWS_ENDPOINT_URL="http://$GATEWAY:$SQS_PORT" \
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_EC2_METADATA_DISABLED=true \
  LINE_TICKET_SECRET="$(line_ticket_secret)" RECEIPT_SECRET="$(receipt_secret)" FANRUSH_LOCAL=1 SCHEDULER_DRY_RUN=true \
  SLACK_WEBHOOK_URL="http://$GATEWAY:$SLACK_PORT/hook" RUST_LOG=info
# The same for start-api, where nothing local checks a JWT or a signature.
"$VENV/bin/python" "$ROOT/scripts/sam-local-template.py" "$BUILD/local.yaml" "$BUILD/local-api.yaml" AUTH_MODE=dev

SAM_ENV=(env -i PATH="$PATH" HOME="$HOME" DOCKER_HOST="$DOCKER_HOST" SAM_CLI_TELEMETRY=0
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION="$AWS_REGION")
SAM_LOCAL=(--invoke-image "$IMAGE" --skip-pull-image --docker-network "$NETWORK"
  --parameter-overrides Architecture=x86_64 SecretsExtensionLayerArn=none)

# The APIs through start-api, and the writer and scheduler through
# start-lambda and the bridge: what make run serves, on SAM's emulators.
serve() {
  for port in "$API_PORT" "$LAMBDA_PORT"; do
    if port_open "$port"; then log "127.0.0.1:$port is taken; set SAM_API_PORT or SAM_LAMBDA_PORT"; exit 1; fi
  done
  start_bg sam-api "${SAM_ENV[@]}" sam local start-api -t "$BUILD/local-api.yaml" --host 127.0.0.1 \
    --port "$API_PORT" --warm-containers LAZY "${SAM_LOCAL[@]}"
  start_bg sam-lambda "${SAM_ENV[@]}" sam local start-lambda -t "$BUILD/local-api.yaml" --host 127.0.0.1 \
    --port "$LAMBDA_PORT" --warm-containers LAZY "${SAM_LOCAL[@]}"
  wait_port "$API_PORT" "sam local start-api" 120
  wait_port "$LAMBDA_PORT" "sam local start-lambda" 120
  start_bg sam-bridge target/debug/fanrush-local bridge --queue-url "$SQS_QUEUE_URL" \
    --invoke-url "http://127.0.0.1:$LAMBDA_PORT" --writer WriterFunction --scheduler SchedulerFunction \
    --batch-size 100
}

# SAM lets the shell's variables override the template's (SAM_ENV runs it in
# an environment of its own, so lib.sh's loopback URLs cannot reach a container).
invoke() { # function, event file: prints the function's answer (the last line SAM prints)
  "${SAM_ENV[@]}" sam local invoke "$1" -t "$BUILD/local.yaml" -e "$2" "${SAM_LOCAL[@]}" \
    2>>"$STATE/sam-local.log" | tail -n 1
}
expect_status() { # function, event, wanted status
  local answer status
  answer=$(invoke "$1" "$2")
  status=$(printf '%s' "$answer" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get("statusCode"))')
  if [ "$status" != "$3" ]; then
    log "$1 with $2 answered $status, not $3: $answer (.local/sam-local.log)"
    exit 1
  fi
  log "$1 $2: $status"
}
psql_count() {
  psql "$DATABASE_URL" -tAc "$1"
}

if [ -n "$SERVE" ]; then
  serve
  cat <<READY
FAN_API=http://127.0.0.1:$API_PORT
ADMIN_API=http://127.0.0.1:$API_PORT
READY
  log "ready (sam local start-api and start-lambda, dev mode); Ctrl-C stops what this run started"
  trap 'drop_run_schema; stop_started; exit 0' INT TERM
  wait
fi

: >"$STATE/sam-local.log"
checks_started=$(date +%s)
# The fan's POST (202, then 200 for the same fan) needs its event: the
# operator defines it first, through the admin API and its IAM context.
answer=$(invoke AdminApiFunction events/admin-put-event.json)
case "$answer" in *'"statusCode": 201'* | *'"statusCode": 200'*) log "AdminApiFunction admin-put-event: ok" ;;
  *) log "the admin PUT answered: $answer"; exit 1 ;; esac
if [ -n "$QUICK" ]; then
  expect_status EntryApiFunction events/fan-post-entry.json 202
  expect_status EntryApiFunction events/fan-post-entry.json 200
  log "sam local invoke --quick: admin-api and entry-api answered in containers in $(( $(date +%s) - checks_started )) s"
  exit 0
fi
expect_status AdminApiFunction events/admin-list-events.json 200
expect_status EntryApiFunction events/fan-get-event.json 200
expect_status EntryApiFunction events/fan-post-entry.json 202
expect_status EntryApiFunction events/fan-post-entry.json 200
expect_status EntryApiFunction events/fan-get-my-entry.json 200

# The SQS batch: every record's row reaches PostgreSQL.
records=$("$VENV/bin/python" -c 'import json; print(len(json.load(open("events/sqs-batch.json"))["Records"]))')
event=$("$VENV/bin/python" -c 'import json; print(json.loads(json.load(open("events/sqs-batch.json"))["Records"][0]["body"])["eventId"])')
invoke WriterFunction events/sqs-batch.json >/dev/null
rows=$(psql_count "SELECT count(*) FROM $PREFIX.entries WHERE event_id = '$event'")
[ "$rows" = "$records" ] || { log "the writer stored $rows of the batch's $records rows"; exit 1; }
log "WriterFunction sqs-batch: $rows rows in PostgreSQL"

# The schedule tick, in dry run: a plan, and no Lambda API call.
invoke SchedulerFunction events/schedule.json >/dev/null
grep -q 'dry run' "$STATE/sam-local.log" || { log "the scheduler's tick logged no dry-run plan"; exit 1; }
log "SchedulerFunction schedule: a dry-run plan"

# The SNS alarm: the notifier posts it to the Slack stand-in.
alarm=$("$VENV/bin/python" -c 'import json; print(json.loads(json.load(open("events/sns-alarm.json"))["Records"][0]["Sns"]["Message"])["AlarmName"])')
invoke NotifierFunction events/sns-alarm.json >/dev/null
grep -q "$alarm" "$SLACK_LOG" || { log "the Slack stand-in got no post naming $alarm"; exit 1; }
log "NotifierFunction sns-alarm: posted to the Slack stand-in"
log "sam local invoke: every function and every sample event answered as expected in $(( $(date +%s) - checks_started )) s"

# The README's walk-through, through start-api (and the writer behind
# start-lambda and the bridge): the same answers as under make run.
serve
walk_started=$(date +%s)
walk_through "http://127.0.0.1:$API_PORT" 120 || { log "sam local start-api: the walk-through failed"; exit 1; }
log "sam local start-api: the README's walk-through answered as under make run, alice's row written, in $(( $(date +%s) - walk_started )) s"
