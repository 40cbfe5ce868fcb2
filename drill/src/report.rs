//! The drill's report: one row per scenario, the table `make drill`
//! prints and the JSON it saves.

use crate::fairness::Fairness;
use crate::spike::Observed;
use crate::verify::Tally;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One scenario's line of the table.
#[derive(Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub requests: usize,
    pub attempts: usize,
    pub statuses: std::collections::BTreeMap<String, usize>,
    /// The hammering clients' GETs, by status.
    pub reads: std::collections::BTreeMap<String, usize>,
    pub faults: Vec<String>,
    pub tally: Tally,
    pub gave_up: usize,
    pub dead_lettered: i64,
    pub problems: Vec<String>,
    pub seconds: f64,
    /// 404 `event_not_found` is a right answer (the event was deleted).
    pub deleted_event: bool,
    /// For an opening at a line: its fairness.
    pub fairness: Option<Fairness>,
    /// The scenario's event's places.
    pub capacity: i64,
    /// The scheduler's ticks that failed during the scenario, each with the
    /// function's error: told, not a broken invariant (a tick fails while
    /// its dependencies do, and the next one catches up).
    pub scheduler_ticks_failed: Vec<String>,
    /// Redis commands per HTTP request while the traffic lasted.
    pub commands_per_request: Option<f64>,
    /// The pre-queue draw, verified with `fanrush verify-draw`.
    pub draw: Option<crate::draw::DrawCheck>,
}

impl Row {
    pub fn fill(&mut self, o: &Observed) {
        self.attempts = o.attempts;
        self.statuses = o.statuses.clone();
        self.reads = o.reads.clone();
        self.gave_up = o.gave_up;
    }

    /// Answers that are neither a decision (200/202/409, and 404 for an
    /// event deleted mid-spike), waiting in a line (203), a throttle (429)
    /// nor a retryable refusal (503): any of them is a defect. A hammered
    /// read answers 200, 404 (no entry of its own), 429 or 503.
    fn unexpected(&self) -> usize {
        let posts: usize = self
            .statuses
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "200" | "202" | "203" | "409" | "429" | "503" | "504"))
            .filter(|(s, _)| !(self.deleted_event && s.as_str() == "404"))
            .map(|(_, n)| n)
            .sum();
        let reads: usize = self
            .reads
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "200" | "404" | "429" | "503" | "504"))
            .map(|(_, n)| n)
            .sum();
        posts + reads
    }

    fn clean(&self) -> bool {
        self.tally.clean()
            && self.unexpected() == 0
            && self.problems.is_empty()
            && self.dead_lettered == 0
            && self.fairness.is_none_or(|f| f.clean())
    }
}

pub struct Report {
    pub rows: Vec<Row>,
    pub shape: String,
    pub capacity: i64,
}

