//! When a waiting fan should come back: the server sets it from where the
//! fan stands, as NetFUNNEL does (often near the front, rarely far back),
//! so the cost of waiting falls as the line grows.
//!
//! - Its turn near ([`NEAR`] or less away): at the turn itself, to the
//!   millisecond, with no jitter: turns are already spread by the pace.
//! - Further back: a second before its turn, jittered down by up to 10% so
//!   fans that joined together do not poll in step. Such a fan polls once,
//!   then comes back at its turn.
//! - Far back (more than [`MAX_AFTER_OPENING`] away once the event is
//!   open, [`MAX_BEFORE_OPENING`] before it): checks in at most that far
//!   apart, spread over the second half of it, so a crowd that piled up in a
//!   few seconds does not come back in a few seconds.
//! - Beyond the reach of the places left ([`super::progress::beyond_reach`]):
//!   every [`BEYOND_REACH`], spread over its second half: a fan who will
//!   likely not get in costs few polls, and still hears in time if places
//!   come free.
//! - At the gate's door: when the gate says its grant is due, to the
//!   millisecond ([`at_the_door`]); while no place is free, every
//!   [`NO_PLACE_FREE`] or so.
//! - While the environment's gate fails: no sooner than
//!   [`WHILE_GATE_FAILS`].
//!
//! `Retry-After` carries the same wait rounded up to whole seconds (its
//! HTTP form); the body's `retryAfterMs` carries it exactly.

use std::time::Duration;

pub const NEAR: Duration = Duration::from_secs(2);
pub const MAX_AFTER_OPENING: Duration = Duration::from_secs(30);
pub const MAX_BEFORE_OPENING: Duration = Duration::from_secs(600);
/// Half of [`crate::rules::line::TURN_WINDOW`]: a fan beyond reach whose
/// turn comes after all still comes back within it.
pub const BEYOND_REACH: Duration = Duration::from_secs(60);
/// A fan at the door while every place is taken, one of which may come back
/// (a grant whose fan walked away lapses within five seconds).
pub const NO_PLACE_FREE: Duration = Duration::from_secs(3);

/// How long before its turn a fan further back is asked to check again.
const LEAD: Duration = Duration::from_secs(1);
/// Lag added to a return at the turn or at a grant, so the fan arrives just
/// after it.
const AT_TURN: Duration = Duration::from_millis(20);

/// How long to wait before the next POST, for a fan whose turn is
/// `turn_in_s` away; `jitter` is uniform in [0, 1); `open` whether the
/// event has opened.
pub fn come_back_in(turn_in_s: f64, jitter: f64, open: bool) -> Duration {
    let turn = Duration::from_secs_f64(turn_in_s.max(0.0));
    if turn <= NEAR {
        return turn + AT_TURN;
    }
    let cap = if open { MAX_AFTER_OPENING } else { MAX_BEFORE_OPENING };
    let jitter = jitter.clamp(0.0, 1.0);
    if turn - LEAD > cap {
        // Far back: checks in at most `cap` apart, spread over its second half.
        return cap.mul_f64(0.5 + 0.5 * jitter);
    }
    (turn - LEAD).mul_f64(0.9 + 0.1 * jitter).max(Duration::from_secs(1))
}

/// The wait of a fan beyond reach: the shorter of its turn and
/// [`BEYOND_REACH`], spread over the second half.
pub fn beyond_reach(turn_in_s: f64, jitter: f64) -> Duration {
    let turn = Duration::from_secs_f64(turn_in_s.max(0.0));
    BEYOND_REACH.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)).min(turn.max(NEAR))
}

/// The wait of a fan at the gate's door: until its grant is due (`due`,
/// the gate's own figure: no jitter, the pace spreads the grants); while no
/// place is free, until one may come back (`chance`), at most about
/// [`NO_PLACE_FREE`].
pub fn at_the_door(due: Option<Duration>, chance: Option<Duration>, jitter: f64) -> Duration {
    match (due, chance) {
        (Some(due), _) => (due + AT_TURN).min(MAX_AFTER_OPENING),
        (None, Some(chance)) if chance < NO_PLACE_FREE => chance + AT_TURN,
        (None, _) => NO_PLACE_FREE.mul_f64(1.0 + 0.5 * jitter.clamp(0.0, 1.0)),
    }
}

