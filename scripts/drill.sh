#!/usr/bin/env bash
# `make drill`: the spike under faults. Builds the functions, makes sure
# redis-server, the PostgreSQL server binaries and the SQS endpoint are
# there, then runs `fanrush-drill`, which starts its own private Redis and
# PostgreSQL (never the machine's), puts a fault proxy in front of each
# service, and prints the table. Exit 0 only when every invariant held.
# Arguments go to fanrush-drill (e.g. `make drill DRILL_ARGS="--scenarios redis-flush"`).
source "$(dirname "$0")/lib.sh"
trap stop_started EXIT

ensure_rust
command -v redis-server >/dev/null || apt_install redis-server
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
ensure_sqs

cd "$ROOT"
# The spike is CPU-bound on a small machine: optimized builds (the `drill`
# profile: release without LTO, so it builds in minutes).
log "building the functions and the drill (profile drill)"
cargo build --quiet --profile drill -p entry-api -p admin-api -p writer -p scheduler -p fanrush-cli -p fanrush-drill
target/drill/fanrush-drill --bin-dir target/drill "$@"
