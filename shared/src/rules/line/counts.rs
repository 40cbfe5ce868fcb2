//! The line's counts as one execution environment holds them: the places
//! in the pre-queue, and per 100 ms arrival bucket from a base bucket on,
//! so the rank of any place from the served mark on (how many places are
//! before it) is a sum over a bounded window, whatever the time since the
//! opening.
//!
//! The gate counts each fan once, from every environment's syncs. An
//! environment adds the places it gave that the gate has not counted yet.
//! A bucket the gate has not heard of from every environment yet (the last
//! sync interval and [`COMPLETE_MARGIN_MS`]) is estimated from this
//! environment's own share of
//! the places: its places there, times the gate's count over its own in the
//! buckets already complete (in the pre-queue, before the first of them).
//! Environments get fans at random, so the estimate is unbiased.

use super::{Place, Spot, BUCKET_MS};

/// The buckets an environment holds past its base at most: one hour of
/// arrivals. A line whose backlog is longer ranks the places beyond it at
/// its end, short of their true rank.
pub const MAX_BUCKETS: u64 = 36_000;

/// How long after a bucket ends every environment has counted it at the
/// gate, past the sync interval: environments sync at most an interval
/// apart while they give places, and a sync's call takes at most
/// Redis's timeouts (a second each way, `REDIS_*_TIMEOUT_MS`).
pub const COMPLETE_MARGIN_MS: i64 = 2_000;

/// The bucket an instant falls in (0 before the opening).
pub fn bucket_of(at_ms: i64, opens_at_ms: i64) -> u64 {
    ((at_ms - opens_at_ms).max(0) / BUCKET_MS) as u64
}

#[derive(Debug, Clone)]
pub struct LineCounts {
    opens_at_ms: i64,
    /// The pre-queue: the gate's count, places given here not in it yet,
    /// and all places given here.
    prequeued: u64,
    prequeue_pending: u64,
    prequeue_own: u64,
    /// Arrival buckets from `base` on: the gate's counts, places given here
    /// not in them yet, and all places given here.
    base: u64,
    gate: Vec<u64>,
    pending: Vec<u64>,
    own: Vec<u64>,
    /// Places in the buckets dropped below `base`, so ranks stay absolute.
    dropped: f64,
    /// Buckets before this one are complete at the gate.
    complete_before: u64,
    /// How long after it ends a bucket is complete at the gate.
    complete_after_ms: i64,
    /// The gate's places over this environment's, as of the last read.
    scale: f64,
    /// `prefix[i]`: the places in buckets `base .. base + i`, valid up to
    /// `prefix.len()`.
    prefix: Vec<f64>,
}

impl LineCounts {
    pub fn new(opens_at_ms: i64) -> Self {
        Self {
            opens_at_ms,
            prequeued: 0,
            prequeue_pending: 0,
            prequeue_own: 0,
            base: 0,
            gate: Vec::new(),
            pending: Vec::new(),
            own: Vec::new(),
            dropped: 0.0,
            complete_before: 0,
            complete_after_ms: crate::rules::line::SYNC_EVERY.as_millis() as i64 + COMPLETE_MARGIN_MS,
            scale: 1.0,
            prefix: vec![0.0],
        }
    }

    pub fn opens_at_ms(&self) -> i64 {
        self.opens_at_ms
    }

    /// The places in the pre-queue.
    pub fn prequeued(&self) -> u64 {
        self.prequeued + self.prequeue_pending
    }

    /// The first bucket this copy holds.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The bucket after the last one this copy holds a count for.
    pub fn end(&self) -> u64 {
        self.base + self.gate.len() as u64
    }

    /// Environments sync `every` this long: a bucket is complete at the gate
    /// that long (and a margin) after it ends.
    pub fn set_sync_interval(&mut self, every: std::time::Duration) {
        self.complete_after_ms = every.as_millis() as i64 + COMPLETE_MARGIN_MS;
    }

    /// A place given here that the gate has not counted yet.
    pub fn give(&mut self, place: &Place) {
        match place {
            Place::Drawing { .. } | Place::Prequeue { .. } => {
                self.prequeue_pending += 1;
                self.prequeue_own += 1;
            }
            Place::Arrival { at_ms, .. } => {
                let b = bucket_of(*at_ms, self.opens_at_ms);
                if let Some(i) = self.slot(b) {
                    self.pending[i] += 1;
                    self.own[i] += 1;
                    self.invalidate(i);
                }
            }
        }
    }

