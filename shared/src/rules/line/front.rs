//! The front of the line: how far it has moved at a given moment, and where
//! a place stands against it. A pure function of what the gate counts
//! ([`LineCounts`]), the event's rate and the gate's outages, so every
//! execution environment computes the same front without asking Redis.
//!
//! Places sit on one axis: the pre-queue first, in the order of their
//! shuffle keys, then arrivals after the opening, by arrival (100 ms
//! buckets, shuffled inside a bucket). Each place has a rank, the number
//! of places before it, estimated from the counts: a pre-queued place's
//! shuffle fraction of the pre-queue, an arrival's bucket and its shuffle
//! fraction of that bucket (the shuffle is uniform, so the estimate is
//! unbiased however the arrivals bunch up).
//!
//! The front releases `rate` places per second of *line time* (the time
//! since the opening, less every pause: while the gate was lost and being
//! restored nobody could be admitted, so nobody's turn came), but never
//! more places than have arrived: capacity a quiet line did not use is not
//! banked, so a crowd arriving late is paced like one arriving at the
//! opening. It advances by rate, never by exits, so a fan that walks away
//! cannot stall it.
//!
//! On the arrival axis the front is held to two more bounds, on a 100 ms
//! grid: never past the present's bucket (a fan arriving when nobody waits
//! is let in at once), and at most [`SLOPE`] seconds of arrivals per
//! second. The second bound keeps first come, first served when arrivals
//! thin out after a dense opening: two fans who arrived a second apart get
//! their turns at least a tenth of a second apart, more than a client that
//! returns when told needs to come back, so the earlier one is admitted
//! first.
//!
//! After a pre-queue the front holds [`PREQUEUE_GAP_MS`] before the first
//! arrival, so every pre-queued fan that comes back when told is admitted
//! before anyone who arrived after the opening. The gate keeps that order
//! for the ones who come back later (`admit.lua`: no arrival takes a token
//! while pre-queued fans are still coming in).
//!
//! The front is built on the counts the gate holds and extended, step by
//! step, with the tickets the environment issued since its last sync: a
//! step once taken is never taken back, so the front never moves backwards.

use super::Place;

/// Step of the front's walk on the arrival axis.
pub const GRID_MS: i64 = 100;
/// Line time between the pre-queue's last turn and the first arrival's: a
/// pre-queued fan that comes back up to this late is still let in before
/// everyone who arrived after the opening.
pub const PREQUEUE_GAP_MS: i64 = 500;
/// Seconds of arrivals the front may pass per second.
pub const SLOPE: f64 = 10.0;

const TWO_64: f64 = 18_446_744_073_709_551_616.0;
const TWO_32: f64 = 4_294_967_296.0;

/// A time the gate was lost (and then restored), `[start, end)` in Unix ms:
/// the line's clock stood still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Pause {
    /// `startMs-endMs,...` (how PostgreSQL and Redis keep them); what cannot
    /// be read is skipped.
    pub fn parse_list(text: &str) -> Vec<Pause> {
        text.split(',')
            .filter_map(|p| {
                let (a, b) = p.split_once('-')?;
                Some(Pause { start_ms: a.trim().parse().ok()?, end_ms: b.trim().parse().ok()? })
            })
            .filter(|p| p.end_ms > p.start_ms)
            .collect()
    }

    pub fn format_list(pauses: &[Pause]) -> String {
        pauses.iter().map(|p| format!("{}-{}", p.start_ms, p.end_ms)).collect::<Vec<_>>().join(",")
    }
}

/// Tickets issued, as the gate counts them: the pre-queue's, and each
/// arrival bucket's after the opening.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCounts {
    pub prequeued: u64,
    /// `arrivals[b]`: tickets issued in bucket `b` (of [`super::BUCKET_MS`])
    /// after the opening.
    pub arrivals: Vec<u64>,
}

