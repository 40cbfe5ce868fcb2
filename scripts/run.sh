#!/usr/bin/env bash
# `make run`: the whole suite on this machine. Starts or reuses Redis,
# PostgreSQL and the SQS endpoint, creates the queue + DLQ and the schema,
# builds once, serves the functions with `cargo lambda watch` on
# 127.0.0.1:9000 (the Invoke API), the fan and admin APIs on 127.0.0.1:8080
# (an API Gateway stand-in), and runs the local stand-in for the SQS
# event-source mapping and the minute schedule. Ctrl-C stops what it started and nothing else.
source "$(dirname "$0")/lib.sh"
trap 'stop_started; exit 0' INT TERM
trap stop_started EXIT

INVOKE_PORT=${INVOKE_PORT:-9000}
API_PORT=${API_PORT:-8080}
QUEUE_NAME=${QUEUE_NAME:-fanrush-entries}

ensure_rust
ensure_pip_tool cargo-lambda cargo-lambda==1.9.2
ensure_services

cd "$ROOT"
log "building the workspace"
cargo build --workspace --quiet

setup=$(target/debug/fanrush-local setup --queue "$QUEUE_NAME")
eval "$setup" # SQS_QUEUE_URL, SQS_DLQ_URL
export SQS_QUEUE_URL SQS_DLQ_URL

write_function_env "$STATE/run.env" "$SQS_QUEUE_URL" "$SQS_DLQ_URL" SCHEDULER_DRY_RUN=true "RUST_LOG=${RUST_LOG:-info}"

for port in "$INVOKE_PORT" "$API_PORT"; do
  if port_open "$port"; then
    log "127.0.0.1:$port is taken; set INVOKE_PORT or API_PORT"
    exit 1
  fi
done
start_bg functions cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --env-file "$STATE/run.env" --concurrency "${FUNCTION_CONCURRENCY:-4}" --ignore-changes
wait_port "$INVOKE_PORT" "cargo lambda watch" 120

start_bg bridge target/debug/fanrush-local bridge --queue-url "$SQS_QUEUE_URL" \
  --invoke-url "http://127.0.0.1:$INVOKE_PORT" --batch-size "${WRITER_BATCH_SIZE:-100}" \
  --concurrency "${WRITER_MAX_CONCURRENCY:-2}"

# The HTTP APIs: the entry-api and admin-api binaries behind a small API
# Gateway stand-in, which sends them payload-2.0 events as API Gateway does
# (cargo lambda watch's function URLs answer a body that is not UTF-8 with a
# 500 of their own before the function sees it).
# shellcheck disable=SC2046 # run.env holds KEY=value lines without spaces
start_bg api env $(cat "$STATE/run.env") target/debug/fanrush-local gateway --port "$API_PORT" \
  --bin-dir target/debug --log-dir "$STATE" --entry-environments "${FUNCTION_CONCURRENCY:-4}"
wait_port "$API_PORT" "the API gateway stand-in" 60

cat <<READY
FAN_API=http://127.0.0.1:$API_PORT
ADMIN_API=http://127.0.0.1:$API_PORT
DATABASE_URL=$DATABASE_URL
REDIS_URL=$REDIS_URL
SQS_QUEUE_URL=$SQS_QUEUE_URL
READY
log "ready; logs in .local/*.log; Ctrl-C stops everything this run started"
wait
