//! When a waiting fan should come back: the server sets it from the fan's
//! distance to the front, as NetFUNNEL does (1-2 s near the front, longer
//! behind), so the cost of waiting falls as the line grows.
//!
//! - Near the front (turn within [`NEAR`]): at the turn itself, to the
//!   millisecond, with no jitter: turns near the front are already spread
//!   by the rate, and coming back late would let a later fan in first.
//! - Further back: a second before the turn it was told, jittered down by
//!   up to 10% so fans that joined together do not poll in step. The ETA
//!   is a lower bound (counts only grow, the front only slows), so coming
//!   back by it is never late: such a fan polls once, then comes back at
//!   its turn.
//! - Far back (more than [`MAX_AFTER_OPENING`] away once the event is
//!   open, [`MAX_BEFORE_OPENING`] before it, when nothing moves): checks in
//!   at most that far apart, spread over the second half of it, so a crowd
//!   that piled up in a few seconds does not come back in a few seconds.
//! - Turn not yet come by the environment's front but due now: in
//!   [`PACED`].
//! - Turn come but held back by the gate's pace: when the gate says its
//!   token is due ([`paced_wait`]).
//!
//! `Retry-After` carries the same wait rounded up to whole seconds (its
//! HTTP form); the body's `retryAfterMs` carries it exactly.

use std::time::Duration;

pub const NEAR: Duration = Duration::from_secs(2);
pub const PACED: Duration = Duration::from_millis(200);
/// The soonest a fan the gate's pace held back is asked to come back.
pub const PACED_AT_LEAST: Duration = Duration::from_millis(5);
pub const MAX_AFTER_OPENING: Duration = Duration::from_secs(30);
pub const MAX_BEFORE_OPENING: Duration = Duration::from_secs(600);

/// How long before its turn a fan further back is asked to check again.
const LEAD: Duration = Duration::from_secs(1);
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
    let jitter = jitter.clamp(0.0, 1.0);
    if eta - LEAD > cap {
        // Far back: checks in at most `cap` apart, spread over its second half.
        return cap.mul_f64(0.5 + 0.5 * jitter);
    }
    (eta - LEAD).mul_f64(0.9 + 0.1 * jitter).max(Duration::from_secs(1))
}

/// The polls a second an opening's line brings at its peak, for sizing:
/// with `arrivals` fans a second at the peak, `rate` admitted a second and
/// `capacity` places. Each admitted fan comes back once or twice (a second
/// before its turn when it waited longer than [`NEAR`], then at its turn),
/// and a paced one once more: 2.5 polls per admission. Behind them, the
/// fans the rate cannot keep up with pile up until the places are gone
/// (`capacity / rate`, taken as at most the minute an opening lasts) and
/// check in every 3/4 of [`MAX_AFTER_OPENING`] on average until they are
/// told. `fanrush simulate` replays the policy fan by fan; the tests hold
/// this estimate to it.
pub fn expected_polls_per_second(arrivals: f64, rate: f64, capacity: f64) -> f64 {
    let rate = rate.max(f64::MIN_POSITIVE);
    let piling = (arrivals - rate).max(0.0) * (capacity / rate).min(60.0);
    2.5 * rate.min(arrivals) + piling / (0.75 * MAX_AFTER_OPENING.as_secs_f64())
}

/// The soonest a waiting fan is asked back while its environment's gate
/// fails (its front stands still, so a fan near it would otherwise be told
/// "any moment now" every few tens of milliseconds through the outage),
/// spread over half as long again so the polls do not fall into step.
pub const WHILE_GATE_FAILS: Duration = Duration::from_secs(1);

/// `wait`, held to [`WHILE_GATE_FAILS`] at least (jittered by `jitter`).
pub fn while_gate_fails(wait: Duration, jitter: f64) -> Duration {
    wait.max(WHILE_GATE_FAILS.mul_f64(1.0 + 0.5 * jitter.clamp(0.0, 1.0)))
}

/// How long a fan whose turn came waits when the gate's pace held it back:
/// until the gate says its token is due (`gate_retry`: the gate queues the
/// fans it held back and tells each its own moment, so no jitter), at
/// least [`PACED_AT_LEAST`].
pub fn paced_wait(gate_retry: Duration) -> Duration {
    gate_retry.max(PACED_AT_LEAST).min(MAX_AFTER_OPENING)
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_header(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_waiting_while_the_gate_fails_comes_back_no_sooner_than_a_second_and_not_in_step() {
        assert_eq!(while_gate_fails(Duration::from_millis(20), 0.0), WHILE_GATE_FAILS);
        assert_eq!(while_gate_fails(Duration::from_millis(20), 1.0), Duration::from_millis(1_500));
        assert_eq!(while_gate_fails(Duration::from_secs(9), 0.5), Duration::from_secs(9), "a longer wait stands");
    }

    #[test]
    fn a_paced_fan_comes_back_when_the_gate_says_its_token_is_due() {
        assert_eq!(paced_wait(Duration::from_millis(1)), PACED_AT_LEAST);
        assert_eq!(paced_wait(Duration::from_millis(130)), Duration::from_millis(130));
        assert_eq!(paced_wait(Duration::from_secs(100)), MAX_AFTER_OPENING);
    }

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
        // Opening shapes a tenth of the worked event's sizes (docs/scaling.md): a decaying opening,
        // a flat minute, and a line longer than the places. The estimate
        // takes the peak as lasting, so a decaying opening polls less.
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
                (0.85..=2.5).contains(&ratio),
                "{peak} {rate} {capacity}: estimate {estimate}, simulated {simulated}, ratio {ratio}"
            );
        }
    }
}
