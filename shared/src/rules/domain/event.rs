//! Fan events: the calendar's unit. A `FanEvent` is a validated definition
//! (window, capacity, expected peak rate, and optionally a line in front of
//! the gate); `FanEventSpec` parses one from the admin API's JSON and names
//! the offending field when it is wrong.

use super::{EventId, ValidationError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Largest capacity an event may have.
pub const MAX_CAPACITY: i64 = 10_000_000;
const MAX_TITLE_CHARS: usize = 200;
/// Largest per-event lead or cooldown override, and the longest pre-queue:
/// one day.
const MAX_WINDOW_MINUTES: i64 = 24 * 60;
/// Highest line rate: far above what one Redis core admits (tens of
/// thousands a second), low enough that its arithmetic stays exact.
pub const MAX_ADMISSIONS_PER_SECOND: i64 = 1_000_000;
/// Highest expected peak: a million requests a second, a hundred times the
/// worked event's and far above what any account's quotas pass (the
/// preflight names what to raise); the plan's arithmetic stays in range.
pub const MAX_EXPECTED_PEAK_RPS: f64 = 1_000_000.0;
/// The longest an event may stay open: ten years (a standing sign-up; the
/// plan holds its need that long). A line is bounded far more tightly.
pub const MAX_WINDOW: chrono::Duration = chrono::Duration::days(3_653);
/// The longest a line may run, from its pre-queue to its close, and the
/// longest ago a lined event may have opened when it is defined: a week.
/// The gate counts a line's fans in one 4-byte counter per 100 ms since
/// its opening, 24 MB a week at most.
pub const MAX_LINE_SPAN: chrono::Duration = chrono::Duration::days(7);

/// An event's line (the waiting room in front of its gate): the gate admits
/// at most `admissions_per_second` new fans in any one second, and fans may
/// join the line `prequeue_minutes` before the opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    pub admissions_per_second: i64,
    pub prequeue_minutes: i64,
}

/// An event as the admin API shows it (`FanEvent` in openapi.yaml): absent
/// overrides and no line leave their fields out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanEventBody<'a> {
    pub event_id: &'a str,
    pub title: &'a str,
    pub opens_at: String,
    pub closes_at: String,
    pub capacity: i64,
    pub expected_peak_rps: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admissions_per_second: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prequeue_minutes: Option<i64>,
}

impl<'a> FanEventBody<'a> {
    pub fn of(e: &'a FanEvent) -> Self {
        Self {
            event_id: e.id.as_str(),
            title: &e.title,
            opens_at: rfc3339(e.opens_at),
            closes_at: rfc3339(e.closes_at),
            capacity: e.capacity,
            expected_peak_rps: e.expected_peak_rps,
            lead_minutes: e.lead_minutes,
            cooldown_minutes: e.cooldown_minutes,
            admissions_per_second: e.line.map(|l| l.admissions_per_second),
            prequeue_minutes: e.line.map(|l| l.prequeue_minutes),
        }
    }
}

/// A validated fan event, as stored in the calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct FanEvent {
    pub id: EventId,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub capacity: i64,
    pub expected_peak_rps: f64,
    /// Per-event override of the scheduler's scale-out lead.
    pub lead_minutes: Option<i64>,
    /// Per-event override of the scheduler's scale-in cooldown.
    pub cooldown_minutes: Option<i64>,
    /// The line in front of the gate; `None`: fans go straight to the gate.
    pub line: Option<LineSettings>,
}

/// Parses an admin definition of a fan event.
pub struct FanEventSpec;

impl FanEventSpec {
    /// Parses the PUT body for `id`. A body `eventId`, when present, must
    /// agree with the path.
    pub fn parse(id: EventId, body: &[u8]) -> Result<FanEvent, ValidationError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ValidationError::InvalidBody(format!("not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(ValidationError::InvalidBody("expected a JSON object".into()));
        };
        if let Some(body_id) = fields.get("eventId") {
            if body_id.as_str() != Some(id.as_str()) {
                return Err(invalid("eventId", "must equal the eventId in the path"));
            }
        }
        Self::from_fields(id, &fields)
    }

