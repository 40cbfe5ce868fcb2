//! The pre-queue's draw as anyone can check it: a commitment to the
//! event's seed published before the pre-queue opens, a digest of who is
//! in the draw published when it is sealed, and after the opening a reveal
//! (the seed and every pre-queued fan with its index) from which the whole
//! order is recomputed.
//!
//! - A fan appears only as its **fan reference**, [`fan_ref`]: an 8-byte
//!   hash of the fan id keyed by the seed (the same hash the gate counts
//!   each fan by). The seed is the salt, so the reveal shows no fan id, and
//!   once the seed is revealed each fan finds its own row.
//! - The draw **closes** [`CLOSES_BEFORE`] the opening: a fan who joins
//!   later is not in it, and arrives at the opening ([`super::place_for`]).
//!   The gate **seals** it [`SEALED_BEFORE`] the opening, once every
//!   environment has counted the joins it gave before the close: the
//!   **digest**, [`digest`], is a SHA-1 of the fan references in the order
//!   the gate counted them.
//! - A pre-queued fan's **draw key**, [`draw_key`], is a hash of the seed,
//!   the event, the digest and its fan reference. The draw orders the
//!   pre-queue by it (ties, which need two equal 64-bit hashes, by the
//!   reference), and the line's pre-queue places are exactly these keys.
//!   As the digest depends on every fan in the draw, nobody (the operator,
//!   who knows the seed, included) can compute a fan's key, or choose fan
//!   ids that land in front, before the draw closes.
//! - The **commitment**, [`commitment`], is a SHA-256 of the seed. A seed
//!   that does not hash to it is not the one the event committed to.
//!
//! [`Reveal::check`] recomputes everything a reveal claims, and names the
//! first thing that does not hold.

use sha2::{Digest, Sha256};
use std::time::Duration;
use thiserror::Error;

/// A fan as the draw shows it: an 8-byte hash of its id, keyed by the seed.
pub type FanRef = [u8; 8];

/// How long before the opening the draw closes: a fan who joins later
/// arrives at the opening. The gate seals the draw [`SEAL_DELAY`] later,
/// and every environment learns the digest before the pre-queue's turns
/// ([`super::progress::PREQUEUE_CALL`]) at its next request: this leaves
/// some eight seconds for that.
pub const CLOSES_BEFORE: Duration = Duration::from_secs(45);

/// How long after the close the gate seals the draw: the longest an
/// environment waits between syncs ([`super::SYNC_EVERY_MOST`]) and the
/// margin for the sync's own call ([`super::counts::COMPLETE_MARGIN_MS`]),
/// so every join given before the close was counted by then.
pub const SEAL_DELAY: Duration = Duration::from_secs(super::SYNC_EVERY_MOST.as_secs() + 2);

/// How long before the opening the draw is sealed.
pub const SEALED_BEFORE: Duration = Duration::from_secs(CLOSES_BEFORE.as_secs() - SEAL_DELAY.as_secs());

/// When the draw of an event opening at `opens_at_ms` closes, and when it
/// is sealed (Unix ms).
pub fn closes_at(opens_at_ms: i64) -> i64 {
    opens_at_ms - CLOSES_BEFORE.as_millis() as i64
}

pub fn sealed_at(opens_at_ms: i64) -> i64 {
    opens_at_ms - SEALED_BEFORE.as_millis() as i64
}

/// Whether a line joinable from `joinable_from_ms` has a draw: a pre-queue
/// that opens before the draw closes.
pub fn has_draw(joinable_from_ms: i64, opens_at_ms: i64) -> bool {
    joinable_from_ms < closes_at(opens_at_ms)
}

/// The digest of the fans in a draw, in the order the gate counted them:
/// hex SHA-1 of their references one after the other. SHA-1 because it is
/// the hash a Redis script has (`redis.sha1hex`), so the gate seals the
/// draw in one step; its known weakness (collisions) buys no place, as a
/// fan's key depends on the digest and its own reference alone.
pub fn digest<'a>(fans: impl IntoIterator<Item = &'a FanRef>) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for fan in fans {
        context.update(fan);
    }
    hex(context.finish().as_ref())
}

/// The commitment to a seed: hex SHA-256 of it, domain-separated.
pub fn commitment(seed: &str) -> String {
    hex(&Sha256::digest([b"fanrush/draw-commitment\0".as_slice(), seed.as_bytes()].concat()))
}

