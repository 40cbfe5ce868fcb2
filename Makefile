# fanrush: the two commands are `make run` and `make test`.
.PHONY: run test check bench drill charts tables package sam-local sam-local-quick sam-api build lint fmt clean

## Start the whole suite locally and serve the API on 127.0.0.1:8080.
## make run CLUSTER=3: the gate on a private three-shard Redis cluster instead of one node.
run:
	@CLUSTER="$(CLUSTER)" scripts/run.sh

## Install what is missing and run every check and test.
test:
	@scripts/test.sh

## The checks that need no service: fmt, clippy, the links, no hand-typed figure in docs/, the reference pages against the code, the unit tests and the CLI's
## tests (a minute or two once built). make test runs these and everything else.
check:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	python3 scripts/check-links.py
	python3 scripts/check-figures.py
	python3 scripts/check-references.py
	cargo test --workspace --quiet --lib --bins --test cli --test charts --test api_bodies

## Benchmarks (release build, real local services, Node.js peer); not part of test.
bench:
	@scripts/bench.sh

## The spike under faults (private Redis and PostgreSQL, fault proxies); not part of test.
## Options: make drill DRILL_ARGS="--scenarios redis-flush,all-together --requests 40000"
drill:
	@scripts/drill.sh $(DRILL_ARGS)

## The README's charts of the worked event (docs/charts/*.svg), drawn by fanrush plan and simulate.
charts:
	@scripts/charts.sh

## Every result figure in docs/, the measured constants (shared/src/rules/scaling/measured.rs) and the
## charts, rewritten from the recorded runs (target/bench/results.json, target/drill/results.json),
## and the worked event's preflight in docs/scaling.md from the CLI.
tables:
	@python3 scripts/tables.py

## sam build of template.yaml for arm64 (ARCHITECTURE=x86_64 for the other): every function's
## artefact in .aws-sam/build, ready for sam deploy (docs/deploy.md).
package:
	@scripts/package.sh

## Every function but db-setup under sam local invoke with every sample event in events/, against the local stack, in
## Docker (Debian's docker.io and a dockerd of the project's own; a Debian stand-in for the provided.al2023
## image): sam build for x86_64 first. sam-local-quick: admin-api and entry-api on the debug binaries.
sam-local:
	@scripts/sam-local.sh

sam-local-quick:
	@scripts/sam-local.sh --quick

## The fan and admin APIs on 127.0.0.1:3000 through sam local start-api (dev mode, as make run), with the
## writer and scheduler behind sam local start-lambda and the bridge; Ctrl-C stops what it started.
sam-api:
	@scripts/sam-local.sh --serve

## Debug build of every crate (what make run and make test use).
build:
	cargo build --workspace

## fmt and clippy with warnings as errors, as make test runs them.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## Format the workspace.
fmt:
	cargo fmt --all

## Remove target/ (a rebuild takes minutes on 2 cores).
clean:
	cargo clean
