//! Reading a calendar file for `plan` and `preflight`: a JSON array of
//! events (the admin API's fields plus `eventId`) or an iCalendar file. A
//! file that cannot be read at all is an error (the command exits non-zero);
//! an entry of it that cannot be planned is skipped and named.

use fanrush::rules::domain::{try_parse_ics, EventId, FanEvent, FanEventSpec, IcsCalendar};
use serde_json::Value;
use std::path::Path;

/// Reads `path`; an iCalendar file's recurrences are expanded around `now`.
/// Both kinds come back as an [`IcsCalendar`]: events, and the entries
/// skipped, each named with why (a JSON calendar skips none).
pub fn load(path: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<IcsCalendar, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "ics") {
        return try_parse_ics(&text, now).map_err(|e| format!("{}: {e}", path.display()));
    }
    Ok(IcsCalendar { events: json_calendar(&text)?, skipped: Vec::new() })
}

fn json_calendar(text: &str) -> Result<Vec<FanEvent>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("calendar: not JSON: {e}"))?;
    let items = value.as_array().ok_or("calendar: expected a JSON array of events")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let fields = item.as_object().ok_or(format!("calendar[{i}]: not an object"))?;
            let id = fields.get("eventId").and_then(Value::as_str).ok_or(format!("calendar[{i}]: no eventId"))?;
            let id = EventId::parse(id).map_err(|e| format!("calendar[{i}]: {e}"))?;
            FanEventSpec::from_fields(id, fields).map_err(|e| format!("calendar[{i}]: {e}"))
        })
        .collect()
}
