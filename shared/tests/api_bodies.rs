//! Every response body type against its schema in `openapi.yaml`: each
//! field a body writes is one the schema names, with the schema's type
//! (null only where it is nullable), and each field the schema requires is
//! written. Bodies are built through the public types, both with every
//! optional field present and with none, so a field added on either side
//! alone fails here.
//!
//! openapi.yaml is OpenAPI 3.0, whose schemas are not JSON Schema
//! (`nullable`, `allOf` of objects), so the few rules it uses are checked
//! here rather than by a JSON Schema validator.

use chrono::{TimeZone, Utc};
use fanrush::rules::domain::{Entry, EventId, FanEvent, FanEventBody, FanId, LineSettings};
use fanrush::rules::line::draw::{commitment, digest, draw};
use fanrush::rules::line::receipt::{ReceiptClaims, ReceiptKeys};
use fanrush::usecases::api::bodies::{
    AcceptedBody, AdminEventBody, DrawPageBody, EntryBody, EntryLineBody, ErrorBody, EventListBody, EventViewBody,
    GatePlacementBody, ReceiptKeysBody,
};
use fanrush::usecases::entrance::Waiting;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// A schema's properties and required fields, `allOf` and `$ref` resolved.
fn resolve(spec: &Value, schema: &Value) -> (Map<String, Value>, BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(spec, &spec["components"]["schemas"][name]);
    }
    let mut properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let mut required: BTreeSet<String> =
        schema["required"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = resolve(spec, part);
        properties.extend(p);
        required.extend(r);
    }
    (properties, required)
}

fn type_fits(value: &Value, property: &Value) -> bool {
    match value {
        Value::Null => property["nullable"] == true,
        Value::Bool(_) => property["type"] == "boolean",
        Value::Number(n) => match property["type"].as_str() {
            Some("integer") => n.is_i64() || n.is_u64(),
            Some("number") => true,
            _ => false,
        },
        Value::String(s) => {
            property["type"] == "string"
                && property["enum"].as_array().is_none_or(|e| e.iter().any(|v| v == s))
                && (property["format"] != "date-time" || chrono::DateTime::parse_from_rfc3339(s).is_ok())
        }
        Value::Array(_) => property["type"] == "array",
        Value::Object(_) => property["type"] == "object",
    }
}

/// The body, serialized, fits the schema `name`: every field known and of
/// its type, every required field there.
fn fits(spec: &Value, name: &str, body: &impl Serialize) {
    let (properties, required) = resolve(spec, &spec["components"]["schemas"][name]);
    assert!(!properties.is_empty(), "openapi.yaml has no schema {name}");
    let value = serde_json::to_value(body).unwrap();
    let fields = value.as_object().unwrap_or_else(|| panic!("{name}: not an object: {value}"));
    for (field, v) in fields {
        let property = properties.get(field).unwrap_or_else(|| panic!("{name}: {field} is not in openapi.yaml"));
        if let Some(r) = property["$ref"].as_str() {
            // A nested schema: the object fits it.
            fits(spec, r.trim_start_matches("#/components/schemas/"), v);
            continue;
        }
        assert!(type_fits(v, property), "{name}.{field}: {v} does not fit {property}");
    }
    for field in &required {
        assert!(fields.contains_key(field), "{name}: the required {field} is missing from {value}");
    }
}

fn event(line: bool) -> FanEvent {
    FanEvent {
        id: EventId::parse("drop").unwrap(),
        title: "Album drop".into(),
        opens_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        closes_at: Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap(),
        capacity: 5_000,
        expected_peak_rps: 10_000.0,
        lead_minutes: line.then_some(30),
        cooldown_minutes: line.then_some(10),
        line: line.then_some(LineSettings { admissions_per_second: 300, prequeue_minutes: 10 }),
    }
}

fn entry(note: Option<&str>) -> Entry {
    Entry {
        event_id: EventId::parse("drop").unwrap(),
        fan_id: FanId::parse("fan-1").unwrap(),
        position: 7,
        note: note.map(str::to_owned),
        accepted_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 1).unwrap(),
    }
}

