//! Receipts: what an admitted fan holds to prove its place, signed with
//! Ed25519 so that anyone can check one with fanrush's published key and
//! no secret (a ticket's HMAC can be checked only by fanrush).
//!
//! A receipt names the event, the fan by its reference in the draw
//! ([`super::draw::fan_ref`]: no fan id), its position among the admitted
//! and when it was accepted, and for an event with a pre-queue the fan's
//! draw key, which fixes its index in the published draw. The signature
//! covers all of them and the key's id, over a fixed text
//! ([`Receipt::signed_text`]).
//!
//! Keys rotate as the ticket keys do (Secrets Manager's `AWSCURRENT` and
//! `AWSPREVIOUS`): the current key signs; the published keys are the
//! current and the previous one, each named by its id. A receipt names its
//! key by id, so a key kept from when it was issued checks it after any
//! number of rotations.

use super::draw::hex;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use thiserror::Error;

const SIGNED: &str = "fanrush/receipt/v1";

/// Why a receipt does not check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReceiptError {
    #[error("the receipt names key {0}, which is not among the published keys")]
    UnknownKey(String),
    #[error(
        "the receipt's signature does not match its contents under key {0}: it was edited, or signed by another key"
    )]
    BadSignature(String),
    #[error("the receipt is malformed: {0}")]
    Malformed(&'static str),
}

/// A signing key: the Ed25519 key pair derived from a secret, and its id.
pub struct ReceiptKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl ReceiptKey {
    /// The key a secret stands for: its Ed25519 seed is a SHA-256 of the
    /// secret, so any secret string (Secrets Manager's generated ones) is a
    /// key, and the same secret is the same key in every environment.
    pub fn from_secret(secret: &[u8]) -> Self {
        let seed = Sha256::digest([b"fanrush/receipt-key\0".as_slice(), secret].concat());
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are an Ed25519 seed");
        let id = key_id(pair.public_key().as_ref());
        Self { pair, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public half, as it is published.
    pub fn published(&self) -> PublishedKey {
        PublishedKey {
            key_id: self.id.clone(),
            algorithm: "Ed25519".into(),
            public_key: URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
        }
    }

    /// Signs what a receipt says.
    pub fn sign(&self, claims: ReceiptClaims) -> Receipt {
        let mut receipt = Receipt { claims, key_id: self.id.clone(), signature: String::new() };
        receipt.signature = URL_SAFE_NO_PAD.encode(self.pair.sign(receipt.signed_text().as_bytes()).as_ref());
        receipt
    }
}

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptKey({})", self.id)
    }
}

/// A key's id: the first 8 bytes of a SHA-256 of its public half, in hex.
fn key_id(public: &[u8]) -> String {
    hex(&Sha256::digest(public)[..8])
}

/// The keys receipts are signed and checked with: the current one signs,
/// both are published.
#[derive(Debug)]
pub struct ReceiptKeys {
    pub current: ReceiptKey,
    pub previous: Option<ReceiptKey>,
}

impl ReceiptKeys {
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Self {
        Self { current: ReceiptKey::from_secret(current), previous: previous.map(ReceiptKey::from_secret) }
    }

    /// The published keys: the current one first.
    pub fn published(&self) -> Vec<PublishedKey> {
        std::iter::once(&self.current).chain(&self.previous).map(ReceiptKey::published).collect()
    }
}

/// A published public key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedKey {
    pub key_id: String,
    pub algorithm: String,
    /// The 32-byte Ed25519 public key, base64url without padding.
    pub public_key: String,
}

/// What a receipt says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptClaims {
    pub event_id: String,
    /// The fan's reference in the event's draw (16 hex digits).
    pub fan: String,
    /// Its position among the event's admitted fans, from 1.
    pub position: i64,
    /// When its entry was accepted (RFC 3339).
    pub accepted_at: String,
    /// Its draw key (16 hex digits), for an event with a pre-queue: the
    /// index of the row with this key in the published draw is the fan's
    /// place in the pre-queue, if it joined before the opening.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub draw_key: Option<String>,
}

/// A signed receipt, as the fan API answers it and `fanrush verify-draw
/// --receipt` reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    #[serde(flatten)]
    pub claims: ReceiptClaims,
    pub key_id: String,
    /// Ed25519 over [`Receipt::signed_text`], base64url without padding.
    pub signature: String,
}