impl LineCounts {
    /// Takes in counts read later, or from elsewhere: a count never goes
    /// down (the gate's only grow), so the larger one is the newer.
    pub fn merge(&mut self, other: &LineCounts) {
        self.prequeued = self.prequeued.max(other.prequeued);
        if self.arrivals.len() < other.arrivals.len() {
            self.arrivals.resize(other.arrivals.len(), 0);
        }
        for (mine, theirs) in self.arrivals.iter_mut().zip(&other.arrivals) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Counts one more ticket for `place`.
    pub fn add(&mut self, place: &Place, opens_at_ms: i64) {
        match place {
            Place::Prequeue { .. } => self.prequeued += 1,
            Place::Arrival { at_ms, .. } => {
                let bucket = bucket_of(*at_ms, opens_at_ms);
                if self.arrivals.len() <= bucket {
                    self.arrivals.resize(bucket + 1, 0);
                }
                self.arrivals[bucket] += 1;
            }
        }
    }
}

/// The arrival bucket an instant falls in.
pub fn bucket_of(at_ms: i64, opens_at_ms: i64) -> usize {
    ((at_ms - opens_at_ms).max(0) / super::BUCKET_MS) as usize
}

/// Everything the front depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct LineShape {
    pub opens_at_ms: i64,
    /// Admissions per second.
    pub rate: f64,
    pub pauses: Vec<Pause>,
    pub counts: LineCounts,
    /// Whether the pre-queue's count is final here (read after
    /// [`super::PREQUEUE_SETTLE`]): until then no arrival is let in, however
    /// far the front has gone, since a later count would put pre-queued
    /// fans behind it.
    pub prequeue_settled: bool,
}

/// Where the front is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Front {
    /// Still in the pre-queue: places whose shuffle fraction is below this
    /// are released.
    Prequeue { fraction: f64 },
    /// Past the pre-queue: arrivals before this instant (Unix ms, with a
    /// fraction) are released.
    Arrival { key_ms: f64 },
}

impl Front {
    /// Whether a place's turn has come.
    pub fn passed(&self, place: &Place) -> bool {
        match (self, place) {
            (Front::Prequeue { fraction }, Place::Prequeue { shuffle }) => (*shuffle as f64 / TWO_64) < *fraction,
            (Front::Prequeue { .. }, Place::Arrival { .. }) => false,
            (Front::Arrival { .. }, Place::Prequeue { .. }) => true,
            (Front::Arrival { key_ms }, Place::Arrival { .. }) => arrival_key(place) < *key_ms,
        }
    }
}

/// An arrival's position on the axis, in ms: its bucket's start plus its
/// shuffle spread over the bucket.
fn arrival_key(place: &Place) -> f64 {
    match place {
        Place::Arrival { at_ms, shuffle } => *at_ms as f64 + (*shuffle as f64 / TWO_32) * super::BUCKET_MS as f64,
        Place::Prequeue { .. } => f64::NEG_INFINITY,
    }
}

impl LineShape {
    /// The end of the arrival bucket `t` falls in: the front's bound by the
    /// present.
    fn present(&self, t: i64) -> f64 {
        let bucket = super::BUCKET_MS;
        (self.opens_at_ms + ((t - self.opens_at_ms).div_euclid(bucket) + 1) * bucket) as f64
    }

    /// Line time at `t`: ms since the opening, less the pauses.
    pub fn line_ms(&self, t: i64) -> i64 {
        let elapsed = (t - self.opens_at_ms).max(0);
        let paused: i64 = self.pauses.iter().map(|p| (p.end_ms.min(t) - p.start_ms.max(self.opens_at_ms)).max(0)).sum();
        (elapsed - paused).max(0)
    }

    /// The rank at an arrival-axis instant: how many places are before it.
    fn rank_at_key(&self, key_ms: f64) -> f64 {
        let width = super::BUCKET_MS as f64;
        let offset = (key_ms - self.opens_at_ms as f64) / width;
        let bucket = offset.floor().max(0.0) as usize;
        let before: u64 = self.counts.arrivals.iter().take(bucket).sum();
        let within = self.counts.arrivals.get(bucket).copied().unwrap_or(0) as f64;
        self.counts.prequeued as f64 + before as f64 + within * (offset - bucket as f64).clamp(0.0, 1.0)
    }

    /// A place's rank: how many places are estimated to be before it.
    pub fn rank(&self, place: &Place) -> f64 {
        let pre = self.counts.prequeued as f64;
        match place {
            Place::Prequeue { shuffle } => *shuffle as f64 / TWO_64 * pre,
            Place::Arrival { .. } => self.rank_at_key(arrival_key(place)),
        }
    }
}

/// Prefix sums of the arrivals: `prefix[b]` arrived before bucket `b`.
fn prefix_of(arrivals: &[u64]) -> Vec<u64> {
    let mut sums = Vec::with_capacity(arrivals.len() + 1);
    let mut total = 0;
    sums.push(0);
    for n in arrivals {
        total += n;
        sums.push(total);
    }
    sums
}

