//! What fanrush does, one module per job, each written against the rules
//! and the adapters and built from [`crate::config`] by a function's main.
//!
//! - [`api`]: the fan API (`entry-api`) and the admin API (`admin-api`):
//!   HTTP in and out.
//! - [`entrance`]: decides a fan's POST, with or without a line: the one
//!   owner of an entry attempt.
//! - [`clock`]: the time the use cases decide by, injected.
//! - [`alarms`]: CloudWatch alarms from SNS to Slack (`notifier`).
//! - [`writer`]: drains SQS batches into PostgreSQL (`writer`).
//! - [`recovery`]: restores the gate from PostgreSQL and the DLQ, sweeps
//!   reservations whose send outcome was unknown.
//! - [`provisioning`]: reconciles `entry-api:live`'s provisioned concurrency
//!   with the calendar's plan and tells Slack.
//! - [`database_setup`]: the schema and the functions' database roles
//!   (`db-setup`, once per deploy).
//! - [`draws`]: reveals pre-queue draws after their openings, and reads
//!   them back for `GET /draws/{eventId}`.
//! - [`scheduler_job`]: the scheduler's minute job (`scheduler`): recovery,
//!   the calendar, provisioning, dead letters named, draws revealed.

pub mod alarms;
pub mod api;
pub mod clock;
pub mod database_setup;
pub mod draws;
pub mod entrance;
pub mod provisioning;
pub mod recovery;
pub mod scheduler_job;
pub mod writer;
