#!/usr/bin/env bash
# `make test`: installs what is missing, starts or reuses the local services,
# then checks formatting, lints (Clippy inside the build), runs every test
# against the real Redis, PostgreSQL and SQS endpoint, checks the running
# functions against openapi.yaml with schemathesis, and checks the SAM template (cfn-lint,
# the policy rules in rules/ with cfn-guard, IAM after the SAM transform,
# sam validate), then a smoke of sam local invoke (scripts/sam-local.sh --quick).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/contract.sh"
trap stop_started EXIT

ensure_rust
ensure_services
# Pinned: the versions make test was last run with.
ensure_pip_tool sam aws-sam-cli==1.170.0
ensure_pip_tool cfn-lint cfn-lint==1.58.0
ensure_cfn_guard
export SAM_CLI_TELEMETRY=0

cd "$ROOT"
log "links in the README and docs/ (offline)"
"$VENV/bin/python" scripts/check-links.py
log "no hand-typed result figure in docs/ (each sits in a block make tables writes)"
"$VENV/bin/python" scripts/check-figures.py --self-test
"$VENV/bin/python" scripts/check-figures.py
log "cargo fmt --check"
cargo fmt --all --check
# Clippy rides on the build: every workspace crate is compiled by
# clippy-driver (scripts/rustc-clippy), so one build lints with warnings as
# errors and makes the binaries, instead of a check build of every
# dependency for `cargo clippy` and then the real one. The workspace has no
# benches, so the test build covers what `clippy --all-targets` would.
export RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/rustc-clippy"
log "cargo build and clippy (clippy-driver, -D warnings)"
cargo build --workspace --all-targets --quiet
log "docs/api.md, openapi.yaml, docs/configuration.md and docs/deploy.md against the code, the template and the CLI"
"$VENV/bin/python" scripts/check-references.py --fanrush target/debug/fanrush
log "docs/scaling.md's preflight of the worked event is what the CLI prints (make tables)"
"$VENV/bin/python" scripts/tables.py --check
log "cargo test"
cargo test --workspace --quiet 2>&1 | tee "$STATE/test.log"
log "API contract: schemathesis with openapi.yaml against the running functions"
run_contract
log "drill smoke: a small spike with every fault at once (make drill runs the full set)"
target/debug/fanrush-drill --bin-dir target/debug --requests 800 --fans 600 --capacity 200 --duration-s 3 \
  --scenarios all-together --out "$STATE/drill-smoke.json"
log "the README's charts are what make charts draws from the code"
charts=$(mktemp -d)
scripts/charts.sh "$charts"
cmp "$charts/plan.svg" docs/charts/plan.svg && cmp "$charts/simulate.svg" docs/charts/simulate.svg ||
  { log "docs/charts/ differs from what the code draws: run make charts"; exit 1; }
rm -rf "$charts"
log "the fan page written for a deployed API names that API alone, in its meta tag and its policy"
page=$(mktemp -d)
scripts/fan-page.sh https://abc123.execute-api.eu-west-1.amazonaws.com "$page" >/dev/null
grep -q '<meta name="fanrush-api" content="https://abc123.execute-api.eu-west-1.amazonaws.com">' "$page/index.html" &&
  grep -q "connect-src https://abc123.execute-api.eu-west-1.amazonaws.com; base-uri" "$page/index.html" ||
  { log "scripts/fan-page.sh did not pin the page to its API"; exit 1; }
if scripts/fan-page.sh 'https://x" onload="alert(1)' "$page" 2>/dev/null; then
  log "scripts/fan-page.sh took an API URL that breaks out of the tag"
  exit 1
fi
rm -rf "$page"
log "cfn-lint template.yaml"
cfn-lint template.yaml
log "IAM, on the SAM-transformed template: no wildcard actions, no '*' resources where an ARN exists"
"$VENV/bin/python" scripts/check-iam.py template.yaml
log "the dashboard draws only metrics the code emits or AWS documents"
"$VENV/bin/python" scripts/check-dashboard.py
log "policy rules (cfn-guard): each rule's own failing cases, then template.yaml"
cfn-guard test --rules-file rules/template.guard --test-data rules/template.tests.yaml
cfn-guard validate --rules rules/template.guard --data template.yaml --show-summary fail
log "sam validate --lint"
sam validate --lint --template template.yaml --region "$AWS_REGION"
log "make run smoke: scripts/run.sh on a port, queue, key prefix and schema of its own; the walk-through and the Invoke API"
run_smoke
log "sam local invoke smoke: admin-api and entry-api in Docker, on the debug binaries (make sam-local runs every function)"
"$ROOT/scripts/sam-local.sh" --quick
