//! An iCalendar (RFC 5545) feed as a calendar of fan events, for scaling.
//!
//! Parsed with the maintained `icalendar` crate (its parser, and its
//! recurrence expansion through `rrule`), time zones from `chrono-tz`
//! (the IANA database). Each VEVENT gives a window from DTSTART/DTEND:
//!
//! - UTC (`...Z`) or `TZID=Area/City` times (a Seoul calendar writes
//!   `DTSTART;TZID=Asia/Seoul:20261201T200000`, 11:00 UTC);
//! - floating times (no zone) in the calendar's `X-WR-TIMEZONE`, or skipped
//!   when it has none: guessing a zone would scale out hours off;
//! - all-day events (`VALUE=DATE`) skipped: they have no opening second;
//! - `RRULE` (with `RDATE`/`EXDATE`) expanded into one event per
//!   occurrence from a day ago to [`RECURRENCE_HORIZON`] ahead, each with
//!   the first occurrence's duration and the id `<uid>-<yyyymmddThhmm>`.
//!
//! Its UID is the event id (characters outside `[A-Za-z0-9_-]` become `-`),
//! SUMMARY the title, `X-FANRUSH-PEAK-RPS` the peak rate (optional
//! `X-FANRUSH-CAPACITY`, `X-FANRUSH-LEAD-MINUTES`,
//! `X-FANRUSH-COOLDOWN-MINUTES`, and the line: `X-FANRUSH-ADMISSIONS-PER-SECOND`
//! with `X-FANRUSH-PREQUEUE-MINUTES`, checked as the admin API checks
//! `admissionsPerSecond` and `prequeueMinutes`). Nothing is skipped silently: every VEVENT
//! that is not planned is in [`IcsCalendar::skipped`] with why.

use super::{EventId, FanEvent, FanEventSpec, ValidationError};
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use icalendar::{Calendar, CalendarDateTime, Component, DatePerhapsTime, Event};

/// How far ahead recurring events are expanded: past any scale-out lead.
pub const RECURRENCE_HORIZON: Duration = Duration::days(35);

/// At most this many occurrences of one VEVENT inside the horizon.
const MAX_OCCURRENCES: u16 = 500;

/// Events found in a feed, and why any VEVENT was skipped.
#[derive(Debug, Default)]
pub struct IcsCalendar {
    pub events: Vec<FanEvent>,
    pub skipped: Vec<String>,
}

/// Parses a feed as seen at `now` (recurrences are expanded around it).
/// Never fails: what cannot be read is skipped and named (a feed that is not
/// iCalendar at all too, as its one skipped entry).
pub fn parse_ics(text: &str, now: DateTime<Utc>) -> IcsCalendar {
    try_parse_ics(text, now).unwrap_or_else(|why| IcsCalendar { events: Vec::new(), skipped: vec![why] })
}

/// Like [`parse_ics`], but a text that is not iCalendar at all is an error.
pub fn try_parse_ics(text: &str, now: DateTime<Utc>) -> Result<IcsCalendar, String> {
    let mut out = IcsCalendar::default();
    let calendar: Calendar =
        text.parse().map_err(|e: String| format!("the feed is not iCalendar: {}", first_line(&e)))?;
    // The parser takes any text without a calendar for an empty one.
    if !text.contains("BEGIN:VCALENDAR") {
        return Err("the feed is not iCalendar: no BEGIN:VCALENDAR".into());
    }
    let zone = calendar.get_timezone().map(str::to_owned);
    for event in calendar.calendar_events() {
        let uid = event.get_uid().unwrap_or("").to_owned();
        let named =
            |why: String| if uid.is_empty() { format!("a VEVENT without UID: {why}") } else { format!("{uid}: {why}") };
        match read(&event, zone.as_deref(), now) {
            Ok(mut events) => out.events.append(&mut events),
            Err(why) => out.skipped.push(named(why)),
        }
    }
    Ok(out)
}

