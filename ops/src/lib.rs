//! fanrush-ops: the operators' tools, apart from the Lambda library so that
//! no function links them.
//!
//! - [`simulate`]: what AWS does to a spike in front of `entry-api`, second
//!   by second (`fanrush simulate`, `fanrush plan`'s charts, the worked
//!   event in docs/scaling.md).
//! - [`measure`]: what one Redis node admits per second (`fanrush
//!   measure-gate`, `make bench`).

pub mod measure;
pub mod simulate;
