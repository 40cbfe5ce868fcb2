#!/usr/bin/env bash
# `make charts`: draws the README's two pictures of the worked event
# (calendars/million-fans.json: 1,000,000 fans for 100,000 places) from the
# code, with the same flags docs/scaling.md and docs/line.md run:
#   plan.svg      fanrush plan --chart, the account raised to 8,000
#   simulate.svg  fanrush simulate --chart, quotas raised, a line at the
#                 suggested rate, on the measured core (shared/src/rules/scaling/measured.rs)
# into docs/charts/, or the directory given (make test draws them aside and
# compares).
source "$(dirname "$0")/lib.sh"
ensure_rust
cd "$ROOT"
# Every target of the workspace, as make test builds it: the same features
# (a build without the tests resolves dev-dependencies' features apart and
# compiled the functions again), so under make test nothing recompiles.
cargo build --quiet --workspace --all-targets
OUT=${1:-docs/charts}
mkdir -p "$OUT"
target/debug/fanrush plan --calendar calendars/million-fans.json --account-limit 8000 \
  --chart "$OUT/plan.svg" >/dev/null
target/debug/fanrush simulate --peak-rps 63750 --ramp-seconds 2 --decay-seconds 15 --hold-seconds 58 \
  --duration-ms 20 --provisioned 7650 --capacity 100000 \
  --account-limit 9000 --api-rate 80000 --api-burst 40000 --line-rate suggested --chart "$OUT/simulate.svg" >/dev/null
log "wrote $OUT/plan.svg and $OUT/simulate.svg"
