#!/usr/bin/env bash
# `make bench`: builds release binaries (and the Lambda zips with cargo
# lambda, x86_64 and arm64), starts or reuses the local services, installs the Node.js peer,
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
# Only what the bench runs from target/release (the functions, fanrush-local
# and the bench with its hello-world): each binary is its own fat-LTO link
# (minutes on 2 cores), and the drill and the CLI are never run here.
log "cargo build --release (the functions, fanrush-local, the bench)"
cargo build --release --quiet -p entry-api -p admin-api -p writer -p scheduler -p notifier \
  -p fanrush-local -p fanrush-bench
log "cargo lambda build --release (zipped bootstraps, x86_64)"
cargo lambda build --release --output-format zip --quiet \
  --bin entry-api --bin admin-api --bin writer --bin scheduler --bin notifier
# arm64 is the template's default architecture: cross-built here (zig, by
# cargo lambda) and its entry-api run under qemu-user against the same
# services (qemu-aarch64 and the arm64 C library from Debian).
log "cargo lambda build --release --arm64 (the template's default architecture)"
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
cargo lambda build --release --arm64 --output-format zip --lambda-dir target/lambda-arm64 --quiet \
  --bin entry-api --bin admin-api --bin writer --bin scheduler --bin notifier
command -v qemu-aarch64 >/dev/null || apt_install qemu-user
[ -d /usr/aarch64-linux-gnu/lib ] || apt_install libc6-arm64-cross
NODE=$(command -v node) target/release/fanrush-bench "$@"
