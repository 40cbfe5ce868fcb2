# fanrush: the two commands are `make run` and `make test`.
.PHONY: run test bench build lint fmt clean

## Start the whole suite locally and serve the API on 127.0.0.1:9000.
run:
	@scripts/run.sh

## Install what is missing and run every check and test.
test:
	@scripts/test.sh

## Benchmarks (release build, real local services, Node.js peer); not part of test.
bench:
	@scripts/bench.sh

build:
	cargo build --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
