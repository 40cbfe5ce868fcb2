#!/usr/bin/env bash
# `make run`: the whole suite on this machine. Starts or reuses Redis,
# PostgreSQL and the SQS endpoint, creates the queue + DLQ and the schema,
# builds once, serves the functions with `cargo lambda watch` on
# 127.0.0.1:9000 and runs the local stand-in for the SQS event-source mapping
# and the minute schedule. Ctrl-C stops what it started and nothing else.
source "$(dirname "$0")/lib.sh"
trap 'stop_started; exit 0' INT TERM
trap stop_started EXIT

INVOKE_PORT=${INVOKE_PORT:-9000}
QUEUE_NAME=${QUEUE_NAME:-fanrush-entries}

ensure_rust
ensure_pip_tool cargo-lambda cargo-lambda
ensure_services

cd "$ROOT"
log "building the workspace"
cargo build --workspace --quiet

setup=$(target/debug/fanrush setup --queue "$QUEUE_NAME")
eval "$setup" # SQS_QUEUE_URL, SQS_DLQ_URL
export SQS_QUEUE_URL SQS_DLQ_URL

cat >"$STATE/run.env" <<ENV
REDIS_URL=$REDIS_URL
DATABASE_URL=$DATABASE_URL
SQS_QUEUE_URL=$SQS_QUEUE_URL
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_EC2_METADATA_DISABLED=true
AUTH_MODE=dev
SCHEDULER_DRY_RUN=true
RUST_LOG=${RUST_LOG:-info}
ENV

if port_open "$INVOKE_PORT"; then
  log "127.0.0.1:$INVOKE_PORT is taken; set INVOKE_PORT"
  exit 1
fi
start_bg functions cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --env-file "$STATE/run.env" --concurrency "${FUNCTION_CONCURRENCY:-4}" --ignore-changes
wait_port "$INVOKE_PORT" "cargo lambda watch" 120

start_bg bridge target/debug/fanrush bridge --queue-url "$SQS_QUEUE_URL" \
  --invoke-url "http://127.0.0.1:$INVOKE_PORT" --batch-size "${WRITER_BATCH_SIZE:-100}" \
  --concurrency "${WRITER_MAX_CONCURRENCY:-2}"

# Compile and start each function now, so the first request is not a build.
for fn in entry-api admin-api; do
  curl -s -o /dev/null "http://127.0.0.1:$INVOKE_PORT/lambda-url/$fn/" || true
done

cat <<READY
FAN_API=http://127.0.0.1:$INVOKE_PORT/lambda-url/entry-api
ADMIN_API=http://127.0.0.1:$INVOKE_PORT/lambda-url/admin-api
DATABASE_URL=$DATABASE_URL
REDIS_URL=$REDIS_URL
SQS_QUEUE_URL=$SQS_QUEUE_URL
READY
log "ready; logs in .local/*.log; Ctrl-C stops everything this run started"
wait