/// One VEVENT as fan events: one, or one per occurrence.
fn read(event: &icalendar::CalendarEvent<'_>, zone: Option<&str>, now: DateTime<Utc>) -> Result<Vec<FanEvent>, String> {
    let uid = event.get_uid().ok_or("no UID")?;
    let start = instant(event.get_start(), "DTSTART", zone)?;
    let end = instant(event.get_end(), "DTEND", zone)?;
    if end <= start {
        return Err("DTEND is not after DTSTART".into());
    }
    let template = fan_event(event.event(), uid, start, end)?;
    if event.property_value("RRULE").is_none() && event.property_value("RDATE").is_none() {
        return Ok(vec![template.checked_at(now).map_err(|e| e.to_string())?]);
    }
    if let Some(DatePerhapsTime::DateTime(CalendarDateTime::Floating(_))) = event.get_start() {
        // rrule would read a floating DTSTART in the machine's own zone.
        return Err("a recurring event with a floating DTSTART (give it a TZID)".into());
    }
    let set = event.get_recurrence().map_err(|e| format!("RRULE: {e}"))?;
    let window = (now - Duration::days(1), now + RECURRENCE_HORIZON);
    let utc = |t: DateTime<Utc>| t.with_timezone(&icalendar::Tz::UTC);
    let occurrences = set.after(utc(window.0)).before(utc(window.1)).all(MAX_OCCURRENCES);
    let length = end - start;
    Ok(occurrences
        .dates
        .iter()
        .filter_map(|at| {
            let opens_at = at.with_timezone(&Utc);
            // 50 + '-' + 13 characters stays within an event id's 64.
            let base: String = template.id.as_str().chars().take(50).collect();
            let id = EventId::parse(&format!("{base}-{}", at.format("%Y%m%dT%H%M"))).ok()?;
            FanEvent { id, opens_at, closes_at: opens_at + length, ..template.clone() }.checked_at(now).ok()
        })
        .collect())
}

/// A VEVENT's fields as the admin API's JSON, read by the same parser, so a
/// feed's event meets every bound an admin PUT does; a refusal names the
/// property.
fn fan_event(event: &Event, uid: &str, opens_at: DateTime<Utc>, closes_at: DateTime<Utc>) -> Result<FanEvent, String> {
    let id: String =
        uid.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).take(64).collect();
    let id = EventId::parse(&id).map_err(|e| e.to_string())?;
    let mut fields = serde_json::Map::new();
    fields.insert("title".into(), event.get_summary().unwrap_or(uid).into());
    fields.insert("opensAt".into(), super::rfc3339(opens_at).into());
    fields.insert("closesAt".into(), super::rfc3339(closes_at).into());
    fields.insert("capacity".into(), 1.into());
    for (property, field) in PROPERTIES {
        if let Some(raw) = event.property_value(property) {
            // An integer is a JSON integer, another number a float; anything
            // else stays a string and is refused by the same rule.
            let raw = raw.trim();
            let value = match (raw.parse::<i64>(), raw.parse::<f64>()) {
                (Ok(n), _) => serde_json::Value::from(n),
                (_, Ok(x)) => serde_json::Value::from(x),
                _ => raw.into(),
            };
            fields.insert(field.to_owned(), value);
        }
    }
    FanEventSpec::from_fields(id, &fields).map_err(|e| match e {
        ValidationError::InvalidField { field, reason } => {
            let property = PROPERTIES.iter().find(|(_, f)| *f == field).map_or(
                match field {
                    "opensAt" => "DTSTART",
                    "closesAt" => "DTEND",
                    "title" => "SUMMARY",
                    other => other,
                },
                |(p, _)| p,
            );
            format!("{property} {reason}")
        }
        other => other.to_string(),
    })
}

/// The feed's properties and the admin API's fields they are.
const PROPERTIES: [(&str, &str); 6] = [
    ("X-FANRUSH-PEAK-RPS", "expectedPeakRps"),
    ("X-FANRUSH-CAPACITY", "capacity"),
    ("X-FANRUSH-LEAD-MINUTES", "leadMinutes"),
    ("X-FANRUSH-COOLDOWN-MINUTES", "cooldownMinutes"),
    ("X-FANRUSH-ADMISSIONS-PER-SECOND", "admissionsPerSecond"),
    ("X-FANRUSH-PREQUEUE-MINUTES", "prequeueMinutes"),
];

/// A DTSTART/DTEND as an instant.
fn instant(value: Option<DatePerhapsTime>, key: &str, zone: Option<&str>) -> Result<DateTime<Utc>, String> {
    match value.ok_or_else(|| format!("no {key} (or not a date-time)"))? {
        DatePerhapsTime::Date(_) => Err(format!("an all-day event ({key} is a DATE): it has no opening second")),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => Ok(t),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => in_zone(date_time, &tzid, key),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(date_time)) => match zone {
            Some(zone) => in_zone(date_time, zone, key),
            None => Err(format!("{key} is a floating time and the calendar has no X-WR-TIMEZONE")),
        },
    }
}

fn in_zone(local: NaiveDateTime, zone: &str, key: &str) -> Result<DateTime<Utc>, String> {
    let tz: chrono_tz::Tz = zone.parse().map_err(|_| format!("{key}: unknown time zone {zone:?}"))?;
    // In a DST gap there is no such local time; in an overlap, the earlier
    // one scales out sooner, never later.
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{key}: {local} does not exist in {zone}"))
}

