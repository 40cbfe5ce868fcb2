//! A page of an event's entries, as operators take them out
//! (`GET /admin/events/{eventId}/entries`): in position order, after a
//! cursor (the last position of the page before), as JSON lines or CSV.
//!
//! A page is at most [`MOST_PER_PAGE`] entries and [`BODY_BUDGET`] bytes,
//! read by the keyset on `(event_id, position)`, so an event of any size is
//! read page by page with flat memory on both sides. A page that stopped at
//! either bound names the next cursor; a short one is the last.
//!
//! The public draw (`GET /draws/{eventId}`) is paged the same way, by index
//! ([`DrawPageRequest`]), with the same query parsing.

use super::bodies::EntryLineBody;
use crate::rules::domain::{rfc3339, Entry, ValidationError};

/// The most entries one page holds.
pub const MOST_PER_PAGE: i64 = 10_000;
/// Entries per page when the request does not say.
pub const DEFAULT_PER_PAGE: i64 = 1_000;
/// The most bytes a page's body holds: under Lambda's 6 MB synchronous
/// response ("Invocation payload (request and response)", Lambda quotas
/// page) with room for the headers. Rows are a few hundred bytes, but a
/// note of control characters escapes to several KB.
pub const BODY_BUDGET: usize = 5 * 1024 * 1024;

/// The header of a full page that names the next page's cursor.
pub const NEXT_HEADER: &str = "x-fanrush-next-after";

/// How a page is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line (`application/x-ndjson`).
    JsonLines,
    /// RFC 4180 with a header row (`text/csv`).
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::JsonLines => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Which page: entries after position `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: i64,
    pub limit: i64,
    pub format: Format,
}

impl PageRequest {
    /// From the query string (`after`, `limit`, `format`); anything else
    /// in it, or a value out of range, is refused with the field named.
    pub fn parse(query: Option<&str>) -> Result<Self, ValidationError> {
        let mut page = Self { after: 0, limit: DEFAULT_PER_PAGE, format: Format::JsonLines };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "after" => page.after = number("after", &value, 0, i64::MAX)?,
                "limit" => page.limit = number("limit", &value, 1, MOST_PER_PAGE)?,
                "format" => {
                    page.format = match value.as_ref() {
                        "jsonl" => Format::JsonLines,
                        "csv" => Format::Csv,
                        _ => return Err(invalid("format", "must be jsonl or csv".into())),
                    }
                }
                _ => return Err(invalid("query", format!("unknown parameter {key:?}; use after, limit, format"))),
            }
        }
        Ok(page)
    }
}

/// A page of a revealed draw: `from` (the first index, 0 by default) and
/// `limit` (rows, up to [`MOST_DRAW_ROWS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawPageRequest {
    pub from: i64,
    pub limit: i64,
}

/// The most rows of a draw one page holds: some 60 bytes each, so a page
/// stays far below Lambda's 6 MB response payload ("Function configuration,
/// deployment, and execution", Lambda quotas,
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>).
pub const MOST_DRAW_ROWS: i64 = 20_000;

/// The largest `from`: far beyond any pre-queue (a page past the end is
/// empty), and a bound `openapi.yaml` can state.
pub const MOST_DRAW_FROM: i64 = 1_000_000_000;

impl DrawPageRequest {
    pub fn parse(query: Option<&str>) -> Result<Self, ValidationError> {
        let mut page = Self { from: 0, limit: MOST_DRAW_ROWS };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "from" => page.from = number("from", &value, 0, MOST_DRAW_FROM)?,
                "limit" => page.limit = number("limit", &value, 1, MOST_DRAW_ROWS)?,
                _ => return Err(invalid("query", format!("unknown parameter {key:?}; use from, limit"))),
            }
        }
        Ok(page)
    }
}

fn number(field: &'static str, value: &str, least: i64, most: i64) -> Result<i64, ValidationError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (least..=most).contains(n))
        .ok_or_else(|| invalid(field, format!("must be a whole number from {least} to {most}")))
}

fn invalid(field: &'static str, reason: String) -> ValidationError {
    ValidationError::InvalidField { field, reason }
}

/// A page written out: its body and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub body: String,
    pub next_after: Option<i64>,
}

