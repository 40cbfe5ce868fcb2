//! fanrush: the rules of a first-come-first-served fan event, one adapter
//! per real system they touch, and the jobs the Lambda functions run.
//!
//! The layers, each depending only on those above it:
//!
//! 1. [`rules`]: pure, no I/O. [`rules::domain`] (events, entries,
//!    validation) and [`rules::scaling`] (the provisioned-concurrency plan:
//!    `ScalingPlan::environments`; Lambda's scaling model).
//! 2. [`adapters`]: one per real system. The admission rule is
//!    `adapters/redis_gate/lua/admit.lua`, run atomically by
//!    [`adapters::redis_gate::EntryGate::admit`]; then [`adapters::sqs_queue`],
//!    [`adapters::postgres_store`], [`adapters::lambda_control`],
//!    [`adapters::slack`], [`adapters::secrets`], [`adapters::https`].
//! 3. [`usecases`]: the fan and admin APIs, the writer, recovery,
//!    provisioning and the scheduler's job.
//! 4. [`config`]: each function's settings from its environment, and the
//!    clients and use case built from them (`from_config`), lazily: nothing
//!    connects in init.
//!
//! [`telemetry`] (logs and metrics) is used by every layer. The functions
//! under `functions/` are thin mains: telemetry, configuration, run.

pub mod adapters;
pub mod config;
pub mod rules;
pub mod telemetry;
pub mod usecases;
