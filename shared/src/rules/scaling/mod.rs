//! Scaling rules, pure and unit-tested without I/O.
//!
//! - [`plan`]: how much provisioned concurrency the calendar needs, when,
//!   clamped to what the account can grant: the [`ScalingPlan`] the scheduler
//!   reconciles and `fanrush plan` prints.
//! - [`model`]: a model of Lambda's on-demand scaling (current and legacy)
//!   that replays a spike against a given amount of provisioned concurrency.

pub mod model;
pub mod plan;

pub use model::{simulate, ScalingModel, Simulation, Traffic};
pub use plan::{
    grantable, Bound, Need, PlanAction, ScalingParams, ScalingPlan, RPS_PER_ENVIRONMENT, UNRESERVED_MINIMUM,
};
