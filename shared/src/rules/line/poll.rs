//! When a waiting fan should come back: the server sets it from the fan's
//! distance to the front, as NetFUNNEL does (1-2 s near the front, longer
//! behind), so the cost of waiting falls as the line grows.
//!
//! - Near the front (turn within [`NEAR`]): at the turn itself, to the
//!   millisecond, with no jitter: turns near the front are already spread
//!   by the rate, and coming back late would let a later fan in first.
//! - Further back: after most of the wait (4/5 of it, so the fan is back
//!   before its turn), jittered by ±10% so fans that joined together do not
//!   poll in step, at most [`MAX_AFTER_OPENING`] apart once the event is
//!   open and [`MAX_BEFORE_OPENING`] while it has not opened (nothing moves
//!   then).
//! - Eligible but refused by the gate's pacing for this instant: in
//!   [`PACED`].
//!
//! `Retry-After` carries the same wait rounded up to whole seconds (its
//! HTTP form); the body's `retryAfterMs` carries it exactly.

use std::time::Duration;

pub const NEAR: Duration = Duration::from_secs(2);
pub const PACED: Duration = Duration::from_millis(200);
pub const MAX_AFTER_OPENING: Duration = Duration::from_secs(30);
pub const MAX_BEFORE_OPENING: Duration = Duration::from_secs(600);

/// Lag added to a near-front return, so the fan arrives just after its turn.
const AT_TURN: Duration = Duration::from_millis(20);

/// How long to wait before the next POST, for a fan whose turn is
/// `eta_seconds` away; `jitter` is uniform in [0, 1); `open` whether the
/// event has opened.
pub fn come_back_in(eta_seconds: f64, jitter: f64, open: bool) -> Duration {
    let eta = Duration::from_secs_f64(eta_seconds.max(0.0));
    if eta.is_zero() {
        return PACED;
    }
    if eta <= NEAR {
        return eta + AT_TURN;
    }
    let cap = if open { MAX_AFTER_OPENING } else { MAX_BEFORE_OPENING };
    let most = eta.mul_f64(0.8).min(cap);
    most.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0)).max(Duration::from_secs(1)).min(eta - Duration::from_millis(500))
}

/// The polls a second an opening's line brings at its peak, for sizing:
/// with `arrivals` fans a second at the peak, `rate` admitted a second and
/// `capacity` places. Near the front each admitted fan comes back two or
/// three times (4/5 of its wait, near the front, at its turn): 2.5 polls
/// per admission. Behind them, the fans the rate cannot keep up with pile
/// up until the places are gone (`capacity / rate`, taken as at most the
/// minute an opening lasts) and poll every [`MAX_AFTER_OPENING`] until
/// they are told. `fanrush simulate` replays the policy fan by fan; the
/// tests hold this estimate to it.
pub fn expected_polls_per_second(arrivals: f64, rate: f64, capacity: f64) -> f64 {
    let rate = rate.max(f64::MIN_POSITIVE);
    let piling = (arrivals - rate).max(0.0) * (capacity / rate).min(60.0);
    2.5 * rate.min(arrivals) + piling / MAX_AFTER_OPENING.as_secs_f64()
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_header(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_the_front_a_fan_comes_back_at_its_turn() {
        assert_eq!(come_back_in(0.7, 0.99, true), Duration::from_millis(720));
        assert_eq!(retry_after_header(come_back_in(0.7, 0.0, true)), 1);
        assert_eq!(come_back_in(0.0, 0.5, true), PACED);
    }

    #[test]
    fn further_back_a_fan_polls_less_often_and_before_its_turn() {
        for eta in [3.0, 10.0, 60.0, 1_000.0] {
            for jitter in [0.0, 0.5, 0.999] {
                let wait = come_back_in(eta, jitter, true);
                assert!(
                    wait >= Duration::from_secs(1) && wait <= MAX_AFTER_OPENING.mul_f64(1.1),
                    "{eta} {jitter}: {wait:?}"
                );
                assert!(wait.as_secs_f64() < eta, "back before the turn: {eta} {wait:?}");
            }
        }
        assert!(come_back_in(10.0, 0.5, true) > come_back_in(3.0, 0.5, true));
        // Jitter spreads fans with the same wait.
        assert_ne!(come_back_in(60.0, 0.0, true), come_back_in(60.0, 0.9, true));
        // Before the opening a fan may wait up to ten minutes.
        assert!(come_back_in(3_600.0, 0.5, false) > MAX_AFTER_OPENING);
        assert!(come_back_in(3_600.0, 0.999, false) <= MAX_BEFORE_OPENING.mul_f64(1.1));
    }

    #[test]
    fn the_sizing_estimate_of_polls_holds_to_the_simulated_line() {
        use crate::rules::scaling::{simulate_spike, GateModel, LineModel, Quotas, ScalingModel, Spike, Traffic};
        // Opening shapes a tenth of the README's sizes: a decaying opening,
        // a flat minute, and a line longer than the places.
        for (peak, ramp, decay, capacity, rate) in
            [(6_375.0, 2.0, 15.0, 10_000u64, 1_120.0), (2_000.0, 0.0, 0.0, 10_000, 500.0), (300.0, 0.0, 0.0, 200, 30.0)]
        {
            let spike = Spike {
                traffic: Traffic {
                    peak_rps: peak,
                    ramp_s: ramp,
                    hold_s: 60.0 - ramp,
                    decay_s: decay,
                    duration_ms: 20.0,
                },
                provisioned: 10_000,
                quotas: Quotas { account_concurrency: 20_000, api_rate: 1e7, api_burst: 1e7 },
                model: ScalingModel::Current,
                gate: GateModel { capacity, ..GateModel::UNLIMITED },
                line: Some(LineModel::at(rate)),
                retries: true,
                seed: 3,
            };
            let sim = simulate_spike(&spike);
            let simulated = sim.seconds.iter().map(|s| s.polls).max().unwrap() as f64;
            let estimate = expected_polls_per_second(peak, rate, capacity as f64);
            let ratio = estimate / simulated;
            assert!(
                (0.85..=2.0).contains(&ratio),
                "{peak} {rate} {capacity}: estimate {estimate}, simulated {simulated}"
            );
        }
    }
}