    /// The gate has counted (or refused as duplicates) places given here:
    /// they leave the pending ones. `prequeued` and `arrivals` are what a
    /// sync carried.
    pub fn counted(&mut self, prequeued: u64, arrivals: &[u64]) {
        self.prequeue_pending = self.prequeue_pending.saturating_sub(prequeued);
        for bucket in arrivals {
            if let Some(i) = bucket.checked_sub(self.base).map(|i| i as usize).filter(|i| *i < self.pending.len()) {
                self.pending[i] = self.pending[i].saturating_sub(1);
                self.invalidate(i);
            }
        }
    }

    /// Takes in the gate's counts as a sync read them at `read_at_ms`: the
    /// pre-queue's, and the buckets from `from_bucket` on.
    pub fn read(&mut self, prequeued: u64, from_bucket: u64, arrivals: &[u64], read_at_ms: i64) {
        self.prequeued = prequeued;
        for (offset, n) in arrivals.iter().enumerate() {
            if let Some(i) = self.slot(from_bucket + offset as u64) {
                self.gate[i] = *n;
                self.invalidate(i);
            }
        }
        let complete = bucket_of(read_at_ms - self.complete_after_ms, self.opens_at_ms);
        // Every estimate may move: from the first bucket not complete before.
        self.invalidate(complete.min(self.complete_before).saturating_sub(self.base) as usize);
        self.complete_before = complete;
        self.scale = self.share_scale();
    }

    /// Drops the buckets before `bucket` (the served mark's, less a margin):
    /// no place before it waits any more.
    pub fn drop_before(&mut self, bucket: u64) {
        let n = bucket.saturating_sub(self.base).min(self.gate.len() as u64) as usize;
        if n == 0 {
            return;
        }
        self.dropped += (0..n).map(|i| self.count(i)).sum::<f64>();
        for v in [&mut self.gate, &mut self.pending, &mut self.own] {
            v.drain(..n);
        }
        self.base += n as u64;
        self.prefix = vec![0.0];
    }

    /// How many places are before the order key `key`, as this copy counts
    /// them (fractional: a bucket's places are spread by their shuffle).
    pub fn rank_of_key(&mut self, key: i64) -> f64 {
        let pre = self.prequeued() as f64;
        match Spot::of_key(key) {
            Spot::Prequeue { fraction } => fraction * pre,
            Spot::Arrival { bucket, fraction } => {
                let Some(i) = bucket.checked_sub(self.base).map(|i| i as usize) else {
                    return pre + self.dropped;
                };
                let len = self.gate.len();
                if i >= len {
                    return pre + self.dropped + self.before(len);
                }
                pre + self.dropped + self.before(i) + fraction * self.count(i)
            }
        }
    }

    /// The rank of a place.
    pub fn rank(&mut self, place: &Place) -> f64 {
        self.rank_of_key(place.order_key(self.opens_at_ms))
    }

    /// The index of bucket `b`, growing the window to hold it; `None` before
    /// the base or past [`MAX_BUCKETS`].
    fn slot(&mut self, b: u64) -> Option<usize> {
        let i = b.checked_sub(self.base)?;
        if i >= MAX_BUCKETS {
            return None;
        }
        let i = i as usize;
        if i >= self.gate.len() {
            for v in [&mut self.gate, &mut self.pending, &mut self.own] {
                v.resize(i + 1, 0);
            }
        }
        Some(i)
    }

    fn invalidate(&mut self, i: usize) {
        self.prefix.truncate(i + 1);
    }

    /// Places in buckets `base .. base + i`.
    fn before(&mut self, i: usize) -> f64 {
        while self.prefix.len() <= i {
            let j = self.prefix.len() - 1;
            let next = self.prefix[j] + self.count(j);
            self.prefix.push(next);
        }
        self.prefix[i]
    }

    /// The places in the bucket at index `i`: the gate's count and what is
    /// given here on top, or while the bucket is not complete at the gate,
    /// the estimate from this environment's share if that is more.
    fn count(&self, i: usize) -> f64 {
        let known = (self.gate[i] + self.pending[i]) as f64;
        if self.base + (i as u64) < self.complete_before {
            return known;
        }
        known.max(self.own[i] as f64 * self.scale)
    }