    /// Builds an event from already-parsed JSON fields (also used by calendar
    /// files, which carry `eventId` inline).
    pub fn from_fields(id: EventId, fields: &Map<String, Value>) -> Result<FanEvent, ValidationError> {
        let title = match fields.get("title") {
            Some(Value::String(t))
                if !t.trim().is_empty() && t.chars().count() <= MAX_TITLE_CHARS && super::storable_text(t) =>
            {
                t.clone()
            }
            _ => {
                return Err(invalid(
                    "title",
                    "must be a non-empty string of at most 200 characters, without NUL (U+0000)",
                ))
            }
        };
        let opens_at = time(fields, "opensAt")?;
        let closes_at = time(fields, "closesAt")?;
        if closes_at <= opens_at {
            return Err(invalid("closesAt", "must be after opensAt"));
        }
        if closes_at - opens_at > MAX_WINDOW {
            return Err(invalid("closesAt", "must be at most ten years (3653 days) after opensAt"));
        }
        let capacity = match fields.get("capacity").and_then(Value::as_i64) {
            Some(c) if (1..=MAX_CAPACITY).contains(&c) => c,
            _ => return Err(invalid("capacity", "must be an integer from 1 to 10000000")),
        };
        let expected_peak_rps = match fields.get("expectedPeakRps").and_then(Value::as_f64) {
            Some(r) if r.is_finite() && (0.0..=MAX_EXPECTED_PEAK_RPS).contains(&r) => r,
            _ => return Err(invalid("expectedPeakRps", "must be a number from 0 to 1000000")),
        };
        let event = FanEvent {
            id,
            title,
            opens_at,
            closes_at,
            capacity,
            expected_peak_rps,
            lead_minutes: minutes(fields, "leadMinutes")?,
            cooldown_minutes: minutes(fields, "cooldownMinutes")?,
            line: line(fields)?,
        };
        if event.line.is_some() && event.closes_at - event.joinable_from() > MAX_LINE_SPAN {
            return Err(invalid(
                "closesAt",
                "must be at most 7 days after the line opens (opensAt less prequeueMinutes)",
            ));
        }
        Ok(event)
    }

    /// [`FanEventSpec::parse`], and the bounds that depend on the time: a
    /// lined event may not have opened more than [`MAX_LINE_SPAN`] before
    /// `now`. What the admin API and the calendar feed define.
    pub fn parse_at(id: EventId, body: &[u8], now: DateTime<Utc>) -> Result<FanEvent, ValidationError> {
        Self::parse(id, body)?.checked_at(now)
    }
}

impl LineSettings {
    /// `admissionsPerSecond` (an integer from 1) makes a line;
    /// `prequeueMinutes` (an integer from 0 to 1440, default 0) is allowed
    /// only with it. Also read from a calendar feed's properties.
    pub fn from_fields(fields: &Map<String, Value>) -> Result<Option<Self>, ValidationError> {
        line(fields)
    }
}

fn line(fields: &Map<String, Value>) -> Result<Option<LineSettings>, ValidationError> {
    let given = |k: &str| fields.get(k).filter(|v| !v.is_null());
    let rate = match given("admissionsPerSecond") {
        None => None,
        Some(v) => match v.as_i64() {
            Some(r) if (1..=MAX_ADMISSIONS_PER_SECOND).contains(&r) => Some(r),
            _ => return Err(invalid("admissionsPerSecond", "must be an integer from 1 to 1000000")),
        },
    };
    let prequeue = match given("prequeueMinutes") {
        None => 0,
        Some(_) if rate.is_none() => {
            return Err(invalid(
                "prequeueMinutes",
                "is allowed only with admissionsPerSecond (a pre-queue needs a line)",
            ))
        }
        Some(v) => match v.as_i64() {
            Some(m) if (0..=MAX_WINDOW_MINUTES).contains(&m) => m,
            _ => return Err(invalid("prequeueMinutes", "must be an integer number of minutes from 0 to 1440")),
        },
    };
    Ok(rate.map(|admissions_per_second| LineSettings { admissions_per_second, prequeue_minutes: prequeue }))
}

