#!/usr/bin/env bash
# The API contract check of `make test`: serves the entry-api and admin-api
# binaries behind `fanrush-local gateway` (a small API Gateway stand-in that
# sends them payload-2.0 events, base64-encoding bodies that are not UTF-8 as
# API Gateway does),
# on a port of its own with its own queue, Redis key prefix and database
# schema; defines one event, then runs schemathesis with openapi.yaml against
# both for a bounded number of examples: no 5xx, every status, header and body
# as the spec says; then drives the fan page (web/) in headless Chromium
# through the same gateway. Sourced by test.sh after the services are up and the
# workspace is built.

CONTRACT_PORT=${CONTRACT_PORT:-9400}

# Locally no JWT authorizer or IAM sits in front of the functions (AUTH_MODE=dev
# names the fan with x-fan-id), so the contract is checked against the spec
# without its security requirements; the Rust tests check that production mode
# refuses requests without them.
local_spec() {
  "$VENV/bin/python" - "$ROOT/openapi.yaml" "$STATE/openapi.local.yaml" <<'PY'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
spec.pop("security", None)
for item in spec["paths"].values():
    for op in item.values():
        if isinstance(op, dict):
            op.pop("security", None)
yaml.safe_dump(spec, open(sys.argv[2], "w"), sort_keys=False)
PY
}

# One worker: schemathesis's workers are threads, and CPython 3.11's ast.parse
# (which hypothesis calls to describe lambdas) is not thread-safe ("AST
# constructor recursion depth mismatch"), an intermittent internal error.
st_run() { # base url, path regex, extra args...
  local url=$1 paths=$2
  shift 2
  schemathesis --config-file "$ROOT/schemathesis.toml" run "$STATE/openapi.local.yaml" --url "$url" --include-path-regex "$paths" --checks all \
    --phases examples,coverage,fuzzing --max-examples "${CONTRACT_EXAMPLES:-30}" --seed 1 \
    --request-timeout 10 --workers 1 --no-color "$@"
}

run_contract() {
  # The flags and checks below are schemathesis 4's; pin the version tested.
  if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q '4\.32\.5'; then
    ensure_venv
    log "pip install schemathesis==4.32.5 (into $VENV)"
    "$VENV/bin/pip" install -q 'schemathesis==4.32.5'
    hash -r
  fi
  local setup SQS_QUEUE_URL SQS_DLQ_URL
  # A queue, schema and key prefix of this run's own: the fuzzer deletes
  # `demo`, and a deleted event id is retired for good, so no run may inherit
  # another's. Setup migrates the schema and makes the empty gate ready.
  local run_id="contract_$$_$(date +%s)"
  setup=$(REDIS_KEY_PREFIX="$run_id" DATABASE_SCHEMA="$run_id" target/debug/fanrush-local setup --queue "$run_id")
  eval "$setup" # SQS_QUEUE_URL, SQS_DLQ_URL
  write_function_env "$STATE/contract.env" "$SQS_QUEUE_URL" "$SQS_DLQ_URL" \
    REDIS_KEY_PREFIX="$run_id" DATABASE_SCHEMA="$run_id" RATE_LIMIT_REQUESTS=0 RUST_LOG=warn
  if port_open "$CONTRACT_PORT"; then
    log "127.0.0.1:$CONTRACT_PORT is taken; set CONTRACT_PORT"
    return 1
  fi
  # shellcheck disable=SC2046 # contract.env holds KEY=value lines without spaces
  start_bg contract-gateway env $(cat "$STATE/contract.env") target/debug/fanrush-local gateway \
    --port "$CONTRACT_PORT" --bin-dir target/debug --log-dir "$STATE"
  wait_port "$CONTRACT_PORT" "the contract gateway" 60
  local base="http://127.0.0.1:$CONTRACT_PORT"
  # The event the spec's examples name; its schema and prefix are the contract run's own.
  # Open from a day ago for a year: an event's window is at most ten years.
  local put opens closes
  opens=$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:%SZ)
  closes=$(date -u -d '1 year' +%Y-%m-%dT%H:%M:%SZ)
  for _ in $(seq 1 60); do
    put=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$base/admin/events/demo" \
      -H 'content-type: application/json' \
      -d '{"title":"Contract","opensAt":"'"$opens"'","closesAt":"'"$closes"'","capacity":1000000,"expectedPeakRps":100}') || true
    [[ $put == 20? ]] && break
    sleep 1
  done
  [[ $put == 20? ]] || { log "admin-api did not answer the contract setup (last status $put)"; return 1; }
  local_spec
  log "schemathesis: fan API"
  st_run "$base" '^/events' -H 'x-fan-id: contract-fan'
  log "schemathesis: the public draw and receipt keys"
  st_run "$base" '^/(draws|receipt-keys)'
  log "schemathesis: admin API"
  # positive_data_acceptance: "closesAt after opensAt" spans two fields, which
  # OpenAPI 3.0 cannot say, so schema-valid bodies may rightly get 400.
  st_run "$base" '^/admin' --exclude-checks positive_data_acceptance
  log "the fan page in headless Chromium (DevTools protocol): join a lined event, wait, get in"
  ensure_chromium
  ensure_pip_package websocket-client==1.8.0
  "$VENV/bin/python" "$ROOT/scripts/check-fan-page.py" "$base"
  log "the operator CLI in dev mode: fanrush events and fanrush entries against the same admin-api"
  check_operator_cli "$base" "$run_id"
  psql "$DATABASE_URL" -q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $run_id CASCADE" || true
}

