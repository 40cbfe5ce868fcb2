#!/usr/bin/env bash
# `make bench`: builds release binaries (and the Lambda zips with cargo
# lambda), starts or reuses the local services, installs the Node.js peer,
# runs every benchmark and writes target/bench/results.json.
# `scripts/bench.sh --quick` runs fewer iterations (a smoke, not figures).
source "$(dirname "$0")/lib.sh"
trap stop_started EXIT

ensure_rust
ensure_pip_tool cargo-lambda cargo-lambda==1.9.2
ensure_services
ensure_node
# The restore benchmark reads its child's peak RSS with GNU time; psql fills its schema.
[ -x /usr/bin/time ] || apt_install time
command -v psql >/dev/null || apt_install postgresql-client
if [ ! -d "$ROOT/bench/peer/node_modules/ioredis" ]; then
  log "npm ci (bench peer)"
  (cd "$ROOT/bench/peer" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$ROOT"
log "cargo build --release"
cargo build --release --workspace --quiet
log "cargo lambda build --release (zipped bootstraps, x86_64)"
cargo lambda build --release --output-format zip --quiet \
  --bin entry-api --bin admin-api --bin writer --bin scheduler --bin notifier
NODE=$(command -v node) target/release/fanrush-bench "$@"