/// A fan's reference in an event's draw (and the gate's count of it).
pub fn fan_ref(seed: &[u8], event: &str, fan: &str) -> FanRef {
    super::fan_hash(seed, event, fan)
}

/// A fan's key in the draw sealed with `digest`: where it stands in the
/// pre-queue.
pub fn draw_key(seed: &[u8], event: &str, digest: &str, fan: &FanRef) -> u64 {
    let hash = Sha256::digest(
        [b"fanrush/draw\0".as_slice(), seed, b"\0", event.as_bytes(), b"\0", digest.as_bytes(), b"\0", fan].concat(),
    );
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// `fans` (in the order counted, each once) in the pre-queue's order, with
/// their draw keys and where each was counted.
pub fn order(seed: &[u8], event: &str, fans: &[FanRef]) -> Vec<(u64, FanRef, u64)> {
    let digest = digest(fans);
    let mut keyed: Vec<(u64, FanRef, u64)> =
        fans.iter().enumerate().map(|(i, f)| (draw_key(seed, event, &digest, f), *f, i as u64)).collect();
    keyed.sort_unstable();
    keyed
}

/// The draw of `fans` (in the order counted) as a reveal lists it:
/// [`order`], indexed.
pub fn draw(seed: &[u8], event: &str, fans: &[FanRef]) -> Vec<RevealRow> {
    order(seed, event, fans)
        .into_iter()
        .enumerate()
        .map(|(index, (key, fan, counted))| RevealRow {
            index: index as u64,
            fan: hex(&fan),
            key: format!("{key:016x}"),
            counted,
        })
        .collect()
}

/// One pre-queued fan in a reveal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevealRow {
    /// Its place in the pre-queue, from 0.
    pub index: u64,
    /// Its fan reference, 16 hex digits.
    pub fan: String,
    /// Its draw key, 16 hex digits.
    pub key: String,
    /// Where the gate counted it, from 0: the order the digest is taken in.
    pub counted: u64,
}

/// What an event publishes once its pre-queue is drawn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reveal {
    pub event_id: String,
    pub commitment: String,
    pub seed: String,
    /// The digest of the fans in the draw, sealed before the opening.
    pub digest: String,
    pub fans: Vec<RevealRow>,
}

/// The first thing a reveal, or a fan's row in it, gets wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Discrepancy {
    #[error("the revealed seed does not hash to the commitment {committed} (it hashes to {computed})")]
    Commitment { committed: String, computed: String },
    #[error("the reveal is for event {found}, not {expected}")]
    OtherEvent { expected: String, found: String },
    #[error("row {row} says index {index}")]
    Index { row: usize, index: u64 },
    #[error("row {index}: {fan} is not a fan reference")]
    FanRef { index: u64, fan: String },
    #[error("row {index}: fan {fan} has draw key {computed}, the reveal says {published}")]
    Key { index: u64, fan: String, published: String, computed: String },
    #[error("row {index}: fan {fan} is out of order: its key is not after the row before's")]
    Order { index: u64, fan: String },
    #[error("the rows' counted places are not each of 0 to {last} once")]
    Counted { last: u64 },
    #[error("the fans listed hash to the digest {computed}, the reveal says {published}")]
    Digest { published: String, computed: String },
    #[error("the reveal's digest {revealed} is not the one sealed before the opening, {sealed}")]
    Sealed { sealed: String, revealed: String },
}

impl Reveal {
    /// Checks the reveal against the commitment the event published before
    /// its pre-queue (and the digest it published when the draw was
    /// sealed, if one was seen): the seed hashes to the commitment, the
    /// fans in the order counted hash to the digest, every row's key is
    /// recomputed from the seed, the digest and its fan, and the rows are
    /// in the keys' order with their indexes counting from 0 (so no fan is
    /// listed twice).
    pub fn check(&self, event: &str, committed: &str, sealed: Option<&str>) -> Result<(), Discrepancy> {
        if self.event_id != event {
            return Err(Discrepancy::OtherEvent { expected: event.into(), found: self.event_id.clone() });
        }
        let computed = commitment(&self.seed);
        for claimed in [committed, self.commitment.as_str()] {
            if claimed != computed {
                return Err(Discrepancy::Commitment { committed: claimed.into(), computed });
            }
        }
        if let Some(sealed) = sealed.filter(|s| *s != self.digest) {
            return Err(Discrepancy::Sealed { sealed: sealed.into(), revealed: self.digest.clone() });
        }
        self.check_digest()?;
        let mut before: Option<(u64, FanRef)> = None;
        for (row, r) in self.fans.iter().enumerate() {
            if r.index != row as u64 {
                return Err(Discrepancy::Index { row, index: r.index });
            }
            let fan = parse_ref(&r.fan).ok_or_else(|| Discrepancy::FanRef { index: r.index, fan: r.fan.clone() })?;
            let key = draw_key(self.seed.as_bytes(), event, &self.digest, &fan);
            if format!("{key:016x}") != r.key {
                return Err(Discrepancy::Key {
                    index: r.index,
                    fan: r.fan.clone(),
                    published: r.key.clone(),
                    computed: format!("{key:016x}"),
                });
            }
            if before.is_some_and(|b| b >= (key, fan)) {
                return Err(Discrepancy::Order { index: r.index, fan: r.fan.clone() });
            }
            before = Some((key, fan));
        }
        Ok(())
    }