fn first_line(e: &str) -> &str {
    e.lines().find(|l| !l.trim().is_empty()).unwrap_or(e).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
    }

    fn feed(events: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fanrush//EN\r\n{events}END:VCALENDAR\r\n")
    }

    const UTC_EVENT: &str = "BEGIN:VEVENT\r\nUID:drop-42@fans.example\r\nSUMMARY:Album drop\\, limited\r\n\
DTSTART:20261201T100000Z\r\nDTEND:20261201T103000Z\r\nX-FANRUSH-PEAK-RPS:10000\r\nX-FANRUSH-LEAD-\r\n MINUTES:45\r\nEND:VEVENT\r\n";

    #[test]
    fn reads_a_utc_vevent_with_the_peak_rate_and_folded_lines() {
        let cal = parse_ics(&feed(UTC_EVENT), now());
        assert_eq!(cal.events.len(), 1, "{:?}", cal.skipped);
        let e = &cal.events[0];
        assert_eq!(e.id.as_str(), "drop-42-fans-example");
        assert_eq!(e.title, "Album drop, limited");
        assert_eq!(e.opens_at.to_rfc3339(), "2026-12-01T10:00:00+00:00");
        assert_eq!(e.expected_peak_rps, 10000.0);
        assert_eq!(e.lead_minutes, Some(45), "folded lines are joined");
        assert!(cal.skipped.is_empty());
    }

    #[test]
    fn a_seoul_calendar_opens_at_its_utc_instant() {
        let seoul = "BEGIN:VEVENT\r\nUID:seoul-showcase\r\nSUMMARY:Showcase\r\n\
DTSTART;TZID=Asia/Seoul:20261201T200000\r\nDTEND;TZID=Asia/Seoul:20261201T203000\r\nX-FANRUSH-PEAK-RPS:5000\r\nEND:VEVENT\r\n";
        let cal = parse_ics(&feed(seoul), now());
        assert!(cal.skipped.is_empty(), "{:?}", cal.skipped);
        let e = &cal.events[0];
        // 20:00 KST (UTC+9, no DST) is 11:00 UTC.
        assert_eq!(
            (e.opens_at.to_rfc3339().as_str(), e.closes_at.to_rfc3339().as_str()),
            ("2026-12-01T11:00:00+00:00", "2026-12-01T11:30:00+00:00")
        );
        // A floating time in a calendar whose X-WR-TIMEZONE is Seoul: the same instant.
        let floating = "X-WR-TIMEZONE:Asia/Seoul\r\nBEGIN:VEVENT\r\nUID:floating\r\n\
DTSTART:20261201T200000\r\nDTEND:20261201T203000\r\nX-FANRUSH-PEAK-RPS:5000\r\nEND:VEVENT\r\n";
        let cal = parse_ics(&feed(floating), now());
        assert_eq!(cal.events[0].opens_at, e.opens_at, "{:?}", cal.skipped);
    }

    #[test]
    fn weekly_recurrences_become_one_event_each_in_local_time() {
        // Every Friday 20:00 in Seoul, four times, one cancelled by EXDATE.
        let weekly = "BEGIN:VEVENT\r\nUID:weekly-live\r\nSUMMARY:Weekly live\r\n\
DTSTART;TZID=Asia/Seoul:20261204T200000\r\nDTEND;TZID=Asia/Seoul:20261204T210000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Asia/Seoul:20261211T200000\r\nX-FANRUSH-PEAK-RPS:2000\r\nEND:VEVENT\r\n";
        let cal = parse_ics(&feed(weekly), now());
        assert!(cal.skipped.is_empty(), "{:?}", cal.skipped);
        let got: Vec<(String, String)> =
            cal.events.iter().map(|e| (e.id.to_string(), e.opens_at.to_rfc3339())).collect();
        assert_eq!(
            got,
            [
                ("weekly-live-20261204T2000".to_owned(), "2026-12-04T11:00:00+00:00".to_owned()),
                ("weekly-live-20261218T2000".to_owned(), "2026-12-18T11:00:00+00:00".to_owned()),
                ("weekly-live-20261225T2000".to_owned(), "2026-12-25T11:00:00+00:00".to_owned()),
            ]
        );
        assert!(cal.events.iter().all(|e| e.closes_at - e.opens_at == Duration::hours(1)));
        // Occurrences beyond the horizon wait for a later run.
        let early = parse_ics(&feed(weekly), now() - Duration::days(30));
        assert!(early.events.is_empty() && early.skipped.is_empty(), "{:?}", early.events);
    }

    #[test]
    fn every_skipped_vevent_is_named_with_why() {
        let bad = "BEGIN:VEVENT\r\nUID:all-day\r\nDTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261202\r\n\
X-FANRUSH-PEAK-RPS:5\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:norate\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:floating\r\nDTSTART:20261201T100000\r\nDTEND:20261201T110000\r\nX-FANRUSH-PEAK-RPS:5\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:mars\r\nDTSTART;TZID=Mars/Olympus:20261201T100000\r\nDTEND:20261201T110000Z\r\nX-FANRUSH-PEAK-RPS:5\r\nEND:VEVENT\r\n";
        let cal = parse_ics(&feed(&format!("{UTC_EVENT}{bad}")), now());
        assert_eq!(cal.events.len(), 1);
        assert_eq!(cal.skipped.len(), 4, "{:?}", cal.skipped);
        assert!(cal.skipped[0].starts_with("all-day: an all-day event"), "{:?}", cal.skipped);
        assert!(cal.skipped[1].starts_with("norate: X-FANRUSH-PEAK-RPS must be"), "{:?}", cal.skipped);
        assert!(cal.skipped[2].contains("floating time"), "{:?}", cal.skipped);
        assert!(cal.skipped[3].contains("unknown time zone \"Mars/Olympus\""), "{:?}", cal.skipped);
        let garbage = parse_ics("not a calendar", now());
        assert!(garbage.events.is_empty() && garbage.skipped[0].starts_with("the feed is not iCalendar"));
    }

    #[test]
    fn a_vevent_meets_the_admin_apis_bounds_and_is_skipped_with_the_property_named() {
        let vevent = |uid: &str, extra: &str, end: &str| {
            format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:20261201T100000Z\r\nDTEND:{end}\r\nX-FANRUSH-PEAK-RPS:5\r\n{extra}END:VEVENT\r\n")
        };
        let one_hour = "20261201T110000Z";
        let bad = [
            vevent("huge-peak", "X-FANRUSH-PEAK-RPS:1e17\r\n", one_hour),
            vevent("long-lead", "X-FANRUSH-LEAD-MINUTES:99999\r\n", one_hour),
            vevent("long-cooldown", "X-FANRUSH-COOLDOWN-MINUTES:1441\r\n", one_hour),
            vevent("eleven-years", "", "20371201T100000Z"),
            vevent("long-line", "X-FANRUSH-ADMISSIONS-PER-SECOND:100\r\n", "20261210T100000Z"),
        ]
        .concat();
        let cal = parse_ics(&feed(&bad), now());
        assert!(cal.events.is_empty(), "{:?}", cal.events);
        let expected = [
            "huge-peak: X-FANRUSH-PEAK-RPS must be",
            "long-lead: X-FANRUSH-LEAD-MINUTES must be",
            "long-cooldown: X-FANRUSH-COOLDOWN-MINUTES must be",
            "eleven-years: DTEND must be at most ten years",
            "long-line: DTEND must be at most 7 days",
        ];
        for (skipped, why) in cal.skipped.iter().zip(expected) {
            assert!(skipped.starts_with(why), "{skipped} does not start with {why}");
        }
        // A line that opened more than a week before the feed is read.
        let old = vevent("old-line", "X-FANRUSH-ADMISSIONS-PER-SECOND:100\r\n", one_hour);
        let cal = parse_ics(&feed(&old), Utc.with_ymd_and_hms(2026, 12, 9, 0, 0, 0).unwrap());
        assert!(cal.skipped[0].contains("at most 7 days in the past"), "{:?}", cal.skipped);
    }

    #[test]
    fn a_vevent_carries_its_line_or_is_skipped_for_a_bad_one() {
        let lined = "BEGIN:VEVENT\r\nUID:lined\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n\
X-FANRUSH-PEAK-RPS:60000\r\nX-FANRUSH-ADMISSIONS-PER-SECOND:12000\r\nX-FANRUSH-PREQUEUE-MINUTES:15\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:zero\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n\
X-FANRUSH-PEAK-RPS:5\r\nX-FANRUSH-ADMISSIONS-PER-SECOND:0\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:orphan\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n\
X-FANRUSH-PEAK-RPS:5\r\nX-FANRUSH-PREQUEUE-MINUTES:10\r\nEND:VEVENT\r\n";
        let cal = parse_ics(&feed(lined), now());
        assert_eq!(cal.events.len(), 1, "{:?}", cal.skipped);
        let line = cal.events[0].line.expect("a line");
        assert_eq!((line.admissions_per_second, line.prequeue_minutes), (12_000, 15));
        assert!(cal.skipped[0].starts_with("zero: X-FANRUSH-ADMISSIONS-PER-SECOND must be"), "{:?}", cal.skipped);
        assert!(cal.skipped[1].starts_with("orphan: X-FANRUSH-PREQUEUE-MINUTES is allowed only"), "{:?}", cal.skipped);
    }
}