/// The front's walk from the opening, on the 100 ms grid. Built once per
/// sync; asking for a later time extends it.
#[derive(Debug, Clone)]
pub struct FrontWalk {
    shape: LineShape,
    prefix: Vec<u64>,
    /// `ranks[k]`, `keys[k]`: the places released, and the arrival-axis
    /// front, at `opens_at + k * GRID_MS`.
    ranks: Vec<f64>,
    keys: Vec<f64>,
    /// Line time (ms) at which the pre-queue's last place was released.
    prequeue_done: Option<i64>,
}

impl FrontWalk {
    pub fn new(shape: LineShape) -> Self {
        let prefix = prefix_of(&shape.counts.arrivals);
        Self { shape, prefix, ranks: Vec::new(), keys: Vec::new(), prequeue_done: None }
    }

    pub fn shape(&self) -> &LineShape {
        &self.shape
    }

    /// Counts a ticket this environment issued after the walk was built:
    /// steps from now on know of it; steps already taken stay.
    pub fn add(&mut self, place: &Place) {
        self.shape.counts.add(place, self.shape.opens_at_ms);
        if matches!(place, Place::Arrival { .. }) {
            self.prefix = prefix_of(&self.shape.counts.arrivals);
        }
    }

    /// Places that have arrived by `t`: the pre-queue and every counted
    /// arrival up to `t`'s bucket.
    fn arrived(&self, t: i64) -> f64 {
        let bucket = bucket_of(t, self.shape.opens_at_ms) + 1;
        (self.shape.counts.prequeued + self.prefix[bucket.min(self.prefix.len() - 1)]) as f64
    }

    /// The arrival-axis instant at a rank: the inverse of
    /// [`LineShape::rank`] for arrivals. Past every counted arrival, the end
    /// of the last counted bucket.
    fn key_at_rank(&self, rank: f64) -> f64 {
        let (opens, width) = (self.shape.opens_at_ms as f64, super::BUCKET_MS as f64);
        let r = rank - self.shape.counts.prequeued as f64;
        if r < 0.0 {
            return opens;
        }
        let total = *self.prefix.last().unwrap_or(&0) as f64;
        if r >= total {
            return opens + width * self.shape.counts.arrivals.len() as f64;
        }
        // The bucket holding rank r: the first b with prefix[b + 1] > r.
        let bucket = self.prefix.partition_point(|&sum| (sum as f64) <= r) - 1;
        let within = self.shape.counts.arrivals[bucket] as f64;
        opens + width * (bucket as f64 + (r - self.prefix[bucket] as f64) / within)
    }

    /// The released rank and arrival-axis front at `t`, from the step
    /// before it (`rank`, `key` at `from`).
    fn advance(&self, rank: f64, key: f64, from: i64, t: i64) -> (f64, f64) {
        let active = (self.shape.line_ms(t) - self.shape.line_ms(from)) as f64;
        let pre = self.shape.counts.prequeued as f64;
        let mut wanted = (rank + self.shape.rate * active / 1000.0).min(self.arrived(t)).max(rank);
        // The gap after a pre-queue: no arrival's turn until it has passed,
        // nor before the pre-queue's count is final.
        let done = self.prequeue_done.or((rank >= pre && pre > 0.0).then_some(self.shape.line_ms(from)));
        let in_gap = pre > 0.0
            && (!self.shape.prequeue_settled
                || match done {
                    Some(at) => self.shape.line_ms(t) < at + PREQUEUE_GAP_MS,
                    None => true,
                });
        if in_gap {
            wanted = wanted.min(pre);
        }
        if wanted < pre || (in_gap && wanted <= pre) {
            return (wanted, key);
        }
        let by_rate = self.key_at_rank(wanted);
        let by_slope = key + SLOPE * (t - from) as f64;
        let next = by_rate.min(by_slope).min(self.shape.present(t)).max(key);
        // Held back by the slope or the present: release only what passed.
        let released = if next < by_rate { self.shape.rank_at_key(next).max(rank) } else { wanted };
        (released, next)
    }