    /// The fans in the order counted hash to the digest.
    fn check_digest(&self) -> Result<(), Discrepancy> {
        let last = (self.fans.len() as u64).saturating_sub(1);
        let mut counted: Vec<Option<FanRef>> = vec![None; self.fans.len()];
        for r in &self.fans {
            let fan = parse_ref(&r.fan).ok_or_else(|| Discrepancy::FanRef { index: r.index, fan: r.fan.clone() })?;
            match counted.get_mut(r.counted as usize) {
                Some(slot @ None) => *slot = Some(fan),
                _ => return Err(Discrepancy::Counted { last }),
            }
        }
        let fans: Vec<FanRef> = counted.into_iter().flatten().collect();
        let computed = digest(&fans);
        if computed != self.digest {
            return Err(Discrepancy::Digest { published: self.digest.clone(), computed });
        }
        Ok(())
    }

    /// The row of the fan with this reference, if it was pre-queued.
    pub fn row_of(&self, fan: &FanRef) -> Option<&RevealRow> {
        let wanted = hex(fan);
        self.fans.iter().find(|r| r.fan == wanted)
    }
}

/// A fan reference from its 16 hex digits.
pub fn parse_ref(text: &str) -> Option<FanRef> {
    if text.len() != 16 {
        return None;
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "a-seed";
    const EVENT: &str = "show";

    fn refs(fans: usize) -> Vec<FanRef> {
        (0..fans).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("fan-{i}"))).collect()
    }

    fn reveal(fans: usize) -> Reveal {
        let refs = refs(fans);
        Reveal {
            event_id: EVENT.into(),
            commitment: commitment(SEED),
            seed: SEED.into(),
            digest: digest(&refs),
            fans: draw(SEED.as_bytes(), EVENT, &refs),
        }
    }

    #[test]
    fn an_honest_reveal_checks_and_every_fan_finds_its_row() {
        let r = reveal(50);
        assert_eq!(r.check(EVENT, &commitment(SEED), None), Ok(()));
        for i in 0..50 {
            assert!(r.row_of(&fan_ref(SEED.as_bytes(), EVENT, &format!("fan-{i}"))).is_some());
        }
        assert!(r.row_of(&fan_ref(SEED.as_bytes(), EVENT, "stranger")).is_none());
    }

    #[test]
    fn two_fans_swapped_fail_the_check() {
        let mut r = reveal(20);
        let (a, b) = (r.fans[3].clone(), r.fans[7].clone());
        // Swap the fans and their keys, keep the indexes: as a list edited
        // to put fan b where a was.
        r.fans[3] = RevealRow { index: 3, ..b };
        r.fans[7] = RevealRow { index: 7, ..a };
        // Row 3 now holds fan b's later key, so row 4 comes out of order.
        assert!(matches!(r.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Order { index: 4, .. })));
        // Swapping only the fans (keys left in order): the list no longer
        // hashes to the digest; with their counted places swapped too, it
        // does, and the key fails.
        let mut r = reveal(20);
        let (a, b) = (r.fans[3].fan.clone(), r.fans[7].fan.clone());
        (r.fans[3].fan, r.fans[7].fan) = (b, a);
        assert!(matches!(r.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Digest { .. })));
        (r.fans[3].counted, r.fans[7].counted) = (r.fans[7].counted, r.fans[3].counted);
        assert!(matches!(r.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Key { index: 3, .. })));
    }

    #[test]
    fn a_seed_that_does_not_match_the_commitment_fails() {
        let r = reveal(5);
        let other = Reveal { seed: "another-seed".into(), ..r.clone() };
        assert!(matches!(other.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Commitment { .. })));
        // The reveal's own commitment is checked against the published one too.
        assert!(matches!(r.check(EVENT, &commitment("another-seed"), None), Err(Discrepancy::Commitment { .. })));
    }

    #[test]
    fn a_fan_listed_twice_or_an_index_skipped_fails() {
        let mut r = reveal(5);
        let mut twice = r.fans[2].clone();
        twice.index = 3;
        r.fans.insert(3, twice);
        for (i, row) in r.fans.iter_mut().enumerate() {
            row.index = i as u64;
        }
        assert_eq!(r.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Counted { last: 5 }));
        let mut r = reveal(5);
        r.fans[4].index = 5;
        assert_eq!(r.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Index { row: 4, index: 5 }));
    }

    #[test]
    fn a_list_that_does_not_hash_to_the_sealed_digest_fails() {
        let r = reveal(10);
        assert_eq!(r.check(EVENT, &commitment(SEED), Some(&r.digest)), Ok(()));
        // A digest other than the one published at the seal.
        let sealed = digest(&refs(11));
        assert!(matches!(r.check(EVENT, &commitment(SEED), Some(&sealed)), Err(Discrepancy::Sealed { .. })));
        // A fan dropped from the list, its row's keys recomputed as an
        // honest draw of the rest would have them: the digest fails.
        let mut fewer = r.clone();
        let dropped = fewer.fans.iter().position(|row| row.counted == 9).unwrap();
        fewer.fans.remove(dropped);
        for (i, row) in fewer.fans.iter_mut().enumerate() {
            row.index = i as u64;
        }
        assert!(matches!(fewer.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Digest { .. })));
        // Two rows claiming the same counted place.
        let mut twice = r.clone();
        twice.fans[1].counted = twice.fans[0].counted;
        assert_eq!(twice.check(EVENT, &commitment(SEED), None), Err(Discrepancy::Counted { last: 9 }));
    }

    #[test]
    fn nobody_can_choose_a_fan_id_for_the_front_before_the_draw_closes() {
        // The operator knows the seed and picks, of 1,000 ids it could
        // register, the one with the best key it can compute without the
        // digest. Once the other fans' joins are in the digest, that id is
        // wherever chance puts it: here checked over many draws.
        let mut fronts = 0;
        for round in 0..200 {
            let candidates: Vec<FanRef> =
                (0..1_000).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("plant-{i}"))).collect();
            let guess = digest(&[] as &[FanRef]);
            let pick = *candidates.iter().min_by_key(|f| draw_key(SEED.as_bytes(), EVENT, &guess, f)).unwrap();
            let mut fans: Vec<FanRef> =
                (0..99).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("r{round}-fan-{i}"))).collect();
            fans.push(pick);
            let drawn = order(SEED.as_bytes(), EVENT, &fans);
            if drawn[..10].iter().any(|(_, f, _)| *f == pick) {
                fronts += 1;
            }
        }
        // In the front tenth about one draw in ten (20 of 200), not always.
        assert!((5..=45).contains(&fronts), "{fronts} of 200");
    }

    #[test]
    fn the_draw_closes_then_is_sealed_before_the_prequeues_turns() {
        let opens = 1_800_000_000_000;
        assert!(closes_at(opens) < sealed_at(opens));
        let call = super::super::progress::PREQUEUE_CALL.as_millis() as i64;
        assert!(sealed_at(opens) + 5_000 <= opens - call, "environments have seconds to learn the digest");
        assert!(has_draw(opens - 60_000, opens) && !has_draw(opens - 30_000, opens) && !has_draw(opens, opens));
    }

    #[test]
    fn the_reveal_of_another_event_fails() {
        assert!(matches!(reveal(3).check("other", &commitment(SEED), None), Err(Discrepancy::OtherEvent { .. })));
    }

    #[test]
    fn fan_references_round_trip_and_garbage_is_refused() {
        let f = fan_ref(SEED.as_bytes(), EVENT, "x");
        assert_eq!(parse_ref(&hex(&f)), Some(f));
        assert_eq!(parse_ref("zz"), None);
        assert_eq!(parse_ref("zzzzzzzzzzzzzzzz"), None);
    }
}
