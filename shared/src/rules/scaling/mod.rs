//! Scaling rules, pure and unit-tested without I/O.
//!
//! - [`plan`]: how much provisioned concurrency the calendar needs, when,
//!   clamped to what the account can grant: the [`ScalingPlan`] the scheduler
//!   reconciles and `fanrush plan` prints.
//! - [`model`]: a model of what AWS does to a spike (API Gateway's account
//!   throttle, Lambda's request rates, on-demand scaling, current and
//!   legacy) against a given amount of provisioned concurrency.
//! - [`preflight`]: every quota an event needs next to what the account
//!   has, what to raise and by how much.
//! - [`measured`]: the figures of the last recorded `make bench` run that
//!   the preflight and the model use, written by `make tables`.

pub mod measured;
pub mod model;
pub mod plan;
pub mod preflight;

pub use model::{
    simulate, simulate_spike, GateModel, LineModel, Quotas, ScalingModel, Second, Simulation, Spike, Traffic,
    ACCOUNT_RPS_PER_CONCURRENCY,
};
pub use plan::{
    grantable, Bound, Need, PlanAction, ScalingParams, ScalingPlan, RPS_PER_ENVIRONMENT, UNRESERVED_MINIMUM,
};
