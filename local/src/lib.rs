//! The local stand-ins for what AWS runs around fanrush's functions, in one
//! place: `make run`, the tests, the drill and the bench all use them. Never
//! deployed; nothing here is in the production library.
//!
//! | module | stands in for |
//! |---|---|
//! | [`gateway`] | API Gateway's HTTP API (payload 2.0) in front of `entry-api` and `admin-api` |
//! | [`GatewayEvent`] | the event API Gateway sends (payload 2.0), built once for the gateway, drill, bench and tests |
//! | [`runtime`], [`pool`] | the Lambda Runtime API, and execution environments (one process each) |
//! | [`esm`], [`bridge`] | the SQS event-source mapping in front of `writer`, the minute schedule |
//! | [`local_aws`], [`setup`] | the template's queue and DLQ; SDK clients pointed at the loopback endpoint |
//! | [`services`], [`cluster`] | private Redis and PostgreSQL servers (TLS optional); a private Redis cluster (cluster mode enabled) |
//! | [`FaultProxy`], [`HttpCapture`] | the network's failures; a Slack webhook |
//!
//! The binary `fanrush-local` runs `setup`, `bridge` and `gateway`; the
//! gateway and [`HttpCapture`] speak HTTP through hyper (`http_server`).

pub mod bridge;
mod capture;
pub mod cluster;
pub mod esm;
mod fault_proxy;
pub mod gateway;
mod gateway_event;
mod http_server;
pub mod local_aws;
pub mod pool;
pub mod runtime;
pub mod services;
pub mod setup;

pub use capture::{Captured, HttpCapture};
pub use fault_proxy::{Fault, FaultProxy};
pub use gateway_event::GatewayEvent;
