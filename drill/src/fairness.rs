//! The line's fairness, checked after an opening at a line: pure functions
//! of what the fans saw (their [`Visit`]s) and what the gate stored.
//!
//! - the busiest second of admissions (by the gate's own clock), against
//!   1.1 x the rate;
//! - order violations: a fan that arrived after the opening was admitted
//!   while another, who arrived more than a second before it and kept
//!   polling, was still waiting; must be zero;
//! - the pre-queue: pre-queued fans admitted after some fan who arrived after
//!   the opening (must be zero), and the rank correlation between when a
//!   pre-queued fan joined and its place: |rho| < 3.3 / sqrt(n), which a
//!   fair shuffle fails about once in a thousand runs;
//! - the ETA error (the first ETA after the opening against the admission),
//!   requests per fan, and 503s.

use crate::line::{End, Visit};
use std::collections::HashMap;
use std::time::Instant;

/// What the checks found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fairness {
    pub rate: i64,
    /// Most admissions in any window of one second.
    pub busiest_second: usize,
    pub order_violations: usize,
    /// Pre-queued fans admitted after a fan who arrived after the opening.
    pub prequeue_behind: usize,
    pub prequeue_rho: f64,
    pub prequeued: usize,
    pub eta_error_p50: f64,
    pub eta_error_p90: f64,
    pub requests_per_fan_p50: f64,
    pub requests_per_fan_p99: f64,
    pub unavailable: usize,
}

impl Fairness {
    /// The bound a fair shuffle of `n` stays inside but once in a thousand.
    pub fn rho_bound(&self) -> f64 {
        3.3 / (self.prequeued.max(1) as f64).sqrt()
    }

    pub fn clean(&self) -> bool {
        self.busiest_second as f64 <= 1.1 * self.rate as f64
            && self.order_violations == 0
            && self.prequeue_behind == 0
            && self.prequeue_rho.abs() < self.rho_bound()
    }
}

/// Checks an opening at a line at `rate`: the fans' visits, the gate's
/// admission times (ms) and the position each admitted fan holds.
pub fn check(rate: i64, visits: &[Visit], accepted_at_ms: &[i64], positions: &HashMap<String, i64>) -> Fairness {
    let mut at = accepted_at_ms.to_vec();
    at.sort_unstable();
    let busiest_second = (0..at.len()).map(|i| at[i..].partition_point(|t| *t < at[i] + 1000)).max().unwrap_or(0);

    let after: Vec<&Visit> = visits.iter().filter(|v| !v.prequeued).collect();
    let order_violations = order_violations(&after);

    let pre: Vec<(&Visit, i64)> =
        visits.iter().filter(|v| v.prequeued).filter_map(|v| positions.get(&v.fan).map(|p| (v, *p))).collect();
    let first_after = after.iter().filter_map(|v| positions.get(&v.fan)).min().copied().unwrap_or(i64::MAX);
    let prequeue_behind = pre.iter().filter(|(_, p)| *p > first_after).count();
    let first = pre.iter().map(|(v, _)| v.arrived).min();
    let joined: Vec<f64> = pre.iter().map(|(v, _)| first.map_or(0.0, |f| (v.arrived - f).as_secs_f64())).collect();
    let places: Vec<f64> = pre.iter().map(|(_, p)| *p as f64).collect();
    let prequeue_rho = if pre.len() > 2 { spearman(&joined, &places) } else { 0.0 };

    let mut errors: Vec<f64> = visits
        .iter()
        .filter_map(|v| match (v.end, v.first_eta) {
            (End::Admitted { .. }, Some((told_at, eta))) => Some(((v.ended - told_at).as_secs_f64() - eta).abs()),
            _ => None,
        })
        .collect();
    let mut requests: Vec<f64> = visits.iter().map(|v| v.requests as f64).collect();
    Fairness {
        rate,
        busiest_second,
        order_violations,
        prequeue_behind,
        prequeue_rho,
        prequeued: pre.len(),
        eta_error_p50: percentile(&mut errors, 0.5),
        eta_error_p90: percentile(&mut errors, 0.9),
        requests_per_fan_p50: percentile(&mut requests, 0.5),
        requests_per_fan_p99: percentile(&mut requests, 0.99),
        unavailable: visits.iter().map(|v| v.unavailable).sum(),
    }
}

