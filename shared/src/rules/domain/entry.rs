//! Entries: a fan's place in a fan event. `EntryRequest` is the optional body
//! of `POST /events/{eventId}/entries`; `EntryMessage` is what travels through
//! SQS to the writer; `Entry` is the fan's view of it.

use super::{EventId, FanId, ValidationError};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest accepted entry body.
pub const MAX_ENTRY_BODY_BYTES: usize = 1024;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 280;

/// A fan's 1-based place in an event. Positions are unique per event and never
/// reused, even when a reservation is released.
pub type Position = i64;

/// The optional free-text note a fan attaches to an entry.
pub type Note = Option<String>;

/// The parsed body of an entry request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryRequest {
    pub note: Note,
}

impl EntryRequest {
    /// An absent or blank body is an entry without a note; otherwise the body
    /// must be a JSON object of at most 1 KiB whose optional `note` is a string
    /// of at most 280 characters. Other fields are ignored for forward
    /// compatibility.
    pub fn parse(body: &[u8]) -> Result<Self, ValidationError> {
        if body.len() > MAX_ENTRY_BODY_BYTES {
            return Err(ValidationError::BodyTooLarge { limit: MAX_ENTRY_BODY_BYTES, actual: body.len() });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ValidationError::InvalidBody(format!("not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(ValidationError::InvalidBody("expected a JSON object".into()));
        };
        let note = match fields.get("note") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !super::storable_text(s) => {
                return Err(ValidationError::InvalidField {
                    field: "note",
                    reason: "must not contain the NUL character (U+0000)".into(),
                })
            }
            Some(Value::String(s)) if s.chars().count() <= MAX_NOTE_CHARS => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(ValidationError::InvalidBody(format!("note must be at most {MAX_NOTE_CHARS} characters")))
            }
            Some(_) => return Err(ValidationError::InvalidBody("note must be a string".into())),
        };
        Ok(Self { note })
    }
}

/// One accepted entry on its way to PostgreSQL: the SQS message body.
/// `v` versions the format so the writer can refuse what it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryMessage {
    pub v: u8,
    pub event_id: String,
    pub fan_id: String,
    pub position: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Note,
    /// Milliseconds since the Unix epoch, when the gate reserved the slot.
    pub accepted_at_ms: i64,
}

impl EntryMessage {
    pub const VERSION: u8 = 1;

    pub fn new(entry: &Entry) -> Self {
        Self {
            v: Self::VERSION,
            event_id: entry.event_id.as_str().to_owned(),
            fan_id: entry.fan_id.as_str().to_owned(),
            position: entry.position,
            note: entry.note.clone(),
            accepted_at_ms: entry.accepted_at.timestamp_millis(),
        }
    }

