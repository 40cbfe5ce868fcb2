//! Where the line stands. The gate's served mark is the highest place it
//! has granted; it moves only as the gate grants places to the fans at its
//! door, so its speed is what the gate really does, walk-aways and fans'
//! networks included. One execution environment follows it from the syncs
//! it makes ([`Progress`]), and says where a place stands against it
//! ([`Standing`]): how many places are ahead, when its turn comes and when
//! its grant is due, whether the served mark passed it long ago, and whether
//! the places left can still reach it.

use super::counts::LineCounts;
use super::{Place, TURN_WINDOW};
use std::collections::VecDeque;
use std::time::Duration;

/// How far from the served mark a place's turn comes: its fan then calls
/// the gate and joins the door, this long before its grant is due. Longer
/// than a fan that follows the line takes to call (a round trip; the
/// drill's network caps one at 3 s), so every such fan is at the door
/// before any place after it is granted, and the door is never empty while
/// fans wait.
pub const LEAD: Duration = Duration::from_secs(4);

/// How long before the opening the pre-queue's turns start to come: every
/// pre-queued fan that follows the line is at the door when the gate
/// starts granting, ahead of every arrival. The turns are spread over
/// [`PREQUEUE_SPREAD`] by the places' shuffle (uniform), so a large
/// pre-queue does not call the gate in one instant.
pub const PREQUEUE_CALL: Duration = Duration::from_secs(5);
pub const PREQUEUE_SPREAD: Duration = Duration::from_secs(3);

/// How soon a pre-queued fan whose draw key this environment cannot compute
/// yet (it has not heard of the seal) is asked back, at the least: its
/// next request finds the digest, which this one's sync fetches.
pub const DRAWING_WAIT: Duration = Duration::from_secs(1);

/// The grants a second the gate makes, as a multiple of the line's rate:
/// `lua/pace.lua`'s `PACE_HEADROOM` (the adapter's tests hold the two
/// equal).
pub const PACE_HEADROOM: f64 = 1.05;

/// The window over which the served mark's speed is measured.
const SPEED_WINDOW_MS: i64 = 5_000;

/// How far the served mark is carried past the last sync at its speed,
/// beyond the sync interval: an environment hears from the gate at least
/// that often while it answers fans, and a gate that stopped granting
/// stops every front within this much more.
const EXTRAPOLATE_MARGIN_MS: i64 = 1_000;

/// The served mark as the syncs saw it: enough to tell when it passed any
/// place of the last [`TURN_WINDOW`], and its speed; and where the gate
/// serves next, the rank places ahead are counted from.
#[derive(Debug, Clone)]
pub struct Progress {
    samples: VecDeque<Sample>,
    /// The rank the gate serves next, and when it was seen (ms).
    next: Option<(i64, f64)>,
    /// How far past the last sight of the gate the served mark is carried (ms).
    horizon_ms: i64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(crate::rules::line::SYNC_EVERY)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: i64,
    /// The served mark (an order key) and its rank.
    key: i64,
    rank: f64,
    /// Places granted since the opening.
    granted: i64,
}

impl Progress {
    /// A progress not seen yet, of a line synced `every` this long.
    pub fn new(every: Duration) -> Self {
        let mut p = Self { samples: VecDeque::new(), next: None, horizon_ms: 0 };
        p.set_sync_interval(every);
        p
    }

    /// The environment syncs `every` this long: the served mark is carried
    /// on that long, and a margin, past the last sight of it.
    pub fn set_sync_interval(&mut self, every: Duration) {
        self.horizon_ms = (every.as_millis() as i64 + EXTRAPOLATE_MARGIN_MS).max(2 * EXTRAPOLATE_MARGIN_MS);
    }

    /// Notes where the gate serves next, as seen at `at_ms`: the served
    /// mark's rank, less the fans at the door behind it (`behind`: each is
    /// one place more to serve before anyone after the mark; a straggler
    /// with an early place is one fan more ahead, not every place it is
    /// behind).
    pub fn next_at(&mut self, at_ms: i64, served: f64, behind: i64) {
        self.next = Some((at_ms, (served - behind.max(0) as f64).max(0.0)));
    }

    /// Notes the served mark `key` (ranked `rank` by the counts) and the
    /// places granted so far, as a sync read them at `at_ms`.
    pub fn record(&mut self, at_ms: i64, key: Option<i64>, rank: f64, granted: i64) {
        let Some(key) = key else { return };
        if let Some(last) = self.samples.back() {
            if at_ms < last.at_ms || (key == last.key && granted == last.granted) {
                return;
            }
        }
        self.samples.push_back(Sample { at_ms, key, rank, granted });
        // Keep the last TURN_WINDOW, and one sample before it.
        let horizon = at_ms - TURN_WINDOW.as_millis() as i64;
        while self.samples.len() > 2 && self.samples[1].at_ms < horizon {
            self.samples.pop_front();
        }
    }

