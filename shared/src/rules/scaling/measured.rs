//! The figures of the last recorded `make bench` run that the preflight,
//! `fanrush simulate` and `fanrush plan` use. Written by `make tables` from
//! `target/bench/results.json` (Intel(R) Xeon(R) Processor, 2 cores, 2026-12-08); do not edit by hand:
//! run `make bench`, then `make tables`.

/// Where and when these figures were measured.
pub const MEASURED_ON: &str = "Intel(R) Xeon(R) Processor, 2 cores, 2026-12-08";

/// New fans one Redis core admits per second through a busy line: the
/// calls an admitted fan costs (it joins the door, claims its grant at a later
/// call, its entry is confirmed), each measured apart and added up: `fanrush
/// measure-gate`'s "admitted fans" (the same code). The ceiling the preflight
/// and `fanrush simulate` use, and the one a line's `admissionsPerSecond` is
/// set from. A loopback figure of one machine's core: ElastiCache's network
/// adds latency per call, not work, but its cores differ, so measure the node.
/// `make bench`'s "line: admitted fans/s on one Redis core (admit + confirm)".
pub const MEASURED_GATE_ADMISSIONS_PER_SECOND: f64 = 11_690.0;

/// The gate's cheaper answers per second on one core (`admit.lua` for a
/// sold-out event).
/// `make bench`'s "line: gate answers/s to a sold-out event".
pub const MEASURED_GATE_ANSWERS_PER_SECOND: f64 = 68_231.0;

/// `line.lua` syncs per second on one core that carry no place, each
/// reading ten seconds of counts back.
/// `make bench`'s "line: line.lua syncs/s, no places, on one Redis core".
pub const MEASURED_LINE_SYNCS_PER_SECOND: f64 = 29_761.0;

/// Places one core counts per second inside `line.lua` syncs (each fan's
/// first join, counted once): syncs of 50 places, less an empty sync's cost.
/// `make bench`'s "line: places counted/s in line.lua syncs, on one Redis core".
pub const MEASURED_LINE_PLACES_PER_SECOND: f64 = 398_734.0;

/// Bytes the gate holds per admitted fan of an event (its record, a
/// 36-character id such as a Cognito `sub`, no note): `MEMORY USAGE` of the
/// event's keys over 20,000 confirmed fans. The preflight's memory check.
/// `make bench`'s "gate: bytes per admitted fan (36-character id, no note)".
pub const MEASURED_GATE_BYTES_PER_FAN: f64 = 117.0;

/// Bytes a note of the most characters an entry may carry (280) adds to
/// its fan's: the preflight counts a full note for every fan unless told
/// otherwise (`--note-chars`).
/// `make bench`'s "gate: bytes a 280-character note adds to its fan".
pub const MEASURED_GATE_BYTES_PER_NOTE: f64 = 412.0;

/// Rows per second one writer invocation inserts, SQS batches of 100,
/// PostgreSQL on loopback. The preflight drains at one writer's rate: a lower
/// bound, as `MaximumConcurrency` writers add more only while the database
/// keeps up. Over RDS Proxy each batch adds network round trips: measure.
/// `make bench`'s "writer rows/s, SQS batches of 100".
pub const MEASURED_WRITER_ROWS_PER_SECOND: f64 = 112_518.0;
