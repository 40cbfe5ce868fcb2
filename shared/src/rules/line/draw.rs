//! The pre-queue's draw as anyone can check it: a commitment to the
//! event's seed published before the pre-queue opens, and after the
//! opening a reveal (the seed and every pre-queued fan with its index)
//! from which the whole order is recomputed.
//!
//! - A fan appears only as its **fan reference**, [`fan_ref`]: an 8-byte
//!   hash of the fan id keyed by the seed (the same hash the gate counts
//!   each fan by). The seed is the salt, so the reveal shows no fan id, and
//!   once the seed is revealed each fan finds its own row.
//! - A pre-queued fan's **draw key**, [`draw_key`], is a hash of the seed,
//!   the event and its fan reference. The draw orders the pre-queue by it
//!   (ties, which need two equal 64-bit hashes, by the reference), and the
//!   line's pre-queue places are exactly these keys
//!   ([`super::place_for`]).
//! - The **commitment**, [`commitment`], is a SHA-256 of the seed. A seed
//!   that does not hash to it is not the one the event committed to.
//!
//! [`Reveal::check`] recomputes everything a reveal claims, and names the
//! first thing that does not hold.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A fan as the draw shows it: an 8-byte hash of its id, keyed by the seed.
pub type FanRef = [u8; 8];

/// The commitment to a seed: hex SHA-256 of it, domain-separated.
pub fn commitment(seed: &str) -> String {
    hex(&Sha256::digest([b"fanrush/draw-commitment\0".as_slice(), seed.as_bytes()].concat()))
}

/// A fan's reference in an event's draw (and the gate's count of it).
pub fn fan_ref(seed: &[u8], event: &str, fan: &str) -> FanRef {
    super::fan_hash(seed, event, fan)
}

/// A fan's key in the draw: where it stands in the pre-queue.
pub fn draw_key(seed: &[u8], event: &str, fan: &FanRef) -> u64 {
    let digest =
        Sha256::digest([b"fanrush/draw\0".as_slice(), seed, b"\0", event.as_bytes(), b"\0", fan.as_slice()].concat());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// `fans` (each once) in the pre-queue's order, with their draw keys.
pub fn order(seed: &[u8], event: &str, fans: impl IntoIterator<Item = FanRef>) -> Vec<(u64, FanRef)> {
    let mut keyed: Vec<(u64, FanRef)> = fans.into_iter().map(|f| (draw_key(seed, event, &f), f)).collect();
    keyed.sort_unstable();
    keyed.dedup();
    keyed
}

/// The draw of `fans` as a reveal lists it: [`order`], indexed.
pub fn draw(seed: &[u8], event: &str, fans: impl IntoIterator<Item = FanRef>) -> Vec<RevealRow> {
    order(seed, event, fans)
        .into_iter()
        .enumerate()
        .map(|(index, (key, fan))| RevealRow { index: index as u64, fan: hex(&fan), key: format!("{key:016x}") })
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
}

/// What an event publishes once its pre-queue is drawn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reveal {
    pub event_id: String,
    pub commitment: String,
    pub seed: String,
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
}

impl Reveal {
    /// Checks the reveal against the commitment the event published before
    /// its pre-queue: the seed hashes to it, every row's key is recomputed
    /// from the seed and its fan, and the rows are in the keys' order with
    /// their indexes counting from 0 (so no fan is listed twice).
    pub fn check(&self, event: &str, committed: &str) -> Result<(), Discrepancy> {
        if self.event_id != event {
            return Err(Discrepancy::OtherEvent { expected: event.into(), found: self.event_id.clone() });
        }
        let computed = commitment(&self.seed);
        for claimed in [committed, self.commitment.as_str()] {
            if claimed != computed {
                return Err(Discrepancy::Commitment { committed: claimed.into(), computed });
            }
        }
        let mut before: Option<(u64, FanRef)> = None;
        for (row, r) in self.fans.iter().enumerate() {
            if r.index != row as u64 {
                return Err(Discrepancy::Index { row, index: r.index });
            }
            let fan = parse_ref(&r.fan).ok_or_else(|| Discrepancy::FanRef { index: r.index, fan: r.fan.clone() })?;
            let key = draw_key(self.seed.as_bytes(), event, &fan);
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

    fn reveal(fans: usize) -> Reveal {
        let refs = (0..fans).map(|i| fan_ref(SEED.as_bytes(), EVENT, &format!("fan-{i}")));
        Reveal {
            event_id: EVENT.into(),
            commitment: commitment(SEED),
            seed: SEED.into(),
            fans: draw(SEED.as_bytes(), EVENT, refs),
        }
    }

    #[test]
    fn an_honest_reveal_checks_and_every_fan_finds_its_row() {
        let r = reveal(50);
        assert_eq!(r.check(EVENT, &commitment(SEED)), Ok(()));
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
        assert!(matches!(r.check(EVENT, &commitment(SEED)), Err(Discrepancy::Order { index: 4, .. })));
        // Swapping only the fans (keys left in order) fails on the key.
        let mut r = reveal(20);
        let (a, b) = (r.fans[3].fan.clone(), r.fans[7].fan.clone());
        (r.fans[3].fan, r.fans[7].fan) = (b, a);
        assert!(matches!(r.check(EVENT, &commitment(SEED)), Err(Discrepancy::Key { index: 3, .. })));
    }

    #[test]
    fn a_seed_that_does_not_match_the_commitment_fails() {
        let r = reveal(5);
        let other = Reveal { seed: "another-seed".into(), ..r.clone() };
        assert!(matches!(other.check(EVENT, &commitment(SEED)), Err(Discrepancy::Commitment { .. })));
        // The reveal's own commitment is checked against the published one too.
        assert!(matches!(r.check(EVENT, &commitment("another-seed")), Err(Discrepancy::Commitment { .. })));
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
        assert!(matches!(r.check(EVENT, &commitment(SEED)), Err(Discrepancy::Order { index: 3, .. })));
        let mut r = reveal(5);
        r.fans[4].index = 5;
        assert_eq!(r.check(EVENT, &commitment(SEED)), Err(Discrepancy::Index { row: 4, index: 5 }));
    }

    #[test]
    fn the_reveal_of_another_event_fails() {
        assert!(matches!(reveal(3).check("other", &commitment(SEED)), Err(Discrepancy::OtherEvent { .. })));
    }

    #[test]
    fn fan_references_round_trip_and_garbage_is_refused() {
        let f = fan_ref(SEED.as_bytes(), EVENT, "x");
        assert_eq!(parse_ref(&hex(&f)), Some(f));
        assert_eq!(parse_ref("zz"), None);
        assert_eq!(parse_ref("zzzzzzzzzzzzzzzz"), None);
    }
}