# `fanrush events` defines, reads, lists and deletes an event, and `fanrush
# entries` pages its 25 entries out (put straight into the run's schema:
# no writer drains this gateway's queue), as JSON lines and as CSV, signed
# with the local credentials the dev-mode API ignores.
check_operator_cli() { # base url, schema
  local base=$1 schema=$2 cli=target/debug/fanrush event="cli-$$" def lines
  def=$(mktemp)
  echo '{"title":"Operator CLI","opensAt":"'"$(date -u -d '1 minute ago' +%Y-%m-%dT%H:%M:%SZ)"'",
         "closesAt":"'"$(date -u -d '1 day' +%Y-%m-%dT%H:%M:%SZ)"'","capacity":100,"expectedPeakRps":1}' >"$def"
  "$cli" events put --api "$base" --event "$event" --file "$def" | grep -q "\"eventId\":\"$event\"" ||
    { log "fanrush events put did not define $event"; return 1; }
  "$cli" events list --api "$base" | grep -q "\"$event\"" || { log "fanrush events list misses $event"; return 1; }
  psql "$DATABASE_URL" -q -c "SET search_path TO $schema; INSERT INTO entries (event_id, fan_id, position, note, accepted_at)
    SELECT '$event', 'cli-fan-' || g, g, 'note, \"' || g || '\"', now() FROM generate_series(1, 25) g"
  lines=$("$cli" entries --api "$base" --event "$event" --page-size 10 | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert [r["position"] for r in rows] == list(range(1, 26)), rows
print(len(rows))')
  [ "$lines" = 25 ] || { log "fanrush entries gave $lines JSON lines, not 25"; return 1; }
  lines=$("$cli" entries --api "$base" --event "$event" --page-size 10 --format csv | python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
assert rows[0] == ["position", "fanId", "acceptedAt", "note"] and rows[25][3] == "note, \"25\"", rows
print(len(rows))')
  [ "$lines" = 26 ] || { log "fanrush entries --format csv gave $lines rows, not 26 (a header, 25 entries)"; return 1; }
  "$cli" events delete --api "$base" --event "$event" | grep -q '"status":204' ||
    { log "fanrush events delete did not delete $event"; return 1; }
  if "$cli" events get --api "$base" --event "$event" 2>/dev/null; then
    log "fanrush events get found a deleted event"
    return 1
  fi
  rm -f "$def"
}

# `make run` itself, as a user starts it: scripts/run.sh on a port, queue,
# key prefix and schema of its own; the README's walk-through (201, 202, 200,
# the row written through the bridge and the Invoke API), the scheduler and
# an unknown function through the Invoke API; then TERM, as Ctrl-C does.
run_smoke() {
  local id="run_smoke_$$" port=${RUN_SMOKE_PORT:-18080} log="$STATE/run-smoke.log" pid base
  base="http://127.0.0.1:$port"
  API_PORT=$port QUEUE_NAME=$id REDIS_KEY_PREFIX=$id DATABASE_SCHEMA=$id setsid "$ROOT/scripts/run.sh" >"$log" 2>&1 &
  pid=$!
  # run.sh builds first: on a loaded machine that alone can take minutes, so
  # wait while it lives and say what it printed when it does not get ready.
  for _ in $(seq 1 600); do
    grep -q "ready;" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  grep -q "ready;" "$log" || {
    log "make run did not get ready (.local/run-smoke.log):"
    tail -n 40 "$log" >&2
    kill -TERM "$pid" 2>/dev/null
    exit 1
  }
  smoke_status() { # wanted, curl args...
    local wanted=$1 got
    shift
    got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
    [ "$got" = "$wanted" ] || { log "make run: $* answered $got, not $wanted"; kill -TERM "$pid"; exit 1; }
  }
  walk_through "$base" 30 || { log "make run: the walk-through failed"; kill -TERM "$pid"; exit 1; }
  curl -s -X POST "$base/2015-03-31/functions/scheduler/invocations" -d @events/schedule.json | grep -q '"events":\["walk"\]' ||
    { log "make run: the scheduler, through the Invoke API, did not plan the event"; kill -TERM "$pid"; exit 1; }
  smoke_status 404 -X POST "$base/2015-03-31/functions/nope/invocations" -d '{}'
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  psql "$DATABASE_URL" -q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $id CASCADE" || true
}
