//! The figures of the last recorded `make bench` run that the preflight,
//! `fanrush simulate` and `fanrush plan` use. Written by `make tables` from
//! `target/bench/results.json`; do not edit by hand: run `make bench`, then
//! `make tables`.

/// Where and when these figures were measured.
pub const MEASURED_ON: &str = "not yet measured with this code";

/// New fans one Redis core admits per second through a busy line.
pub const MEASURED_GATE_ADMISSIONS_PER_SECOND: f64 = 12_169.0;

/// The gate's cheaper answers per second on one core.
pub const MEASURED_GATE_ANSWERS_PER_SECOND: f64 = 55_096.0;

/// `line.lua` syncs per second on one core that carry no place.
pub const MEASURED_LINE_SYNCS_PER_SECOND: f64 = 9_612.0;

/// Places one core counts per second inside `line.lua` syncs.
pub const MEASURED_LINE_PLACES_PER_SECOND: f64 = 200_000.0;

/// Rows per second one writer invocation inserts, SQS batches of 100.
pub const MEASURED_WRITER_ROWS_PER_SECOND: f64 = 41_639.0;
