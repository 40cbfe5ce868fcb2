#!/usr/bin/env bash
# `make test`: installs what is missing, starts or reuses the local services,
# then checks formatting, lints, runs every test against the real Redis,
# PostgreSQL and SQS endpoint, and lints the SAM template.
source "$(dirname "$0")/lib.sh"
trap stop_started EXIT

ensure_rust
ensure_services
ensure_pip_tool cfn-lint cfn-lint
ensure_pip_tool sam aws-sam-cli
export SAM_CLI_TELEMETRY=0

cd "$ROOT"
log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --workspace --quiet 2>&1 | tee "$STATE/test.log"
log "cfn-lint template.yaml"
cfn-lint template.yaml
log "IAM: no wildcard actions, no '*' resources where an ARN exists"
python3 scripts/check-iam.py template.yaml
log "sam validate --lint"
sam validate --lint --template template.yaml --region "$AWS_REGION"