    /// The served mark, as last seen.
    pub fn served(&self) -> Option<i64> {
        self.samples.back().map(|s| s.key)
    }

    /// Places the served mark passes a second, over the last few seconds;
    /// at least `floor` (the gate's pace: each grant passes a place at
    /// least).
    pub fn speed(&self, floor: f64) -> f64 {
        let Some(last) = self.samples.back() else { return floor };
        let first = self.samples.iter().find(|s| last.at_ms - s.at_ms <= SPEED_WINDOW_MS).unwrap_or(last);
        let span = (last.at_ms - first.at_ms) as f64 / 1000.0;
        if span < 1.0 {
            return floor;
        }
        ((last.rank - first.rank) / span).max(floor)
    }

    /// The rank the gate serves next at `now_ms`: the last seen, carried on
    /// at `speed` for at most the sync interval and
    /// [`EXTRAPOLATE_MARGIN_MS`]; 0 before anything was seen.
    pub fn next_rank(&self, now_ms: i64, speed: f64) -> f64 {
        match self.next {
            Some((at_ms, rank)) => rank + speed * (now_ms - at_ms).clamp(0, self.horizon_ms) as f64 / 1000.0,
            None => 0.0,
        }
    }

    /// When the served mark was first seen past `key`, if it was.
    pub fn passed_at(&self, key: i64) -> Option<i64> {
        let i = self.samples.partition_point(|s| s.key <= key);
        self.samples.get(i).map(|s| s.at_ms)
    }

    /// Of the places the served mark passed lately, the share whose fans
    /// came and were granted one (the rest had walked away).
    pub fn show_fraction(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let passed = last.rank - first.rank;
        (passed >= 1.0).then(|| ((last.granted - first.granted) as f64 / passed).clamp(0.0, 1.0))
    }
}

/// When a waiting fan's turn comes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Turn {
    /// In this many seconds.
    In(f64),
    /// Now: call the gate and join its door.
    Came,
    /// The served mark passed the place more than [`TURN_WINDOW`] ago.
    Missed,
}

/// Where a place stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Places before it that the gate has not served yet, fans who walked
    /// away among them.
    pub ahead: f64,
    /// Seconds until its grant is due: until the opening, then the places
    /// ahead at the served mark's speed.
    pub eta_s: f64,
    pub turn: Turn,
}

/// The places the served mark's speed passes a second: its measured speed,
/// at least the gate's pace at `rate`.
pub fn speed(progress: &Progress, rate: f64) -> f64 {
    progress.speed(rate * PACE_HEADROOM)
}

/// Where `place` stands at `now_ms` in a line at `rate`.
pub fn standing(counts: &mut LineCounts, progress: &Progress, place: &Place, now_ms: i64, rate: f64) -> Standing {
    let opens = counts.opens_at_ms();
    let v = speed(progress, rate);
    let rank = counts.rank(place);
    let ahead = (rank - progress.next_rank(now_ms, v)).max(0.0);
    let to_opening = (opens - now_ms).max(0) as f64 / 1000.0;
    let eta_s = to_opening + ahead / v;
    let key = place.order_key(opens);
    let missed = progress.passed_at(key).is_some_and(|at| now_ms - at > TURN_WINDOW.as_millis() as i64);
    let turn = match place {
        _ if missed => Turn::Missed,
        // Its key is not known until this environment hears of the seal:
        // asked back soon, never called to the gate.
        Place::Drawing { .. } => Turn::In(
            DRAWING_WAIT.as_secs_f64().max((opens - PREQUEUE_CALL.as_millis() as i64 - now_ms) as f64 / 1000.0),
        ),
        Place::Prequeue { shuffle } => {
            let spread = PREQUEUE_SPREAD.as_millis() as f64 * (*shuffle as f64 / u64::MAX as f64);
            let calls_at = opens - PREQUEUE_CALL.as_millis() as i64 + spread as i64;
            if now_ms >= calls_at {
                Turn::Came
            } else {
                Turn::In((calls_at - now_ms) as f64 / 1000.0)
            }
        }
        Place::Arrival { .. } => {
            let lead = LEAD.as_secs_f64();
            if eta_s - to_opening <= lead {
                Turn::Came
            } else {
                Turn::In(eta_s - lead)
            }
        }
    };
    Standing { ahead, eta_s, turn }
}

/// The smallest share of the fans ahead assumed to come: half the share the
/// line has seen come, and never below this.
const SHOW_FLOOR: f64 = 0.25;