    fn extend_to(&mut self, k: usize) {
        while self.ranks.len() <= k {
            let i = self.ranks.len();
            let t = self.shape.opens_at_ms + i as i64 * GRID_MS;
            let (rank, key) = match (self.ranks.last(), self.keys.last()) {
                (Some(r), Some(c)) => self.advance(*r, *c, t - GRID_MS, t),
                _ => (0.0, self.shape.opens_at_ms as f64),
            };
            let pre = self.shape.counts.prequeued as f64;
            if self.prequeue_done.is_none() && pre > 0.0 && rank >= pre {
                self.prequeue_done = Some(self.shape.line_ms(t));
            }
            self.ranks.push(rank);
            self.keys.push(key);
        }
    }

    fn at(&mut self, t: i64) -> (f64, f64) {
        if t <= self.shape.opens_at_ms {
            return (0.0, self.shape.opens_at_ms as f64);
        }
        let k = ((t - self.shape.opens_at_ms) / GRID_MS) as usize;
        self.extend_to(k);
        let t_k = self.shape.opens_at_ms + k as i64 * GRID_MS;
        self.advance(self.ranks[k], self.keys[k], t_k, t)
    }

    /// The front at `t` (Unix ms).
    pub fn front(&mut self, t: i64) -> Front {
        let (rank, key_ms) = self.at(t);
        let pre = self.shape.counts.prequeued as f64;
        if rank < pre {
            Front::Prequeue { fraction: rank / pre }
        } else {
            Front::Arrival { key_ms }
        }
    }

    /// The rank the front has released at `t`.
    pub fn front_rank(&mut self, t: i64) -> f64 {
        self.at(t).0
    }

    /// When `place`'s turn came, if it has by `now`.
    pub fn turn_came_at(&mut self, place: &Place, now: i64) -> Option<i64> {
        if !self.front(now).passed(place) {
            return None;
        }
        if now <= self.shape.opens_at_ms {
            return Some(now);
        }
        let k = ((now - self.shape.opens_at_ms) / GRID_MS) as usize;
        self.extend_to(k);
        let first = match place {
            Place::Prequeue { .. } => {
                let rank = self.shape.rank(place);
                self.ranks[..=k].partition_point(|r| *r <= rank)
            }
            Place::Arrival { .. } => {
                let key = arrival_key(place);
                self.keys[..=k].partition_point(|c| *c <= key)
            }
        };
        // The front passed the place between step first - 1 and step first.
        Some((self.shape.opens_at_ms + first as i64 * GRID_MS).min(now))
    }

