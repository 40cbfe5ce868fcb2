//! An iCalendar (RFC 5545) feed as a calendar of fan events, for scaling.
//!
//! Each VEVENT gives a window from DTSTART/DTEND (UTC `...Z` or a floating
//! time read as UTC; all-day and TZID times are skipped with a warning), its
//! UID as the event id (characters outside `[A-Za-z0-9_-]` become `-`), its
//! SUMMARY as the title and the peak rate from `X-FANRUSH-PEAK-RPS`
//! (optional `X-FANRUSH-CAPACITY`, `X-FANRUSH-LEAD-MINUTES`,
//! `X-FANRUSH-COOLDOWN-MINUTES`).

use super::{EventId, FanEvent};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::HashMap;

/// Events found in a feed, and why any VEVENT was skipped.
#[derive(Debug, Default)]
pub struct IcsCalendar {
    pub events: Vec<FanEvent>,
    pub skipped: Vec<String>,
}

/// Parses a feed. Never fails: what cannot be read is skipped and named.
pub fn parse_ics(text: &str) -> IcsCalendar {
    let mut calendar = IcsCalendar::default();
    let mut current: Option<HashMap<String, (String, String)>> = None;
    for line in unfold(text) {
        let (head, value) = match line.split_once(':') {
            Some(pair) => pair,
            None => continue,
        };
        let (name, params) = head.split_once(';').unwrap_or((head, ""));
        let name = name.to_ascii_uppercase();
        match (name.as_str(), value.trim()) {
            ("BEGIN", "VEVENT") => current = Some(HashMap::new()),
            ("END", "VEVENT") => {
                if let Some(props) = current.take() {
                    match event(&props) {
                        Ok(e) => calendar.events.push(e),
                        Err(why) => calendar.skipped.push(why),
                    }
                }
            }
            _ => {
                if let Some(props) = current.as_mut() {
                    props.insert(name, (params.to_owned(), unescape(value)));
                }
            }
        }
    }
    calendar
}

/// Joins folded lines (a line starting with a space or tab continues the last).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let raw = raw.trim_end_matches('\r');
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(raw.to_owned()),
        }
    }
    lines
}

fn unescape(v: &str) -> String {
    v.replace("\\n", "\n").replace("\\N", "\n").replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\")
}

fn event(props: &HashMap<String, (String, String)>) -> Result<FanEvent, String> {
    let get = |k: &str| props.get(k).map(|(_, v)| v.as_str());
    let uid = get("UID").ok_or("a VEVENT without UID")?;
    let id: String =
        uid.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).take(64).collect();
    let id = EventId::parse(&id).map_err(|e| format!("{uid}: {e}"))?;
    let opens_at = time(props, "DTSTART").map_err(|e| format!("{uid}: {e}"))?;
    let closes_at = time(props, "DTEND").map_err(|e| format!("{uid}: {e}"))?;
    if closes_at <= opens_at {
        return Err(format!("{uid}: DTEND is not after DTSTART"));
    }
    let number = |k: &str| get(k).and_then(|v| v.trim().parse::<f64>().ok());
    let expected_peak_rps = number("X-FANRUSH-PEAK-RPS").filter(|r| r.is_finite() && *r >= 0.0);
    let expected_peak_rps = expected_peak_rps.ok_or_else(|| format!("{uid}: no valid X-FANRUSH-PEAK-RPS"))?;
    Ok(FanEvent {
        id,
        title: get("SUMMARY").unwrap_or(uid).to_owned(),
        opens_at,
        closes_at,
        capacity: number("X-FANRUSH-CAPACITY").map_or(1, |c| c as i64).max(1),
        expected_peak_rps,
        lead_minutes: number("X-FANRUSH-LEAD-MINUTES").map(|m| m as i64),
        cooldown_minutes: number("X-FANRUSH-COOLDOWN-MINUTES").map(|m| m as i64),
    })
}

fn time(props: &HashMap<String, (String, String)>, key: &str) -> Result<DateTime<Utc>, String> {
    let (params, value) = props.get(key).ok_or_else(|| format!("no {key}"))?;
    if params.to_ascii_uppercase().contains("TZID") || params.to_ascii_uppercase().contains("VALUE=DATE") {
        return Err(format!("{key} with {params} is not supported; use UTC (...Z)"));
    }
    let naive = NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
        .map_err(|_| format!("{key} {value:?} is not a date-time"))?;
    Ok(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fanrush//EN\r\n\
BEGIN:VEVENT\r\nUID:drop-42@fans.example\r\nSUMMARY:Album drop\\, limited\r\nDTSTART:20261201T100000Z\r\n\
DTEND:20261201T103000Z\r\nX-FANRUSH-PEAK-RPS:10000\r\nX-FANRUSH-LEAD-\r\n MINUTES:45\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:tz\r\nDTSTART;TZID=Asia/Seoul:20261201T190000\r\nDTEND:20261201T200000Z\r\nX-FANRUSH-PEAK-RPS:5\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:norate\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn reads_vevents_with_the_peak_rate_and_skips_what_it_cannot_read() {
        let cal = parse_ics(FEED);
        assert_eq!(cal.events.len(), 1, "{:?}", cal.skipped);
        let e = &cal.events[0];
        assert_eq!(e.id.as_str(), "drop-42-fans-example");
        assert_eq!(e.title, "Album drop, limited");
        assert_eq!(e.opens_at.to_rfc3339(), "2026-12-01T10:00:00+00:00");
        assert_eq!(e.expected_peak_rps, 10000.0);
        assert_eq!(e.lead_minutes, Some(45), "folded lines are joined");
        assert_eq!(cal.skipped.len(), 2);
        assert!(cal.skipped[0].contains("TZID") && cal.skipped[1].contains("X-FANRUSH-PEAK-RPS"));
    }
}
