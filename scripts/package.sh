#!/usr/bin/env bash
# `make package`: `sam build` of template.yaml as `sam deploy` would ship it
# (samconfig.toml turns on the rust-cargolambda beta builder), arm64 unless
# ARCHITECTURE=x86_64, then checks that every function's artefact is there,
# built for that architecture, and says its size. Installs the SAM CLI and
# cargo-lambda (with zig) into the project's virtual environment.
source "$(dirname "$0")/lib.sh"

ARCHITECTURE=${ARCHITECTURE:-arm64}
ensure_rust
ensure_pip_tool sam aws-sam-cli==1.170.0
ensure_pip_tool cargo-lambda cargo-lambda==1.9.2
export SAM_CLI_TELEMETRY=0
case "$ARCHITECTURE" in
  arm64) target=aarch64-unknown-linux-gnu machine=aarch64 ;;
  x86_64) target=x86_64-unknown-linux-gnu machine=x86-64 ;;
  *) log "ARCHITECTURE must be arm64 or x86_64, not $ARCHITECTURE"; exit 1 ;;
esac
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
command -v file >/dev/null || apt_install file

cd "$ROOT"
started=$(date +%s)
log "sam build (Architecture=$ARCHITECTURE; rust-cargolambda, release profile)"
sam build --parameter-overrides "Architecture=$ARCHITECTURE"
log "sam build took $(( $(date +%s) - started )) s"
for fn in EntryApiFunction AdminApiFunction WriterFunction SchedulerFunction NotifierFunction \
  DatabaseSetupFunction; do
  bootstrap=".aws-sam/build/$fn/bootstrap"
  [ -x "$bootstrap" ] || { log "$bootstrap is missing"; exit 1; }
  file -b "$bootstrap" | grep -q "$machine" ||
    { log "$bootstrap is not built for $ARCHITECTURE: $(file -b "$bootstrap")"; exit 1; }
  printf '%-18s %s, %s bytes\n' "$fn" "$ARCHITECTURE" "$(stat -c %s "$bootstrap")"
done
log "every function's artefact is in .aws-sam/build (sam deploy uploads them)"