    /// Seconds until `place`'s turn, from `now`: the longer of what the rate
    /// and what the slope still need, after the opening.
    pub fn eta_seconds(&mut self, place: &Place, now: i64) -> f64 {
        let rate = self.shape.rate.max(f64::MIN_POSITIVE);
        let to_opening = (self.shape.opens_at_ms - now).max(0) as f64 / 1000.0;
        let (rank, key) = self.at(now);
        let by_rate = (self.shape.rank(place) - rank).max(0.0) / rate;
        let by_slope = match place {
            Place::Arrival { .. } => (arrival_key(place) - key).max(0.0) / 1000.0 / SLOPE,
            Place::Prequeue { .. } => 0.0,
        };
        let gap = match place {
            Place::Arrival { .. } if self.shape.counts.prequeued > 0 && rank <= self.shape.counts.prequeued as f64 => {
                PREQUEUE_GAP_MS as f64 / 1000.0
            }
            _ => 0.0,
        };
        to_opening + gap + by_rate.max(by_slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: i64 = 1_800_000_000_000;

    /// A line with `per_second[s]` arrivals in second `s`, spread evenly
    /// over its ten buckets.
    fn shape(rate: f64, prequeued: u64, per_second: &[u64]) -> LineShape {
        let arrivals = per_second.iter().flat_map(|n| (0..10).map(move |b| n / 10 + u64::from(b < n % 10))).collect();
        LineShape {
            opens_at_ms: OPEN,
            rate,
            pauses: Vec::new(),
            counts: LineCounts { prequeued, arrivals },
            prequeue_settled: true,
        }
    }

    fn arrival(offset_ms: i64) -> Place {
        Place::Arrival { at_ms: OPEN + offset_ms, shuffle: 0 }
    }

    fn key_at(walk: &mut FrontWalk, t: i64) -> f64 {
        match walk.front(OPEN + t) {
            Front::Arrival { key_ms } => key_ms - OPEN as f64,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_prequeue_is_released_at_the_rate_in_shuffle_order() {
        // 1,000 pre-queued at 100 a second: a tenth of the shuffle order a second.
        let mut walk = FrontWalk::new(shape(100.0, 1_000, &[]));
        assert_eq!(walk.front(OPEN - 1), Front::Prequeue { fraction: 0.0 });
        match walk.front(OPEN + 2_500) {
            Front::Prequeue { fraction } => assert!((fraction - 0.25).abs() < 1e-9, "{fraction}"),
            other => panic!("{other:?}"),
        }
        let early = Place::Prequeue { shuffle: (0.2 * TWO_64) as u64 };
        let late = Place::Prequeue { shuffle: (0.3 * TWO_64) as u64 };
        assert!(walk.front(OPEN + 2_500).passed(&early) && !walk.front(OPEN + 2_500).passed(&late));
        assert!(!walk.front(OPEN + 2_500).passed(&arrival(0)), "every pre-queued place is ahead of every arrival");
        let came = walk.turn_came_at(&early, OPEN + 2_500).unwrap();
        assert!((OPEN + 2_000..=OPEN + 2_100).contains(&came), "{}", came - OPEN);
        assert!((walk.eta_seconds(&late, OPEN + 2_500) - 0.5).abs() < 1e-6);
        // Before the opening: the wait to the opening plus the place's share.
        assert!((walk.eta_seconds(&late, OPEN - 10_000) - 13.0).abs() < 1e-6);
    }

    #[test]
    fn the_first_arrival_waits_a_gap_after_the_prequeue() {
        // 100 pre-queued at 100 a second: done after 1 s; arrivals from 1.5 s.
        let mut walk = FrontWalk::new(shape(100.0, 100, &[1_000]));
        assert!(matches!(walk.front(OPEN + 1_000), Front::Prequeue { .. } | Front::Arrival { .. }));
        assert!(!walk.front(OPEN + 1_300).passed(&arrival(0)), "in the gap");
        assert!(walk.front(OPEN + 1_300).passed(&Place::Prequeue { shuffle: u64::MAX }), "the pre-queue is in");
        assert!(walk.front(OPEN + 1_700).passed(&arrival(0)), "after the gap");
    }

    #[test]
    fn no_arrival_is_let_in_before_the_prequeues_count_is_final() {
        let mut unsettled = shape(100.0, 10, &[1_000]);
        unsettled.prequeue_settled = false;
        let mut walk = FrontWalk::new(unsettled);
        assert!(!walk.front(OPEN + 5_000).passed(&arrival(0)), "the pre-queue may still grow");
        assert!(walk.front(OPEN + 5_000).passed(&Place::Prequeue { shuffle: u64::MAX }));
    }

    #[test]
    fn arrivals_are_released_at_the_rate_by_arrival() {
        // 3,000 arrive in the first second, none after; 300 a second are let in.
        let mut walk = FrontWalk::new(shape(300.0, 0, &[3_000]));
        // After 5 s, 1,500 places: half of the first second's arrivals.
        let rank = walk.front_rank(OPEN + 5_000);
        assert!((rank - 1_500.0).abs() < 1.0, "{rank}");
        assert!(walk.front(OPEN + 5_000).passed(&arrival(400)));
        assert!(!walk.front(OPEN + 5_000).passed(&arrival(600)));
        let eta = walk.eta_seconds(&arrival(900), OPEN + 5_000);
        assert!((eta - 4.0).abs() < 0.01, "{eta}");
        let came = walk.turn_came_at(&arrival(400), OPEN + 9_000).unwrap();
        assert!((OPEN + 3_900..=OPEN + 4_100).contains(&came), "{}", came - OPEN);
    }

    #[test]
    fn capacity_a_quiet_line_did_not_use_is_not_banked() {
        // Nobody for ten seconds, then 3,000 at once: still 300 a second.
        let mut counts = vec![0; 10];
        counts.push(3_000);
        let mut walk = FrontWalk::new(shape(300.0, 0, &counts));
        let rank = walk.front_rank(OPEN + 11_000);
        assert!((270.0..=330.0).contains(&rank), "{rank}");
        assert!(!walk.front(OPEN + 11_000).passed(&arrival(10_500)));
    }

    #[test]
    fn the_front_never_passes_the_present_and_catches_up_at_most_ten_seconds_a_second() {
        // 300 a second, a dense first second (3,000), then one fan a second.
        let mut counts = vec![3_000];
        counts.extend(std::iter::repeat_n(1, 60));
        let mut walk = FrontWalk::new(shape(300.0, 0, &counts));
        let f10 = key_at(&mut walk, 10_000);
        assert!((990.0..=1_100.0).contains(&f10), "the dense second is done at 10 s: {f10}");
        // The sparse seconds after it: at most 10 s of arrivals per second.
        let f11 = key_at(&mut walk, 11_000);
        assert!(f11 <= f10 + 10_100.0 && f11 > f10 + 5_000.0, "{f10} -> {f11}");
        // Two fans a second apart in arrival get their turns at least 0.1 s apart.
        let a = walk.turn_came_at(&arrival(3_000), OPEN + 60_000).unwrap();
        let b = walk.turn_came_at(&arrival(4_000), OPEN + 60_000).unwrap();
        assert!(b - a >= 100, "{a} {b}");
        // Caught up: the present's whole bucket is let in.
        assert_eq!(key_at(&mut walk, 30_050), 30_100.0);
        let _ = b - a;
    }

    #[test]
    fn an_environments_own_ticket_counts_at_once_and_a_lone_fan_goes_straight_in() {
        let mut walk = FrontWalk::new(shape(300.0, 0, &[5, 5, 5]));
        let lone = arrival(3_040);
        assert!(!walk.front(OPEN + 3_050).passed(&lone), "not counted yet: not let in");
        walk.add(&lone);
        assert!(walk.front(OPEN + 3_050).passed(&lone), "nobody is ahead: in at once");
        assert_eq!(walk.eta_seconds(&lone, OPEN + 3_050), 0.0);
    }

    #[test]
    fn a_pause_stops_the_line_and_it_resumes_where_it_stood() {
        let mut s = shape(100.0, 0, &[10_000]);
        s.pauses.push(Pause { start_ms: OPEN + 2_000, end_ms: OPEN + 12_000 });
        let mut walk = FrontWalk::new(s);
        let before = walk.front_rank(OPEN + 2_000);
        let during = walk.front_rank(OPEN + 11_000);
        let after = walk.front_rank(OPEN + 13_000);
        assert!((before - 200.0).abs() < 1.0 && (during - before).abs() < 1e-6, "{before} {during}");
        assert!((after - 300.0).abs() < 1.0, "{after}");
    }

    #[test]
    fn pauses_are_kept_as_text() {
        let pauses = vec![Pause { start_ms: 5, end_ms: 9 }, Pause { start_ms: 20, end_ms: 31 }];
        assert_eq!(Pause::format_list(&pauses), "5-9,20-31");
        assert_eq!(Pause::parse_list("5-9,20-31"), pauses);
        assert_eq!(Pause::parse_list(""), vec![]);
        assert_eq!(Pause::parse_list("x,9-5,1-2"), vec![Pause { start_ms: 1, end_ms: 2 }]);
    }

    #[test]
    fn ranks_follow_the_counts_and_a_buckets_shuffle() {
        let s = shape(1.0, 100, &[10, 20, 30]);
        assert_eq!(s.rank(&Place::Prequeue { shuffle: (0.5 * TWO_64) as u64 }), 50.0);
        assert_eq!(s.rank(&arrival(0)), 100.0);
        assert_eq!(s.rank(&arrival(1_500)), 120.0);
        assert_eq!(s.rank(&arrival(9_000)), 160.0, "past the counts: after everyone counted");
        // Five fans in one bucket: the shuffle spreads their ranks over it.
        let crowd = LineShape { counts: LineCounts { prequeued: 0, arrivals: vec![5] }, ..s.clone() };
        let at = |u: f64| crowd.rank(&Place::Arrival { at_ms: OPEN, shuffle: (u * TWO_32) as u32 });
        assert_eq!((at(0.0), at(0.5).round(), at(0.99).floor()), (0.0, 3.0, 4.0));
    }

    #[test]
    fn counts_merge_by_the_larger_and_never_go_down() {
        let mut mine = LineCounts { prequeued: 5, arrivals: vec![1, 2] };
        mine.merge(&LineCounts { prequeued: 3, arrivals: vec![4, 0, 7] });
        assert_eq!(mine, LineCounts { prequeued: 5, arrivals: vec![4, 2, 7] });
        mine.add(&Place::Arrival { at_ms: OPEN + 450, shuffle: 0 }, OPEN);
        assert_eq!(mine.arrivals, vec![4, 2, 7, 0, 1]);
    }
}