/// Fans admitted while another, who arrived more than a second before them
/// and was still in the line (not admitted, not given up or told), waited.
fn order_violations(visits: &[&Visit]) -> usize {
    let mut by_arrival: Vec<&&Visit> = visits.iter().collect();
    by_arrival.sort_by_key(|v| v.arrived);
    // The latest moment any fan arrived up to index i was still in the line.
    let mut latest_end: Vec<Instant> = Vec::with_capacity(by_arrival.len());
    for v in &by_arrival {
        let end = latest_end.last().map_or(v.ended, |e: &Instant| (*e).max(v.ended));
        latest_end.push(end);
    }
    by_arrival
        .iter()
        .filter(|b| matches!(b.end, End::Admitted { .. }))
        .filter(|b| {
            let cutoff = b.arrived.checked_sub(std::time::Duration::from_secs(1));
            let earlier = cutoff.map_or(0, |c| by_arrival.partition_point(|a| a.arrived < c));
            earlier > 0 && latest_end[earlier - 1] > b.ended
        })
        .count()
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

/// Spearman's rank correlation (average ranks for ties).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let ranks = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for k in &order[i..=j] {
                r[*k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean).powi(2);
        vb += (y - mean).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn visit(fan: &str, prequeued: bool, arrived: Instant, end: End, ended: Instant) -> Visit {
        Visit {
            fan: fan.into(),
            prequeued,
            arrived,
            end,
            ended,
            requests: 3,
            unavailable: 0,
            first_eta: None,
            trail: vec![],
        }
    }

    #[test]
    fn a_later_fan_admitted_while_an_earlier_one_still_waits_is_a_violation() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let admitted = End::Admitted { position: 1 };
        // a arrived at 0, admitted at 10; b arrived at 2, admitted at 5: b went first.
        let v = [visit("a", false, s(0.0), admitted, s(10.0)), visit("b", false, s(2.0), admitted, s(5.0))];
        assert_eq!(order_violations(&v.iter().collect::<Vec<_>>()), 1);
        // Half a second apart is within the line's bucket and slope: not counted.
        let v = [visit("a", false, s(0.0), admitted, s(10.0)), visit("b", false, s(0.5), admitted, s(5.0))];
        assert_eq!(order_violations(&v.iter().collect::<Vec<_>>()), 0);
        // An earlier fan still in the line (told sold out later) counts too.
        let v = [visit("a", false, s(0.0), End::SoldOut, s(10.0)), visit("b", false, s(2.0), admitted, s(5.0))];
        assert_eq!(order_violations(&v.iter().collect::<Vec<_>>()), 1);
        // In order: none.
        let v = [visit("a", false, s(0.0), admitted, s(3.0)), visit("b", false, s(2.0), admitted, s(5.0))];
        assert_eq!(order_violations(&v.iter().collect::<Vec<_>>()), 0);
    }

    #[test]
    fn the_busiest_second_and_the_prequeue_are_measured() {
        let t0 = Instant::now();
        let positions: HashMap<String, i64> =
            [("p1", 2), ("p2", 1), ("late", 3)].map(|(f, p)| (f.to_owned(), p)).into();
        let v = [
            visit("p1", true, t0, End::Admitted { position: 2 }, t0),
            visit("p2", true, t0 + Duration::from_millis(10), End::Admitted { position: 1 }, t0),
            visit("late", false, t0 + Duration::from_secs(2), End::Admitted { position: 3 }, t0),
        ];
        let f = check(10, &v, &[0, 500, 999, 1000, 5000], &positions);
        assert_eq!(f.busiest_second, 3, "[0, 1000) and [500, 1500) hold three each");
        assert_eq!(f.prequeue_behind, 0);
        let behind: HashMap<String, i64> = [("p1", 3), ("p2", 1), ("late", 2)].map(|(f, p)| (f.to_owned(), p)).into();
        assert_eq!(check(10, &v, &[], &behind).prequeue_behind, 1);
    }

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }
}