impl FanEvent {
    /// The event, if its bounds that depend on the time hold at `now`: a
    /// lined event opened at most [`MAX_LINE_SPAN`] ago.
    pub fn checked_at(self, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        if self.line.is_some() && now - self.opens_at > MAX_LINE_SPAN {
            return Err(invalid("opensAt", "a line's event must open at most 7 days in the past"));
        }
        Ok(self)
    }

    /// The admin API's JSON view of the event ([`FanEventBody`]), also the
    /// definition the gate stores.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(FanEventBody::of(self)).unwrap_or_default()
    }

    /// When fans may first join: the opening, or the start of the pre-queue.
    pub fn joinable_from(&self) -> DateTime<Utc> {
        self.opens_at - chrono::Duration::minutes(self.line.map_or(0, |l| l.prequeue_minutes))
    }
}

/// RFC 3339 in UTC with a `Z`, the one time format of every API.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn invalid(field: &'static str, reason: &str) -> ValidationError {
    ValidationError::InvalidField { field, reason: reason.into() }
}

fn time(fields: &Map<String, Value>, field: &'static str) -> Result<DateTime<Utc>, ValidationError> {
    fields
        .get(field)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| invalid(field, "must be an RFC 3339 timestamp"))
}

fn minutes(fields: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, ValidationError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(m) if (0..=MAX_WINDOW_MINUTES).contains(&m) => Ok(Some(m)),
            _ => Err(invalid(field, "must be an integer number of minutes from 0 to 1440")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(body: Value) -> Result<FanEvent, ValidationError> {
        FanEventSpec::parse(EventId::parse("demo").unwrap(), body.to_string().as_bytes())
    }

    fn valid() -> Value {
        json!({"title": "Drop", "opensAt": "2026-12-01T10:00:00Z", "closesAt": "2026-12-01T10:30:00+09:00",
               "capacity": 5000, "expectedPeakRps": 10000})
    }

    fn field_of(r: Result<FanEvent, ValidationError>) -> &'static str {
        match r {
            Err(ValidationError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_valid_event_and_normalises_times_to_utc() {
        let e = spec(valid()).unwrap_err();
        // 10:30+09:00 is 01:30Z, before opensAt: the window is checked in UTC.
        assert_eq!(e, invalid("closesAt", "must be after opensAt"));
        let mut v = valid();
        v["closesAt"] = "2026-12-01T19:30:00+09:00".into();
        let e = spec(v).unwrap();
        assert_eq!(e.capacity, 5000);
        assert_eq!(e.to_json()["closesAt"], "2026-12-01T10:30:00Z");
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let cases: [(&str, Value, &str); 10] = [
            ("title", json!(""), "title"),
            ("title", json!("a\u{0}b"), "title"),
            ("opensAt", json!("tomorrow"), "opensAt"),
            ("closesAt", json!(5), "closesAt"),
            ("capacity", json!(0), "capacity"),
            ("capacity", json!(10_000_001), "capacity"),
            ("capacity", json!(1.5), "capacity"),
            ("expectedPeakRps", json!(-1), "expectedPeakRps"),
            ("leadMinutes", json!(-5), "leadMinutes"),
            ("eventId", json!("other"), "eventId"),
        ];
        for (key, value, field) in cases {
            let mut v = valid();
            v["closesAt"] = "2026-12-01T11:00:00Z".into();
            v[key] = value;
            assert_eq!(field_of(spec(v)), field, "{key}");
        }
    }

    #[test]
    fn stored_values_are_bounded_and_the_bound_is_named() {
        let mut v = valid();
        v["closesAt"] = "2026-12-01T11:00:00Z".into();
        for (key, value, field) in [
            ("expectedPeakRps", json!(1e17), "expectedPeakRps"),
            ("expectedPeakRps", json!(1_000_001), "expectedPeakRps"),
            ("leadMinutes", json!(99_999), "leadMinutes"),
            ("cooldownMinutes", json!(1_441), "cooldownMinutes"),
            ("closesAt", json!("2036-12-02T10:00:00Z"), "closesAt"),
        ] {
            let mut w = v.clone();
            w[key] = value.clone();
            assert_eq!(field_of(spec(w)), field, "{key} = {value}");
        }
        let mut month = v.clone();
        month["closesAt"] = "2036-12-01T10:00:00Z".into();
        assert!(spec(month.clone()).is_ok(), "an unlined event may stay open ten years");
        // A line runs at most a week from its pre-queue.
        month["admissionsPerSecond"] = json!(100);
        assert_eq!(field_of(spec(month)), "closesAt");
        let mut line = v.clone();
        line["admissionsPerSecond"] = json!(100);
        line["prequeueMinutes"] = json!(60);
        line["closesAt"] = "2026-12-08T09:00:00Z".into();
        assert!(spec(line.clone()).is_ok(), "an hour of pre-queue and 6 days 23 hours open");
        line["closesAt"] = "2026-12-08T09:00:01Z".into();
        assert_eq!(field_of(spec(line.clone())), "closesAt");
        // Defined at a time: a line that opened more than a week ago is refused.
        line["closesAt"] = "2026-12-01T11:00:00Z".into();
        let opens = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let at = |t| FanEventSpec::parse_at(EventId::parse("demo").unwrap(), line.to_string().as_bytes(), t);
        assert!(at(opens + chrono::Duration::days(7)).is_ok());
        assert_eq!(field_of(at(opens + chrono::Duration::days(7) + chrono::Duration::seconds(1))), "opensAt");
        let mut unlined = v.clone();
        unlined["closesAt"] = "2026-12-01T11:00:00Z".into();
        let at = |t| FanEventSpec::parse_at(EventId::parse("demo").unwrap(), unlined.to_string().as_bytes(), t);
        assert!(at(opens + chrono::Duration::days(30)).is_ok(), "only a line has the bound");
    }

    #[test]
    fn a_line_is_an_integer_rate_with_an_optional_prequeue() {
        let mut v = valid();
        v["closesAt"] = "2026-12-01T11:00:00Z".into();
        assert_eq!(spec(v.clone()).unwrap().line, None, "no rate, no line");
        v["admissionsPerSecond"] = json!(300);
        let e = spec(v.clone()).unwrap();
        assert_eq!(e.line, Some(LineSettings { admissions_per_second: 300, prequeue_minutes: 0 }));
        assert_eq!(
            (e.to_json()["admissionsPerSecond"].clone(), e.to_json()["prequeueMinutes"].clone()),
            (json!(300), json!(0))
        );
        v["prequeueMinutes"] = json!(30);
        let e = spec(v.clone()).unwrap();
        assert_eq!(e.line.unwrap().prequeue_minutes, 30);
        assert_eq!(e.joinable_from(), e.opens_at - chrono::Duration::minutes(30));
        for bad in [json!(0), json!(-1), json!(1.5), json!("300"), json!(true), json!(1_000_001)] {
            let mut w = v.clone();
            w["admissionsPerSecond"] = bad.clone();
            assert_eq!(field_of(spec(w)), "admissionsPerSecond", "{bad}");
        }
        for bad in [json!(-1), json!(1441), json!(2.5), json!("5")] {
            let mut w = v.clone();
            w["prequeueMinutes"] = bad.clone();
            assert_eq!(field_of(spec(w)), "prequeueMinutes", "{bad}");
        }
        let mut w = v.clone();
        w["admissionsPerSecond"] = Value::Null;
        assert_eq!(field_of(spec(w)), "prequeueMinutes", "a pre-queue without a rate");
    }

    #[test]
    fn refuses_non_objects_and_bad_json() {
        for body in [&b"[]"[..], b"nope", b"", b"\"x\""] {
            let r = FanEventSpec::parse(EventId::parse("demo").unwrap(), body);
            assert!(matches!(r, Err(ValidationError::InvalidBody(_))), "{body:?}");
        }
    }
}