    /// The gate's places over this environment's, in the complete buckets
    /// it gave places in (else in the pre-queue; else 1).
    fn share_scale(&self) -> f64 {
        let complete = self.complete_before.saturating_sub(self.base).min(self.gate.len() as u64) as usize;
        let (mut all, mut mine) = (0u64, 0u64);
        for i in 0..complete {
            if self.own[i] > 0 {
                all += self.gate[i];
                mine += self.own[i];
            }
        }
        if mine == 0 {
            (all, mine) = (self.prequeued, self.prequeue_own);
        }
        if mine == 0 {
            1.0
        } else {
            (all as f64 / mine as f64).max(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: i64 = 1_800_000_000_000;

    fn arrival(offset_ms: i64, fraction: f64) -> Place {
        Place::Arrival { at_ms: OPEN + offset_ms - offset_ms % BUCKET_MS, shuffle: (fraction * 4_294_967_296.0) as u32 }
    }

    #[test]
    fn ranks_are_the_places_before_a_place_from_the_gates_counts() {
        let mut c = LineCounts::new(OPEN);
        c.read(100, 0, &[10, 20, 30], OPEN + 60_000);
        assert_eq!(c.rank(&Place::Prequeue { shuffle: u64::MAX / 2 }).round(), 50.0);
        assert_eq!(c.rank(&arrival(0, 0.0)), 100.0);
        assert_eq!(c.rank(&arrival(150, 0.5)), 120.0);
        assert_eq!(c.rank(&arrival(9_000, 0.0)), 160.0, "past the counts: after everyone counted");
    }

    #[test]
    fn a_place_given_here_counts_at_once_and_once_the_gate_counted_it_it_is_not_counted_twice() {
        let mut c = LineCounts::new(OPEN);
        c.read(0, 0, &[5], OPEN + 60_000);
        let mine = arrival(0, 0.99);
        c.give(&mine);
        assert_eq!(c.rank(&arrival(100, 0.0)), 6.0);
        c.counted(0, &[0]);
        c.read(0, 0, &[6], OPEN + 61_000);
        assert_eq!(c.rank(&arrival(100, 0.0)), 6.0);
    }

    #[test]
    fn a_recent_bucket_is_estimated_from_this_environments_share() {
        let mut c = LineCounts::new(OPEN);
        // Complete buckets: this environment gave 1 of every 10 places.
        for _ in 0..3 {
            c.give(&arrival(0, 0.1));
        }
        c.counted(0, &[0, 0, 0]);
        c.read(0, 0, &[30], OPEN + 10_000);
        // A bucket at 9.5 s, not complete at the gate: 2 given here, 4 counted so far.
        let recent = 9_500;
        c.give(&arrival(recent, 0.1));
        c.give(&arrival(recent, 0.2));
        c.counted(0, &[95, 95]);
        c.read(0, 95, &[4], OPEN + 10_000);
        let after = c.rank(&arrival(recent + 100, 0.0)) - c.rank(&arrival(recent, 0.0));
        assert_eq!(after, 20.0, "2 places here at a share of one in ten");
    }

    #[test]
    fn the_prequeue_gives_the_share_before_any_arrival_bucket_is_complete() {
        let mut c = LineCounts::new(OPEN);
        c.give(&Place::Prequeue { shuffle: 1 });
        c.counted(1, &[]);
        c.read(4, 0, &[], OPEN + 500);
        c.give(&arrival(200, 0.5));
        assert_eq!(c.rank(&arrival(300, 0.0)) - c.rank(&arrival(0, 0.0)), 4.0, "one place here, one in four");
    }

    #[test]
    fn dropping_passed_buckets_keeps_ranks_and_memory_is_bounded() {
        let mut c = LineCounts::new(OPEN);
        c.read(10, 0, &[1; 100], OPEN + 60_000);
        let before = c.rank(&arrival(5_000, 0.0));
        c.drop_before(40);
        assert_eq!(c.base(), 40);
        assert_eq!(c.rank(&arrival(5_000, 0.0)), before, "an absolute rank");
        assert_eq!(c.rank(&arrival(1_000, 0.0)), 50.0, "a dropped bucket ranks at the base");
        // A day after the opening, one fan: the window does not reach back to the opening.
        let day = 86_400_000;
        c.drop_before(bucket_of(OPEN + day - 10_000, OPEN));
        c.give(&arrival(day, 0.5));
        assert!(c.end() - c.base() <= 101, "{} buckets held", c.end() - c.base());
        c.give(&arrival(day + (MAX_BUCKETS as i64 + 5) * BUCKET_MS, 0.5));
        assert!(c.end() - c.base() <= MAX_BUCKETS);
    }
}