/// Whether the places left cannot reach a fan `ahead` places back, even
/// if half as many of the fans ahead come as have come so far (`show`).
pub fn beyond_reach(ahead: f64, places_left: i64, show: Option<f64>) -> bool {
    let coming = (show.unwrap_or(1.0) / 2.0).max(SHOW_FLOOR);
    ahead * coming >= places_left.max(0) as f64 && ahead >= 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::line::BUCKET_MS;

    const OPEN: i64 = 1_800_000_000_000;

    fn arrival(offset_ms: i64) -> Place {
        Place::Arrival { at_ms: OPEN + offset_ms - offset_ms % BUCKET_MS, shuffle: 0 }
    }

    /// 3,000 fans in the opening's first second, none after.
    fn crowd() -> LineCounts {
        let mut c = LineCounts::new(OPEN);
        c.read(0, 0, &[300; 10], OPEN + 60_000);
        c
    }

    #[test]
    fn the_served_marks_speed_is_measured_and_never_below_the_pace() {
        let mut p = Progress::default();
        assert_eq!(p.speed(100.0), 100.0, "nothing seen yet");
        for s in 0..=5 {
            p.record(OPEN + s * 1_000, Some(s * 1_000), s as f64 * 400.0, s * 300);
        }
        assert!((p.speed(100.0) - 400.0).abs() < 1e-9, "{}", p.speed(100.0));
        assert_eq!(p.speed(500.0), 500.0);
        assert!((p.show_fraction().unwrap() - 0.75).abs() < 1e-9);
        // Served next: carried on past the last sync, for two seconds at most.
        p.next_at(OPEN + 5_000, 2_000.0, 0);
        assert_eq!(p.next_rank(OPEN + 5_500, 400.0), 2_200.0);
        assert_eq!(p.next_rank(OPEN + 60_000, 400.0), 2_800.0);
        // Fans at the door behind the served mark: one place each.
        p.next_at(OPEN + 5_000, 2_000.0, 3);
        assert_eq!(p.next_rank(OPEN + 5_000, 400.0), 1_997.0, "a straggler is one fan ahead, not 2,000");
    }

    #[test]
    fn a_fans_turn_comes_a_lead_before_its_grant_and_its_eta_counts_the_places_ahead() {
        let mut c = crowd();
        let p = Progress::default();
        // The first fan of the third bucket has two buckets of 300 ahead.
        let s = standing(&mut c, &p, &arrival(200), OPEN + 1_000, 300.0);
        assert!((s.ahead - 600.0).abs() < 1e-9, "{s:?}");
        // At 300 a second the gate grants 315: 2,100 places ahead take 6.7 s.
        let far = standing(&mut c, &p, &arrival(700), OPEN + 1_000, 300.0);
        assert!((far.eta_s - 2_100.0 / 315.0).abs() < 1e-6, "{far:?}");
        assert!(matches!(far.turn, Turn::In(t) if (t - (far.eta_s - 4.0)).abs() < 1e-9), "{far:?}");
        let near = standing(&mut c, &p, &arrival(100), OPEN + 1_000, 300.0);
        assert_eq!(near.turn, Turn::Came);
    }

    #[test]
    fn before_the_opening_the_prequeue_waits_then_its_turn_comes_ahead_of_the_opening() {
        let mut c = LineCounts::new(OPEN);
        c.read(1_000, 0, &[], OPEN - 30_000);
        let p = Progress::default();
        let fan = Place::Prequeue { shuffle: u64::MAX / 2 };
        let early = standing(&mut c, &p, &fan, OPEN - 30_000, 100.0);
        assert_eq!(early.turn, Turn::In(26.5), "5 s before the opening, and half of the spread");
        assert!((early.eta_s - (30.0 + 500.0 / 105.0)).abs() < 1e-6, "{early:?}");
        assert_eq!(standing(&mut c, &p, &fan, OPEN - 3_000, 100.0).turn, Turn::Came);
        assert!(matches!(standing(&mut c, &p, &fan, OPEN - 4_000, 100.0).turn, Turn::In(_)));
    }

    #[test]
    fn a_place_the_served_mark_passed_long_ago_missed_its_turn() {
        let mut c = crowd();
        let mut p = Progress::default();
        p.record(OPEN + 1_000, Some(arrival(500).order_key(OPEN) + 1), 1_500.0, 1_400);
        p.record(OPEN + 200_000, Some(arrival(900).order_key(OPEN)), 2_700.0, 2_500);
        p.next_at(OPEN + 200_000, 2_700.0, 0);
        assert_eq!(standing(&mut c, &p, &arrival(300), OPEN + 130_000, 300.0).turn, Turn::Missed);
        assert_eq!(standing(&mut c, &p, &arrival(300), OPEN + 100_000, 300.0).turn, Turn::Came);
        assert_eq!(p.passed_at(arrival(800).order_key(OPEN)), Some(OPEN + 200_000));
    }

    #[test]
    fn a_fan_is_beyond_reach_only_when_even_generous_walk_aways_leave_it_out() {
        assert!(!beyond_reach(150.0, 100, Some(0.9)), "half of 0.9 of 150 is 67: reachable");
        assert!(beyond_reach(250.0, 100, Some(0.9)));
        assert!(!beyond_reach(350.0, 100, Some(0.2)), "a line where few came: the floor");
        assert!(beyond_reach(450.0, 100, Some(0.2)));
        assert!(!beyond_reach(0.0, 0, None), "the next fan when a place may come back");
    }
}
