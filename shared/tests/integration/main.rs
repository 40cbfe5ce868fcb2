//! fanrush's integration tests, in one binary (so `tests/common` compiles
//! once), a module per behaviour. Every test talks to the real local Redis,
//! PostgreSQL and SQS endpoint (fauxqs) through the functions' own code;
//! the Lambda control plane, which has no local server, is mocked at the
//! SDK boundary.
//!
//! | module | behaviour |
//! |---|---|
//! | [`gate`] | admitting fans: the burst invariants, what a fan was told is kept through races and failovers, failing dependencies, the line |
//! | [`queue_and_writer`] | the SQS buffer drained into PostgreSQL: idempotent batches, poison, outages |
//! | [`scheduler`] | provisioned concurrency from the calendar, Slack notices |
//! | [`api_input`] | bad input of every kind, identity, the admin calendar |
//! | [`entries_export`] | operators take an event's entries out, page by page |
//! | [`tls_and_secrets`] | Redis and PostgreSQL over TLS, secrets from the extension |
//! | [`database_roles`] | each function's own database role, set up by `db-setup` |
//! | [`sample_events`] | every sample under `events/` driven through its handler |
//!
//! Two tests keep binaries of their own, each for a process-wide reason:
//! `metrics.rs` (the EMF recorder is installed once per process) and
//! `secrets_in_logs.rs` (it captures every log line, which other tests
//! running beside it would write into).

#[path = "../common/mod.rs"]
mod common;

mod api_input;
mod database_roles;
mod entries_export;
mod gate;
mod queue_and_writer;
mod sample_events;
mod scheduler;
mod tls_and_secrets;