#[test]
fn every_response_body_fits_its_schema_in_openapi_yaml() {
    let spec = openapi();
    fits(
        &spec,
        "Error",
        &ErrorBody { error: "invalid_field", message: "capacity: must be at least 1", field: Some("capacity") },
    );
    fits(&spec, "Error", &ErrorBody { error: "sold_out", message: "every place is taken", field: None });
    for (draw_commitment, draw_digest) in
        [(Some(commitment("a seed")), Some(digest(&[[1u8; 8]]))), (Some(commitment("a seed")), None), (None, None)]
    {
        let view = EventViewBody {
            event_id: "drop",
            title: "Album drop",
            opens_at: "2026-12-01T10:00:00Z",
            closes_at: "2026-12-01T11:00:00Z",
            capacity: 5_000,
            remaining: 12,
            draw_commitment,
            draw_digest,
        };
        fits(&spec, "EventView", &view);
    }
    let keys = ReceiptKeys::new(b"current", Some(b"previous"));
    fits(&spec, "ReceiptKeys", &ReceiptKeysBody { keys: keys.published() });
    for (note, draw_key) in [(Some("for my sister"), Some("00ff00ff00ff00ff".to_owned())), (None, None)] {
        let e = entry(note);
        let receipt = keys.current.sign(ReceiptClaims {
            event_id: "drop".into(),
            fan: "0011223344556677".into(),
            position: e.position,
            accepted_at: "2026-12-01T10:00:01.000Z".into(),
            draw_key,
        });
        for receipt in [Some(receipt), None] {
            fits(&spec, "Accepted", &AcceptedBody::of(&e, receipt.clone()));
            fits(&spec, "Entry", &EntryBody::of(&e, receipt));
        }
    }
    let fans = [[1u8; 8], [2u8; 8], [3u8; 8]];
    let rows = draw(b"a seed", "drop", &fans);
    for next in [Some(2), None] {
        let page = DrawPageBody {
            event_id: "drop",
            commitment: &commitment("a seed"),
            seed: "a seed",
            digest: &digest(&fans),
            revealed_at: "2026-12-01T10:01:00.000Z".into(),
            prequeued: 3,
            fans: &rows[..2],
            next,
        };
        fits(&spec, "DrawPage", &page);
    }
    for line in [true, false] {
        let e = event(line);
        fits(&spec, "FanEvent", &FanEventBody::of(&e));
        fits(
            &spec,
            "FanEvent",
            &AdminEventBody {
                event: FanEventBody::of(&e),
                accepted: Some(3),
                written: Some(2),
                draw_commitment: Some(commitment("s")),
                gate: Some(GatePlacementBody {
                    hash_tag: "drop~3".into(),
                    slot: 1234,
                    shard: Some("10.0.0.1:6379".into()),
                }),
            },
        );
        fits(
            &spec,
            "FanEvent",
            &AdminEventBody {
                event: FanEventBody::of(&e),
                accepted: None,
                written: None,
                draw_commitment: None,
                gate: Some(GatePlacementBody { hash_tag: "drop".into(), slot: 0, shard: None }),
            },
        );
    }
    for (position, ahead, eta, opens_in, speed) in
        [(Some(8), Some(7), Some(3), None, Some(2.5)), (None, None, None, Some(60), None)]
    {
        let waiting = Waiting {
            event_id: "drop".into(),
            fan_id: "fan-1".into(),
            status: "waiting",
            ticket: "v1.abc.def".into(),
            position,
            ahead,
            eta_seconds: eta,
            opens_in_seconds: opens_in,
            places_per_second: speed,
            places_left: 40,
            beyond_reach: false,
            retry_after_ms: 1_500,
        };
        fits(&spec, "Waiting", &waiting);
    }
}

#[test]
fn the_event_list_and_the_entries_lines_carry_the_same_fields() {
    let spec = openapi();
    let events = [event(true), event(false)];
    let list = serde_json::to_value(EventListBody { events: events.iter().map(FanEventBody::of).collect() }).unwrap();
    for e in list["events"].as_array().unwrap() {
        fits(&spec, "FanEvent", e);
    }
    // A page's JSON line: an Entry's position, fanId, acceptedAt and note
    // (openapi.yaml describes the lines in prose, as one Entry each less
    // eventId and status).
    let e = entry(None);
    let line = serde_json::to_value(EntryLineBody {
        position: e.position,
        fan_id: e.fan_id.as_str(),
        accepted_at: fanrush::rules::domain::rfc3339(e.accepted_at),
        note: None,
    })
    .unwrap();
    let keys: BTreeSet<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["position", "fanId", "acceptedAt", "note"]));
    let (properties, _) = resolve(&spec, &spec["components"]["schemas"]["Entry"]);
    for (field, v) in line.as_object().unwrap() {
        assert!(type_fits(v, &properties[field.as_str()]), "{field}: {v}");
    }
}
