//! Validated identifiers. An `EventId` or `FanId` that exists has already
//! passed its pattern, so adapters can use it in Redis keys and SQL without
//! re-checking.

use super::ValidationError;
use std::fmt;

/// A fan event's id: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

/// A fan's id (the JWT `sub`): `[A-Za-z0-9_.:@-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FanId(String);

fn matches(value: &str, max: usize, extra: &[u8]) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl EventId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if matches(value, 64, b"_-") {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::InvalidEventId)
        }
    }

    /// Like [`EventId::parse`], keeping the string's allocation.
    pub fn from_string(value: String) -> Result<Self, ValidationError> {
        if matches(&value, 64, b"_-") {
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
        if matches(value, 128, b"_.:@-") {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::InvalidFanId)
        }
    }

    /// Like [`FanId::parse`], keeping the string's allocation.
    pub fn from_string(value: String) -> Result<Self, ValidationError> {
        if matches(&value, 128, b"_.:@-") {
            Ok(Self(value))
        } else {
            Err(ValidationError::InvalidFanId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn fan_ids_allow_subject_characters() {
        assert!(FanId::parse("auth0|x").is_err());
        assert!(FanId::parse("user@example.com").is_ok());
        assert!(FanId::parse("us-east-1:abc.def_9").is_ok());
        assert!(FanId::parse(&"f".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", "ü", &"f".repeat(129)] {
            assert_eq!(FanId::parse(bad), Err(ValidationError::InvalidFanId), "{bad:?}");
        }
    }
}