/// Writes `entries` (read for `request`) in its format, stopping before the
/// row that would take the body past [`BODY_BUDGET`]; the next cursor is
/// set when the page stopped early or is full.
pub fn render(request: &PageRequest, entries: &[Entry]) -> Page {
    let mut body = String::new();
    if request.format == Format::Csv {
        body.push_str(&csv_row(["position", "fanId", "acceptedAt", "note"]));
    }
    let mut written = 0;
    for e in entries {
        let row = match request.format {
            Format::JsonLines => {
                let line = EntryLineBody {
                    position: e.position,
                    fan_id: e.fan_id.as_str(),
                    accepted_at: rfc3339(e.accepted_at),
                    note: e.note.as_deref(),
                };
                format!("{}\n", serde_json::to_string(&line).unwrap_or_default())
            }
            Format::Csv => {
                let position = e.position.to_string();
                let accepted = rfc3339(e.accepted_at);
                csv_row([position.as_str(), e.fan_id.as_str(), &accepted, e.note.as_deref().unwrap_or_default()])
            }
        };
        if written > 0 && body.len() + row.len() > BODY_BUDGET {
            break;
        }
        body.push_str(&row);
        written += 1;
    }
    let stopped = written < entries.len() || entries.len() as i64 == request.limit;
    let next_after = if stopped && written > 0 { Some(entries[written - 1].position) } else { None };
    Page { body, next_after }
}

/// One CSV record, quoted as RFC 4180 says (by the `csv` crate).
fn csv_row(fields: [&str; 4]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail, and every field is UTF-8.
    let _ = out.write_record(fields);
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::domain::{EventId, FanId};
    use chrono::TimeZone;

    fn entry(position: i64, note: Option<&str>) -> Entry {
        Entry {
            event_id: EventId::parse("gig").unwrap(),
            fan_id: FanId::parse(&format!("fan-{position}")).unwrap(),
            position,
            note: note.map(str::to_owned),
            accepted_at: chrono::Utc.timestamp_millis_opt(1_800_000_000_123).unwrap(),
        }
    }

    #[test]
    fn a_page_request_names_the_field_it_refuses() {
        assert_eq!(
            PageRequest::parse(None).unwrap(),
            PageRequest { after: 0, limit: DEFAULT_PER_PAGE, format: Format::JsonLines }
        );
        let page = PageRequest::parse(Some("after=40&limit=2&format=csv")).unwrap();
        assert_eq!(page, PageRequest { after: 40, limit: 2, format: Format::Csv });
        for (query, field) in [
            ("after=-1", "after"),
            ("after=x", "after"),
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("format=xml", "format"),
            ("page=2", "query"),
        ] {
            match PageRequest::parse(Some(query)) {
                Err(ValidationError::InvalidField { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_full_page_names_the_next_cursor_and_notes_survive_both_formats() {
        let page = PageRequest { after: 0, limit: 2, format: Format::Csv };
        let entries = [entry(1, Some("comma, \"quote\"\nnewline")), entry(2, None)];
        let full = render(&page, &entries);
        assert_eq!(full.next_after, Some(2));
        assert_eq!(render(&page, &entries[..1]).next_after, None, "a short page is the last");

        let mut reader = csv::Reader::from_reader(full.body.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][3], "comma, \"quote\"\nnewline");
        assert_eq!((&rows[1][0], &rows[1][1], &rows[1][3]), ("2", "fan-2", ""));

        let lines = PageRequest { format: Format::JsonLines, ..page };
        let lines: Vec<serde_json::Value> =
            render(&lines, &entries).body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["note"], "comma, \"quote\"\nnewline");
        assert_eq!(lines[1]["note"], serde_json::Value::Null);
        assert_eq!(lines[1]["acceptedAt"], "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn a_page_stops_within_its_byte_budget_and_says_where_to_go_on() {
        let heavy = "\u{1}".repeat(280); // each escapes to six bytes in JSON
        let entries: Vec<Entry> = (1..=5_000).map(|p| entry(p, Some(&heavy))).collect();
        let page = render(&PageRequest { after: 0, limit: 5_000, format: Format::JsonLines }, &entries);
        assert!(page.body.len() <= BODY_BUDGET, "{}", page.body.len());
        let rows = page.body.lines().count() as i64;
        assert!(rows < 5_000 && page.next_after == Some(rows), "stopped at row {rows}: {:?}", page.next_after);
    }
}