/// The polls a second an opening's line brings at its peak, for sizing:
/// with `arrivals` fans a second at the peak and `rate` admitted a second.
/// Below the pace ([`super::progress::PACE_HEADROOM`] x `rate`) each fan
/// comes back once, to claim the grant its first call asked for. Above it,
/// each admitted fan comes back up to three times at the pace (a second
/// before its turn, at its turn to join the gate's door, when its grant is
/// due to claim it), from twice the pace on; and the fans the pace cannot
/// keep up with check in now and then while they wait (a fraction of them
/// a second, fitted to `fanrush simulate`'s fan-by-fan replay of the
/// policy, which the tests hold the estimate to). How many places there
/// are does not move the peak: it comes while the places last.
pub fn expected_polls_per_second(arrivals: f64, rate: f64) -> f64 {
    let pace = rate.max(f64::MIN_POSITIVE) * super::progress::PACE_HEADROOM;
    let arrivals = arrivals.max(0.0);
    let over = (arrivals - pace).max(0.0);
    pace.min(arrivals) * (1.0 + 2.0 * (over / pace).min(1.0)) + WAITING_POLLS * over
}

/// The share of the fans waiting past the pace that poll in any one second
/// at the peak (fitted, see [`expected_polls_per_second`]).
const WAITING_POLLS: f64 = 0.07;

/// The soonest a waiting fan is asked back while its environment's gate
/// fails (its front stands still, so a fan near it would otherwise be told
/// "any moment now" every few tens of milliseconds through the outage),
/// spread over half as long again so the polls do not fall into step.
pub const WHILE_GATE_FAILS: Duration = Duration::from_secs(1);

/// `wait`, held to [`WHILE_GATE_FAILS`] at least (jittered by `jitter`).
pub fn while_gate_fails(wait: Duration, jitter: f64) -> Duration {
    wait.max(WHILE_GATE_FAILS.mul_f64(1.0 + 0.5 * jitter.clamp(0.0, 1.0)))
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
    fn a_fan_at_the_door_comes_back_when_its_grant_is_due_or_every_few_seconds_while_no_place_is_free() {
        assert_eq!(at_the_door(Some(Duration::from_millis(130)), None, 0.7), Duration::from_millis(150));
        assert_eq!(at_the_door(Some(Duration::from_secs(100)), None, 0.7), MAX_AFTER_OPENING);
        assert_eq!(at_the_door(None, None, 0.0), NO_PLACE_FREE);
        assert!(at_the_door(None, None, 0.999) > at_the_door(None, None, 0.5), "not in step");
        // A place may come back when a grant lapses: then.
        assert_eq!(at_the_door(None, Some(Duration::from_millis(700)), 0.5), Duration::from_millis(720));
        assert_eq!(at_the_door(None, Some(Duration::from_secs(9)), 0.0), NO_PLACE_FREE);
    }

    #[test]
    fn near_the_front_a_fan_comes_back_at_its_turn() {
        assert_eq!(come_back_in(0.7, 0.99, true), Duration::from_millis(720));
        assert_eq!(retry_after_header(come_back_in(0.7, 0.0, true)), 1);
        assert_eq!(come_back_in(0.0, 0.5, true), Duration::from_millis(20));
    }

    #[test]
    fn a_fan_beyond_reach_is_asked_back_rarely_but_never_past_its_turn() {
        assert_eq!(beyond_reach(1_000.0, 0.0), BEYOND_REACH / 2);
        assert_eq!(beyond_reach(1_000.0, 0.999_999).as_secs(), 59);
        assert_eq!(beyond_reach(10.0, 0.5), Duration::from_secs(10));
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
}
