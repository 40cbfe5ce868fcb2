#!/usr/bin/env bash
# The API contract check of `make test`: serves the entry-api and admin-api
# binaries behind `fanrush-local gateway` (a small API Gateway stand-in that
# sends them payload-2.0 events, base64-encoding bodies that are not UTF-8 as
# API Gateway does; cargo lambda watch answers such bodies with its own 500),
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
  log "schemathesis: admin API"
  # positive_data_acceptance: "closesAt after opensAt" spans two fields, which
  # OpenAPI 3.0 cannot say, so schema-valid bodies may rightly get 400.
  st_run "$base" '^/admin' --exclude-checks positive_data_acceptance
  log "the fan page in headless Chromium (DevTools protocol): join a lined event, wait, get in"
  ensure_chromium
  ensure_pip_package websocket-client==1.8.0
  "$VENV/bin/python" "$ROOT/scripts/check-fan-page.py" "$base"
  psql "$DATABASE_URL" -q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $run_id CASCADE" || true
}
