//! Scaling rules, pure and unit-tested without I/O.
//!
//! - [`plan`]: how much provisioned concurrency the calendar needs, when,
//!   clamped to what the account can grant: the [`ScalingPlan`] the scheduler
//!   reconciles and `fanrush plan` prints.
//! - [`quotas`]: the account's quotas a spike meets (API Gateway's account
//!   throttle, Lambda's concurrency and request rate), with AWS's defaults.
//!   The simulator that plays a spike into them is fanrush-ops'.
//! - [`preflight`]: every quota an event needs next to what the account
//!   has, what to raise and by how much.
//! - [`placement`]: which shard of a Redis cluster an event's gate lives
//!   on, chosen by its hash tag when it is defined.
//! - [`measured`]: the figures of the last recorded `make bench` run that
//!   the preflight and the simulator use, written by `make tables`.

pub mod measured;
pub mod placement;
pub mod plan;
pub mod preflight;
pub mod quotas;

pub use plan::{
    grantable, Bound, Need, PlanAction, ScalingParams, ScalingPlan, RPS_PER_ENVIRONMENT, UNRESERVED_MINIMUM,
};
pub use quotas::{Quotas, ACCOUNT_RPS_PER_CONCURRENCY};
