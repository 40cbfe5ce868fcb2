#!/usr/bin/env bash
# `make run`: the whole suite on this machine. Starts or reuses Redis,
# PostgreSQL and the SQS endpoint, creates the queue + DLQ and the schema,
# builds once, runs every function under one emulator (fanrush-local's
# Runtime API harness, as the drill and the bench do) behind
# 127.0.0.1:8080: the fan and admin APIs (an API Gateway stand-in) and
# Lambda's Invoke API (for the bridge and `cargo lambda invoke`), and runs
# the local stand-in for the SQS event-source mapping and the minute
# schedule. Ctrl-C stops what it started and nothing else.
# `make run CLUSTER=3` runs the gate on a private Redis cluster of three
# shards (a primary and a replica each) instead of the single node.
source "$(dirname "$0")/lib.sh"
trap 'stop_started; exit 0' INT TERM
trap stop_started EXIT

API_PORT=${API_PORT:-8080}
QUEUE_NAME=${QUEUE_NAME:-fanrush-entries}

ensure_rust
ensure_services
if [ -n "${CLUSTER:-}" ]; then
  start_redis_cluster "$CLUSTER"
fi

cd "$ROOT"
log "building the workspace"
cargo build --workspace --quiet

setup=$(target/debug/fanrush-local setup --queue "$QUEUE_NAME")
eval "$setup" # SQS_QUEUE_URL, SQS_DLQ_URL
export SQS_QUEUE_URL SQS_DLQ_URL

# A key prefix and schema of the caller's, when set (make test's smoke of make run).
own=()
[ -n "${REDIS_KEY_PREFIX:-}" ] && own+=("REDIS_KEY_PREFIX=$REDIS_KEY_PREFIX")
[ -n "${DATABASE_SCHEMA:-}" ] && own+=("DATABASE_SCHEMA=$DATABASE_SCHEMA")
write_function_env "$STATE/run.env" "$SQS_QUEUE_URL" "$SQS_DLQ_URL" SCHEDULER_DRY_RUN=true "RUST_LOG=${RUST_LOG:-info}" \
  "${own[@]}"

if port_open "$API_PORT"; then
  log "127.0.0.1:$API_PORT is taken; set API_PORT"
  exit 1
fi
# Every function binary under the Runtime API harness: entry-api and
# admin-api behind the API Gateway stand-in (payload-2.0 events, a body that
# is not UTF-8 base64-encoded as API Gateway does), all five behind the
# Invoke API on the same port.
# shellcheck disable=SC2046 # run.env holds KEY=value lines without spaces
start_bg api env $(cat "$STATE/run.env") target/debug/fanrush-local gateway --port "$API_PORT" \
  --bin-dir target/debug --log-dir "$STATE" --entry-environments "${FUNCTION_CONCURRENCY:-4}" \
  --invoke-api --writer-environments "${WRITER_MAX_CONCURRENCY:-2}"
wait_port "$API_PORT" "the functions' emulator" 60

start_bg bridge target/debug/fanrush-local bridge --queue-url "$SQS_QUEUE_URL" \
  --invoke-url "http://127.0.0.1:$API_PORT" --batch-size "${WRITER_BATCH_SIZE:-100}" \
  --concurrency "${WRITER_MAX_CONCURRENCY:-2}"

cat <<READY
FAN_API=http://127.0.0.1:$API_PORT
ADMIN_API=http://127.0.0.1:$API_PORT
DATABASE_URL=$DATABASE_URL
REDIS_URL=$REDIS_URL
REDIS_CLUSTER=${REDIS_CLUSTER:-false}
SQS_QUEUE_URL=$SQS_QUEUE_URL
READY
log "ready; logs in .local/*.log; Ctrl-C stops everything this run started"
wait
