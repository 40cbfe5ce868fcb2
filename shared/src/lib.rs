//! fanrush shared crate: the domain rules of a first-come-first-served fan
//! event and one adapter per real system they touch.
//!
//! - [`domain`]: pure rules and types (`FanEvent`, `Entry`, `Position`, input
//!   validation). No I/O.
//! - [`gate`]: the Redis admission gate (atomic scripts, lazy connection).
//! - [`queue`]: the SQS entry queue that buffers every accepted entry.
//! - [`store`]: PostgreSQL, the durable home of the calendar and the entries.
//! - [`api`]: the fan and admin HTTP APIs, written once for every transport.
//! - [`writer`]: drains SQS batches into PostgreSQL.
//! - [`recovery`]: restores the gate from PostgreSQL and sweeps stale reservations.
//! - [`scaling`]: pure scaling rules (the calendar's plan, Lambda's scaling model).
//! - [`control`]: the Lambda control plane (provisioned concurrency).
//! - [`scheduler`] and [`tick`]: the minute reconcile loop.
//! - [`notify`]: Slack; [`web`]: the small HTTPS client behind it.
//! - [`secrets`]: Redis, database and Slack secrets, read at first use.
//! - [`config`]: one `from_env` per function.
//!
//! The functions under `functions/` are thin mains that wire these together.

pub mod api;
pub mod config;
pub mod control;
pub mod domain;
pub mod gate;
pub mod notify;
pub mod queue;
pub mod recovery;
pub mod scaling;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tick;
pub mod web;
pub mod writer;