impl Report {
    pub fn clean(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(Row::clean)
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let n = |r: &Row, s: &str| r.statuses.get(s).copied().unwrap_or(0);
        let _ = writeln!(t, "| scenario | requests (HTTP attempts) | 202 | 200 | 409 | 404 | 429 | 503 | no answer | other | faults | accepted | rows | lost | duplicates | oversold | leaked | ghost | gave up | DLQ |");
        let _ = writeln!(t, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in &self.rows {
            let x = &r.tally;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                format_args!("{} ({} sent)", r.requests, r.attempts),
                n(r, "202"),
                n(r, "200"),
                n(r, "409"),
                n(r, "404"),
                n(r, "429"),
                n(r, "503"),
                n(r, "504"),
                r.unexpected(),
                r.faults.len(),
                x.accepted,
                x.rows,
                x.lost,
                x.duplicates,
                x.oversold,
                x.leaked,
                x.ghost,
                r.gave_up,
                r.dead_lettered
            );
        }
        let lined: Vec<&Row> = self.rows.iter().filter(|r| r.fairness.is_some()).collect();
        if !lined.is_empty() {
            let _ = writeln!(t);
            let _ = writeln!(t, "| opening at a line | rate | places | admitted rate / set (min 0.95) | back to the rate after an outage (max 2 s) | busiest second (max 1.1 x rate) | order violations | pre-queued behind a later fan | pre-queue rank correlation (bound) | ETA within 10% or 1 s (min 50%) / 25% or 2 s (min 90%) | ETA error p50 / p90 | answers whose numbers disagree | requests per fan p50 / p99 | 429 | 503 | walked away |");
            let _ = writeln!(t, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in lined {
                let f = r.fairness.unwrap_or_default();
                let recovery = f.recovery_s.map_or_else(|| "no outage".to_owned(), |s| format!("{s:.1} s"));
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {:.2} | {} | {} | {} | {} of {} | {:+.3} ({:.3}) | {:.0}% / {:.0}% | {:.1} s / {:.1} s | {} | {:.0} / {:.0} | {} | {} | {} |",
                    r.scenario,
                    f.rate,
                    r.capacity,
                    f.admitted_rate,
                    recovery,
                    f.busiest_second,
                    f.order_violations,
                    f.prequeue_behind,
                    f.prequeued,
                    f.prequeue_rho,
                    f.rho_bound(),
                    f.eta_within_tight * 100.0,
                    f.eta_within_loose * 100.0,
                    f.eta_error_p50,
                    f.eta_error_p90,
                    f.disagreeing,
                    f.requests_per_fan_p50,
                    f.requests_per_fan_p99,
                    f.limited,
                    f.unavailable,
                    f.walked_away,
                );
            }
        }
        let _ = writeln!(t);
        for r in &self.rows {
            for f in &r.faults {
                let _ = writeln!(t, "- {}: {f}", r.scenario);
            }
            if !r.reads.is_empty() {
                let _ = writeln!(t, "- {}: hammered GETs answered {:?}", r.scenario, r.reads);
            }
            if let (Some(c), true) = (r.commands_per_request, r.scenario.contains("hostile")) {
                let _ = writeln!(
                    t,
                    "- {}: {c:.2} Redis commands per HTTP request (INFO commandstats, syncs and ticks included)",
                    r.scenario
                );
            }
            if let Some(d) = r.draw {
                let _ = writeln!(
                    t,
                    "- {}: fanrush verify-draw: the draw of {} pre-queued fans checks against its commitment, a fan's \
                     receipt against it, and a copy with two fans swapped fails",
                    r.scenario, d.prequeued
                );
            }
            for p in &r.problems {
                let _ = writeln!(t, "- {}: PROBLEM: {p}", r.scenario);
            }
            for why in &r.scheduler_ticks_failed {
                let _ = writeln!(t, "- {}: a scheduler tick failed: {why}", r.scenario);
            }
        }
        let verdict = if self.clean() { "every invariant held" } else { "AN INVARIANT WAS BROKEN" };
        let _ = writeln!(t, "\ncapacity {} per scenario; {verdict}", self.capacity);
        t
    }

    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut row = json!({
                    "scenario": r.scenario, "requests": r.requests, "attempts": r.attempts, "statuses": r.statuses, "faults": r.faults,
                    "accepted": r.tally.accepted, "rows": r.tally.rows, "lost": r.tally.lost,
                    "duplicates": r.tally.duplicates, "oversold": r.tally.oversold, "leaked": r.tally.leaked,
                    "ghost": r.tally.ghost, "gaveUp": r.gave_up, "deadLettered": r.dead_lettered,
                    "problems": r.problems, "seconds": r.seconds, "clean": r.clean(),
                    "schedulerTicksFailed": r.scheduler_ticks_failed,
                    "line": r.fairness.map(|f| json!({
                        "rate": f.rate, "admittedRate": f.admitted_rate, "recoverySeconds": f.recovery_s,
                        "busiestSecond": f.busiest_second, "orderViolations": f.order_violations,
                        "prequeueBehind": f.prequeue_behind, "prequeued": f.prequeued, "prequeueRho": f.prequeue_rho,
                        "prequeueRhoBound": f.rho_bound(), "etaWithinTight": f.eta_within_tight,
                        "etaWithinLoose": f.eta_within_loose, "etaErrorP50": f.eta_error_p50,
                        "etaErrorP90": f.eta_error_p90, "disagreeing": f.disagreeing,
                        "requestsPerFanP50": f.requests_per_fan_p50, "requestsPerFanP99": f.requests_per_fan_p99,
                        "limited": f.limited, "unavailable": f.unavailable, "walkedAway": f.walked_away,
                        "clean": f.clean(),
                    })),
                });
                // Beside the rest: one json! of it all outgrows the macro's recursion.
                row["reads"] = json!(r.reads);
                row["redisCommandsPerRequest"] = json!(r.commands_per_request);
                row["drawVerified"] = json!(r.draw.map(|d| json!({ "prequeued": d.prequeued, "fanIndex": d.fan_index })));
                row
            })
            .collect();
        // The rendered table rides along: `make tables` copies it into docs/drills.md.
        let doc = json!({
            "shape": self.shape, "capacity": self.capacity, "clean": self.clean(), "scenarios": rows,
            "table": self.table(), "machine": fanrush_local::runtime::machine(), "measuredAt": chrono::Utc::now().to_rfc3339(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}
