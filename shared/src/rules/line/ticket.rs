//! Tickets: a fan's place in an event's line, held by the fan and signed by
//! fanrush, so joining and waiting cost the gate's Redis nothing.
//!
//! A ticket is 38 bytes, base64url without padding (51 characters):
//! version, the [`Place`], when it was issued and which key signed it, then
//! the first 16 bytes of an HMAC-SHA256 over all of that *and* the event
//! and the fan. The event and the fan are not in the ticket; they are
//! taken from the request, so another fan's ticket, or one for another
//! event, fails the MAC exactly as a tampered or forged one does.
//!
//! Keys rotate without throwing out fans already waiting: a ticket names its
//! key by a 4-byte id, and [`TicketKeys`] verifies with the current key and
//! the previous one (Secrets Manager's `AWSCURRENT` and `AWSPREVIOUS`).
//! Every answer to a waiting fan re-issues its ticket with the current key,
//! so after a rotation a fan that keeps polling moves onto the new key.

use super::Place;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::time::Duration;
use thiserror::Error;

/// How long a ticket holds its place after it was issued. Every answer
/// renews it, so only a fan that stopped polling for this long loses its
/// place; it is far above the longest `Retry-After` the line sets.
pub const TICKET_TTL: Duration = Duration::from_secs(30 * 60);

const VERSION: u8 = 1;
const BODY: usize = 22;
const MAC: usize = 16;
const DOMAIN: &[u8] = b"fanrush/line-ticket/v1\0";

type HmacSha256 = Hmac<Sha256>;

/// Why a ticket was refused. None of them admits anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TicketError {
    /// Not a ticket at all (not base64url, wrong length or version).
    #[error("the ticket is malformed")]
    Malformed,
    /// Signed by a key this process does not hold (yet): a rotation it has
    /// not seen, or a key retired two rotations ago.
    #[error("the ticket was signed by a key that is not current or previous")]
    UnknownKey,
    /// The MAC does not match: tampered, forged, or another fan's or another
    /// event's ticket.
    #[error("the ticket is not valid for this fan and event")]
    Forged,
    #[error("the ticket has expired; join the line again")]
    Expired,
}

/// One signing key and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    id: [u8; 4],
    secret: Vec<u8>,
}

impl TicketKey {
    pub fn new(secret: &[u8]) -> Self {
        let digest = Sha256::digest([b"fanrush/line-key-id\0".as_slice(), secret].concat());
        Self { id: [digest[0], digest[1], digest[2], digest[3]], secret: secret.to_vec() }
    }

    fn mac(&self, event: &str, fan: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        for part in [DOMAIN, event.as_bytes(), b"\0", fan.as_bytes(), b"\0", body] {
            mac.update(part);
        }
        mac
    }
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketKey({:02x?}, <redacted>)", self.id)
    }
}

/// The keys a process signs and verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKeys {
    pub current: TicketKey,
    pub previous: Option<TicketKey>,
}

impl TicketKeys {
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Self {
        let previous = previous.filter(|p| *p != current).map(TicketKey::new);
        Self { current: TicketKey::new(current), previous }
    }

    fn by_id(&self, id: &[u8]) -> Option<&TicketKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).find(|k| k.id == id)
    }
}

/// A verified ticket: a place, and when it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub place: Place,
    /// Unix seconds.
    pub issued_at_s: i64,
}