impl Receipt {
    /// The text the signature covers: a version line, then each field on
    /// its own line (an absent draw key is an empty line).
    pub fn signed_text(&self) -> String {
        let c = &self.claims;
        format!(
            "{SIGNED}\n{}\n{}\n{}\n{}\n{}\n{}",
            c.event_id,
            c.fan,
            c.position,
            c.accepted_at,
            c.draw_key.as_deref().unwrap_or(""),
            self.key_id
        )
    }

    /// Checks the signature with the published key the receipt names.
    pub fn verify(&self, keys: &[PublishedKey]) -> Result<(), ReceiptError> {
        let key = keys
            .iter()
            .find(|k| k.key_id == self.key_id)
            .ok_or_else(|| ReceiptError::UnknownKey(self.key_id.clone()))?;
        let public = URL_SAFE_NO_PAD.decode(&key.public_key).map_err(|_| ReceiptError::Malformed("public key"))?;
        if key_id(&public) != key.key_id {
            return Err(ReceiptError::Malformed("a published key whose id is not its own"));
        }
        let signature = URL_SAFE_NO_PAD.decode(&self.signature).map_err(|_| ReceiptError::Malformed("signature"))?;
        UnparsedPublicKey::new(&ED25519, &public)
            .verify(self.signed_text().as_bytes(), &signature)
            .map_err(|_| ReceiptError::BadSignature(self.key_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ReceiptClaims {
        ReceiptClaims {
            event_id: "show".into(),
            fan: "0011223344556677".into(),
            position: 12,
            accepted_at: "2026-12-07T10:00:00.123Z".into(),
            draw_key: Some("8899aabbccddeeff".into()),
        }
    }

    #[test]
    fn a_receipt_checks_with_the_published_key_and_survives_json() {
        let keys = ReceiptKeys::new(b"current", Some(b"previous"));
        let receipt = keys.current.sign(claims());
        let text = serde_json::to_string(&receipt).unwrap();
        let read: Receipt = serde_json::from_str(&text).unwrap();
        assert_eq!(read.verify(&keys.published()), Ok(()));
    }

    #[test]
    fn an_edited_place_fails() {
        let keys = ReceiptKeys::new(b"current", None);
        let mut receipt = keys.current.sign(claims());
        receipt.claims.position = 1;
        assert!(matches!(receipt.verify(&keys.published()), Err(ReceiptError::BadSignature(_))));
        let mut receipt = keys.current.sign(claims());
        receipt.claims.draw_key = Some("0000000000000000".into());
        assert!(matches!(receipt.verify(&keys.published()), Err(ReceiptError::BadSignature(_))));
    }

    #[test]
    fn a_receipt_signed_by_another_key_fails() {
        let ours = ReceiptKeys::new(b"current", None);
        let theirs = ReceiptKey::from_secret(b"someone else's");
        let forged = theirs.sign(claims());
        assert_eq!(forged.verify(&ours.published()), Err(ReceiptError::UnknownKey(theirs.id().into())));
        // Relabelled with our key's id, the signature does not match.
        let relabelled = Receipt { key_id: ours.current.id().into(), ..forged };
        assert!(matches!(relabelled.verify(&ours.published()), Err(ReceiptError::BadSignature(_))));
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_checks_old_receipts() {
        let before = ReceiptKeys::new(b"k1", None);
        let old = before.current.sign(claims());
        let after = ReceiptKeys::new(b"k2", Some(b"k1"));
        assert_eq!(old.verify(&after.published()), Ok(()));
        let twice = ReceiptKeys::new(b"k3", Some(b"k2"));
        assert!(matches!(old.verify(&twice.published()), Err(ReceiptError::UnknownKey(_))));
        // A key set kept from when it was issued still checks it.
        assert_eq!(old.verify(&before.published()), Ok(()));
    }

    #[test]
    fn the_same_secret_is_the_same_key_everywhere() {
        assert_eq!(ReceiptKey::from_secret(b"s").published(), ReceiptKey::from_secret(b"s").published());
        assert_ne!(ReceiptKey::from_secret(b"s").id(), ReceiptKey::from_secret(b"t").id());
    }
}
