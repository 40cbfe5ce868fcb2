//! The rules: pure, with no I/O, so each is unit-tested without services.
//!
//! - [`domain`]: identifiers, fan events, entries, input validation (what
//!   the APIs accept is exactly what PostgreSQL stores).
//! - [`line`]: the waiting room in front of the gate: signed tickets, the
//!   order of places, the front's pace, when a waiting fan comes back.
//! - [`scaling`]: the provisioned-concurrency plan of a calendar and a model
//!   of Lambda's on-demand scaling.
//!
//! The admission rule itself is one Lua script run inside Redis
//! (`adapters/redis_gate/lua/admit.lua`), so it is atomic; its adapter,
//! [`crate::adapters::redis_gate`], is the only code that calls it.

pub mod domain;
pub mod line;
pub mod scaling;
