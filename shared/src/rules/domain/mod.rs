//! Pure domain rules: identifiers, fan events, entries and the admission
//! outcomes the gate can reach. Nothing here performs I/O, so every rule is
//! unit-tested without services.

mod entry;
mod event;
mod ics;
mod ids;

pub use entry::{Entry, EntryMessage, EntryRequest, Note, Position, MAX_ENTRY_BODY_BYTES, MAX_NOTE_CHARS};
pub use event::{rfc3339, FanEvent, FanEventBody, FanEventSpec, LineSettings, MAX_ADMISSIONS_PER_SECOND, MAX_CAPACITY};
pub use ics::{parse_ics, try_parse_ics, IcsCalendar};
pub use ids::{EventId, FanId, MAX_FAN_ID_BYTES};

use thiserror::Error;

/// True when PostgreSQL can store `text` in a `text` column. A Rust string
/// is valid UTF-8, so only one character is left that PostgreSQL refuses:
/// NUL (U+0000), which its text types cannot hold in any encoding. The APIs
/// refuse what the database would, so nothing accepted is refused later.
pub fn storable_text(text: &str) -> bool {
    !text.contains('\0')
}

/// Why a piece of input was refused. Each variant maps to one stable
/// machine-readable code in [`crate::usecases::api`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("eventId must match [A-Za-z0-9_-]{{1,64}}")]
    InvalidEventId,
    #[error("fanId (the JWT sub) must be 1 to 512 bytes with no control characters")]
    InvalidFanId,
    #[error("the body must be at most {limit} bytes, got {actual}")]
    BodyTooLarge { limit: usize, actual: usize },
    #[error("invalid body: {0}")]
    InvalidBody(String),
    #[error("invalid field `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
}
