//! Admitting fans through the gate.

/// Admission outcomes and the burst invariants, end to end.
mod admissions;
/// The gate on a real three-shard Redis cluster.
mod cluster;
/// The line's door and pace in the gate's scripts.
mod door;
/// The gate under failing dependencies: the lazy connection, outages,
/// killed connections, a Redis restart, unknown SQS outcomes, the sweep.
mod failing_dependencies;
/// A client that hammers: copies, memory and bounded reads.
mod hammering;
/// The line's ticket key rotates mid-wait: no fan refused, no place lost.
mod key_rotation;
/// The line in front of the gate, as fans meet it.
mod line;
/// Nothing a fan was told is contradicted: races, a promoted replica that
/// missed writes, eviction, dead letters through a restore.
mod told_is_kept;
