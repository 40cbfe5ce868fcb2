#!/usr/bin/env bash
# `make test`: installs what is missing, starts or reuses the local services,
# then checks formatting, lints, runs every test against the real Redis,
# PostgreSQL and SQS endpoint, and lints the SAM template.
source "$(dirname "$0")/lib.sh"
trap stop_started EXIT

ensure_rust
ensure_services
ensure_pip_tool cfn-lint cfn-lint

cd "$ROOT"
log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --workspace --quiet 2>&1 | tee "$STATE/test.log"
log "cfn-lint template.yaml"
cfn-lint template.yaml
if command -v sam >/dev/null; then
  log "sam validate --lint"
  sam validate --lint --template template.yaml --region "$AWS_REGION"
else
  log "sam CLI not installed; cfn-lint covered the template (pip install aws-sam-cli for sam validate)"
fi