impl Ticket {
    /// The ticket as the fan carries it, signed with the current key for
    /// this event and fan.
    pub fn encode(&self, keys: &TicketKeys, event: &str, fan: &str) -> String {
        let mut raw = [0u8; BODY + MAC];
        raw[0] = VERSION;
        // The place's kind: 0 a drawn pre-queue key, 1 an arrival, 2 a
        // place still drawing (the fan's reference). An arrival's ticket is
        // as it always was, so one issued before a deploy holds after it.
        let (kind, key, tie) = match self.place {
            Place::Prequeue { shuffle } => (0u8, shuffle, 0u32),
            Place::Drawing { fan } => (2u8, u64::from_be_bytes(fan), 0u32),
            Place::Arrival { at_ms, shuffle } => (1u8, at_ms.max(0) as u64, shuffle),
        };
        raw[1] = kind;
        raw[2..10].copy_from_slice(&key.to_be_bytes());
        raw[10..14].copy_from_slice(&tie.to_be_bytes());
        raw[14..18].copy_from_slice(&(self.issued_at_s.clamp(0, u32::MAX as i64) as u32).to_be_bytes());
        raw[18..22].copy_from_slice(&keys.current.id);
        let tag = keys.current.mac(event, fan, &raw[..BODY]).finalize().into_bytes();
        raw[BODY..].copy_from_slice(&tag[..MAC]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Verifies a ticket for this event and fan at `now_s` (Unix seconds).
    pub fn verify(text: &str, keys: &TicketKeys, event: &str, fan: &str, now_s: i64) -> Result<Self, TicketError> {
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| TicketError::Malformed)?;
        if raw.len() != BODY + MAC || raw[0] != VERSION || raw[1] > 2 {
            return Err(TicketError::Malformed);
        }
        let key = keys.by_id(&raw[18..22]).ok_or(TicketError::UnknownKey)?;
        key.mac(event, fan, &raw[..BODY]).verify_truncated_left(&raw[BODY..]).map_err(|_| TicketError::Forged)?;
        let word = |r: std::ops::Range<usize>| raw[r].iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let (key_value, tie, issued_at_s) = (word(2..10), word(10..14) as u32, word(14..18) as i64);
        let place = match raw[1] {
            0 => Place::Prequeue { shuffle: key_value },
            2 => Place::Drawing { fan: key_value.to_be_bytes() },
            _ => Place::Arrival { at_ms: key_value as i64, shuffle: tie },
        };
        if now_s - issued_at_s > TICKET_TTL.as_secs() as i64 {
            return Err(TicketError::Expired);
        }
        Ok(Self { place, issued_at_s })
    }

    /// When a well-formed ticket says it was issued, *unverified*: for a
    /// ticket whose key this process does not hold, only to tell "signed
    /// before the keys were last read from Secrets Manager" (so the key is
    /// retired or never was) from "signed since" (perhaps by a rotation not
    /// read yet). Nothing is granted on it.
    pub fn claimed_issued_at(text: &str) -> Option<i64> {
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        (raw.len() == BODY + MAC && raw[0] == VERSION)
            .then(|| raw[14..18].iter().fold(0i64, |n, b| n << 8 | i64::from(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TicketKeys {
        TicketKeys::new(b"k1-secret", None)
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_ticket_round_trips_for_its_fan_and_event() {
        for place in [
            Place::Prequeue { shuffle: u64::MAX - 7 },
            Place::Drawing { fan: [1, 2, 3, 4, 5, 6, 7, 8] },
            Place::Arrival { at_ms: 1_799_999_999_900, shuffle: 42 },
        ] {
            let t = Ticket { place, issued_at_s: NOW };
            let text = t.encode(&keys(), "gig", "auth0|abc");
            assert_eq!(text.len(), 51);
            assert_eq!(Ticket::verify(&text, &keys(), "gig", "auth0|abc", NOW + 5), Ok(t));
        }
    }

    #[test]
    fn another_fans_or_events_ticket_a_tampered_or_forged_one_is_refused() {
        let text = Ticket { place: Place::Arrival { at_ms: 5_000, shuffle: 1 }, issued_at_s: NOW }.encode(
            &keys(),
            "gig",
            "fan-a",
        );
        assert_eq!(Ticket::verify(&text, &keys(), "gig", "fan-b", NOW), Err(TicketError::Forged));
        assert_eq!(Ticket::verify(&text, &keys(), "other", "fan-a", NOW), Err(TicketError::Forged));
        // Every single bit flipped in the body is caught (an earlier place, a later issue time...).
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        for byte in 1..BODY + MAC {
            for bit in 0..8 {
                let mut tampered = raw.clone();
                tampered[byte] ^= 1 << bit;
                let r = Ticket::verify(&URL_SAFE_NO_PAD.encode(&tampered), &keys(), "gig", "fan-a", NOW);
                assert!(r.is_err(), "byte {byte} bit {bit} accepted");
            }
        }
        let forged = Ticket { place: Place::Prequeue { shuffle: 0 }, issued_at_s: NOW }.encode(
            &TicketKeys::new(b"attacker", None),
            "gig",
            "fan-a",
        );
        assert_eq!(Ticket::verify(&forged, &keys(), "gig", "fan-a", NOW), Err(TicketError::UnknownKey));
        assert_eq!(Ticket::claimed_issued_at(&forged), Some(NOW), "what it claims, unverified");
        assert_eq!(Ticket::claimed_issued_at("not a ticket"), None);
        for junk in ["", "not a ticket", "AAAA", &"A".repeat(51)] {
            assert_eq!(Ticket::verify(junk, &keys(), "gig", "fan-a", NOW), Err(TicketError::Malformed), "{junk:?}");
        }
    }

    #[test]
    fn a_ticket_expires_and_survives_one_rotation() {
        let t = Ticket { place: Place::Prequeue { shuffle: 9 }, issued_at_s: NOW };
        let text = t.encode(&keys(), "gig", "fan");
        let late = NOW + TICKET_TTL.as_secs() as i64 + 1;
        assert_eq!(Ticket::verify(&text, &keys(), "gig", "fan", late), Err(TicketError::Expired));
        let rotated = TicketKeys::new(b"k2-secret", Some(b"k1-secret"));
        assert_eq!(Ticket::verify(&text, &rotated, "gig", "fan", NOW), Ok(t), "the previous key still verifies");
        let twice = TicketKeys::new(b"k3-secret", Some(b"k2-secret"));
        assert_eq!(Ticket::verify(&text, &twice, "gig", "fan", NOW), Err(TicketError::UnknownKey));
        // Re-issued after the rotation, it is signed with the new key.
        let renewed = t.encode(&rotated, "gig", "fan");
        assert_eq!(Ticket::verify(&renewed, &twice, "gig", "fan", NOW), Ok(t));
        assert!(!format!("{rotated:?}").contains("k2-secret"), "keys never print");
    }
}
