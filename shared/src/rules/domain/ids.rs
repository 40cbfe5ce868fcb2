//! Validated identifiers. An `EventId` or `FanId` that exists has already
//! passed its rule, so adapters can store it without re-checking.
//!
//! A fan is the JWT `sub` exactly as its identity provider issued it. RFC
//! 7519 makes `sub` a StringOrURI, and providers use that freedom: Auth0
//! writes `auth0|5f7c8ec7c33c6c004bbafe82`, Cognito a UUID, Entra ID a
//! base64url string, some a URI. So a fan id is any string of
//! [`MAX_FAN_ID_BYTES`] bytes or fewer that holds no control character (NUL
//! cannot be stored in PostgreSQL's text; the others cannot be carried in a
//! header or a log line). Where an id must be a Redis key or part of a
//! human message, [`FanId::encoded`] writes it percent-encoded, so no
//! character of it can be mistaken for a separator.

use super::ValidationError;
use std::borrow::Cow;
use std::fmt;

/// Longest fan id, in bytes of UTF-8: far above any provider's `sub`
/// (Cognito 36, Auth0 and Google under 40, Entra ID 43, URIs a few dozen).
pub const MAX_FAN_ID_BYTES: usize = 512;

/// A fan event's id: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

/// A fan's id: the JWT `sub`, 1 to [`MAX_FAN_ID_BYTES`] bytes, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FanId(String);

fn event_id_ok(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn fan_id_ok(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_FAN_ID_BYTES && !value.chars().any(char::is_control)
}

impl EventId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::from_string(value.to_owned())
    }

    /// Like [`EventId::parse`], keeping the string's allocation.
    pub fn from_string(value: String) -> Result<Self, ValidationError> {
        if event_id_ok(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::InvalidEventId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FanId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::from_string(value.to_owned())
    }

    /// Like [`FanId::parse`], keeping the string's allocation.
    pub fn from_string(value: String) -> Result<Self, ValidationError> {
        if fan_id_ok(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::InvalidFanId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id with every byte outside `[A-Za-z0-9_.~-]` percent-encoded: for
    /// Redis key names and messages, where `:`, `/`, `|`, `@` or spaces
    /// would read as separators.
    pub fn encoded(&self) -> Cow<'_, str> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-');
        if self.0.bytes().all(plain) {
            return Cow::Borrowed(&self.0);
        }
        let mut out = String::with_capacity(self.0.len() * 3);
        for b in self.0.bytes() {
            if plain(b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        Cow::Owned(out)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for FanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_follow_their_pattern() {
        assert!(EventId::parse("demo_2026-11").is_ok());
        assert!(EventId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "é", "a.b", &"a".repeat(65)] {
            assert_eq!(EventId::parse(bad), Err(ValidationError::InvalidEventId), "{bad:?}");
        }
    }

    #[test]
    fn fan_ids_are_subjects_as_identity_providers_issue_them() {
        for sub in [
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "google-oauth2|110169484474386276334",
            "https://idp.example/users/42",
            "6f1b2a54-3c0d-4e6a-9f1e-2b7c8d9e0f11",
            "00u1abcd2EFGH3ijk4x7",
            "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "user@example.com",
            "가나다 fan",
            &"f".repeat(MAX_FAN_ID_BYTES),
        ] {
            assert_eq!(FanId::parse(sub).map(|f| f.as_str().to_owned()), Ok(sub.to_owned()), "{sub:?}");
        }
        for bad in
            ["", "a\u{0}b", "line\nbreak", "tab\there", "del\u{7f}", "c1\u{85}", &"f".repeat(MAX_FAN_ID_BYTES + 1)]
        {
            assert_eq!(FanId::parse(bad), Err(ValidationError::InvalidFanId), "{bad:?}");
        }
    }

    #[test]
    fn encoding_keeps_plain_ids_and_escapes_separators() {
        assert_eq!(FanId::parse("fan-1.x_~").unwrap().encoded(), "fan-1.x_~");
        assert_eq!(FanId::parse("auth0|5f:a b/é").unwrap().encoded(), "auth0%7C5f%3Aa%20b%2F%C3%A9");
        // Two ids never encode alike.
        assert_ne!(FanId::parse("a%7Cb").unwrap().encoded(), FanId::parse("a|b").unwrap().encoded());
    }
}