    /// Parses and validates a message body; anything else is a poison message.
    pub fn parse(body: &str) -> Result<Entry, ValidationError> {
        let m: EntryMessage = serde_json::from_str(body)
            .map_err(|e| ValidationError::InvalidBody(format!("not an entry message: {e}")))?;
        if m.v != Self::VERSION {
            return Err(ValidationError::InvalidBody(format!("unknown message version {}", m.v)));
        }
        if m.position < 1 {
            return Err(ValidationError::InvalidField { field: "position", reason: "must be at least 1".into() });
        }
        if m.note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
            return Err(ValidationError::InvalidField { field: "note", reason: "too long".into() });
        }
        if m.note.as_deref().is_some_and(|n| !super::storable_text(n)) {
            return Err(ValidationError::InvalidField { field: "note", reason: "contains NUL".into() });
        }
        let accepted_at = Utc
            .timestamp_millis_opt(m.accepted_at_ms)
            .single()
            .ok_or_else(|| ValidationError::InvalidField { field: "acceptedAtMs", reason: "out of range".into() })?;
        Ok(Entry {
            event_id: EventId::from_string(m.event_id)?,
            fan_id: FanId::from_string(m.fan_id)?,
            position: m.position,
            note: m.note,
            accepted_at,
        })
    }

    /// The message body: JSON in ASCII only, every other character written
    /// as a `\uXXXX` escape (a surrogate pair above U+FFFF). SQS accepts
    /// U+10000 and up in a body, but not every endpoint that speaks its API
    /// does (fauxqs refuses them), and an ASCII body is accepted by all, so
    /// a fan's emoji can never turn into a refused send.
    pub fn to_body(&self) -> String {
        let json = serde_json::to_string(self).expect("an entry message always serializes");
        if json.is_ascii() {
            return json;
        }
        let mut body = String::with_capacity(json.len() + 32);
        for c in json.chars() {
            if c.is_ascii() {
                body.push(c);
            } else {
                // Outside ASCII, serde_json's output only has characters inside strings.
                for unit in c.encode_utf16(&mut [0; 2]) {
                    body.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        body
    }
}

/// A fan's entry in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event_id: EventId,
    pub fan_id: FanId,
    pub position: Position,
    pub note: Note,
    pub accepted_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_an_entry_without_a_note() {
        assert_eq!(EntryRequest::parse(b"").unwrap(), EntryRequest::default());
        assert_eq!(EntryRequest::parse(b" \n").unwrap(), EntryRequest::default());
        assert_eq!(EntryRequest::parse(b"{}").unwrap(), EntryRequest::default());
        assert_eq!(EntryRequest::parse(br#"{"note":null,"x":1}"#).unwrap(), EntryRequest::default());
    }

    #[test]
    fn keeps_a_note_of_up_to_280_characters() {
        let note = "가".repeat(280); // 840 bytes: the limit is in characters
        let body = serde_json::json!({ "note": note }).to_string();
        assert_eq!(EntryRequest::parse(body.as_bytes()).unwrap().note.as_deref(), Some(note.as_str()));
        let body = serde_json::json!({ "note": "a".repeat(281) }).to_string();
        assert!(matches!(EntryRequest::parse(body.as_bytes()), Err(ValidationError::InvalidBody(_))));
    }

    #[test]
    fn refuses_a_note_postgresql_cannot_store() {
        for body in [&br#"{"note":"a\u0000b"}"#[..], br#"{"note":"\u0000"}"#] {
            assert!(
                matches!(EntryRequest::parse(body), Err(ValidationError::InvalidField { field: "note", .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let poison = r#"{"v":1,"eventId":"e","fanId":"f","position":1,"note":"a\u0000","acceptedAtMs":0}"#;
        assert!(EntryMessage::parse(poison).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_small_json_object() {
        for body in [&b"[1]"[..], b"\"note\"", b"{", b"{\"note\": 5}", b"null"] {
            assert!(matches!(EntryRequest::parse(body), Err(ValidationError::InvalidBody(_))), "{body:?}");
        }
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1100));
        assert!(matches!(EntryRequest::parse(big.as_bytes()), Err(ValidationError::BodyTooLarge { limit: 1024, .. })));
    }

    #[test]
    fn messages_round_trip_and_poison_is_named() {
        let entry = Entry {
            event_id: EventId::parse("e1").unwrap(),
            fan_id: FanId::parse("fan-1").unwrap(),
            position: 7,
            note: Some("hi".into()),
            accepted_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
        };
        assert_eq!(EntryMessage::parse(&EntryMessage::new(&entry).to_body()).unwrap(), entry);
        let emoji = Entry { note: Some("가 🎉 \u{FFFD}".into()), ..entry.clone() };
        let body = EntryMessage::new(&emoji).to_body();
        assert!(body.is_ascii() && body.contains("\\ud83c\\udf89"), "{body}");
        assert_eq!(EntryMessage::parse(&body).unwrap(), emoji);
        for poison in [
            "not json",
            r#"{"v":2,"eventId":"e","fanId":"f","position":1,"acceptedAtMs":0}"#,
            r#"{"v":1,"eventId":"e e","fanId":"f","position":1,"acceptedAtMs":0}"#,
            r#"{"v":1,"eventId":"e","fanId":"f","position":0,"acceptedAtMs":0}"#,
            r#"{"v":1,"eventId":"e","fanId":"f","position":1,"acceptedAtMs":0,"extra":1}"#,
        ] {
            assert!(EntryMessage::parse(poison).is_err(), "{poison}");
        }
    }
}
