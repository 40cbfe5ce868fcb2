//! The APIs' JSON bodies as types, one per schema in `openapi.yaml`
//! (`tests/api_bodies.rs` checks each against its schema): what an answer
//! holds is read here, not assembled in a handler. The waiting answer is
//! the line's own [`Waiting`](crate::usecases::entrance::Waiting); an event
//! is [`FanEventBody`].

use crate::rules::domain::{rfc3339, Entry, FanEventBody};
use crate::rules::line::draw::RevealRow;
use crate::rules::line::receipt::{PublishedKey, Receipt};
use serde::Serialize;

/// `Error`: every refusal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

/// `EventView`: an event as fans see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventViewBody<'a> {
    pub event_id: &'a str,
    pub title: &'a str,
    pub opens_at: &'a str,
    pub closes_at: &'a str,
    pub capacity: i64,
    pub remaining: i64,
    /// For an event whose line has a pre-queue: the commitment to its
    /// draw's seed (docs/line.md, "Checking the draw").
    #[serde(rename = "drawCommitment", skip_serializing_if = "Option::is_none")]
    pub draw_commitment: Option<String>,
    /// Once the draw is sealed, before the opening: the digest of who is
    /// in it, which every place in it depends on.
    #[serde(rename = "drawDigest", skip_serializing_if = "Option::is_none")]
    pub draw_digest: Option<String>,
}

/// `Accepted`: a fan's entry was taken (202) or already was (200).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBody<'a> {
    pub event_id: &'a str,
    pub fan_id: &'a str,
    pub position: i64,
    pub status: &'static str,
    /// The signed receipt of the place (absent only while the receipt keys
    /// cannot be read; `GET /entries/me` gives it later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl<'a> AcceptedBody<'a> {
    pub fn of(e: &'a Entry, receipt: Option<Receipt>) -> Self {
        Self {
            event_id: e.event_id.as_str(),
            fan_id: e.fan_id.as_str(),
            position: e.position,
            status: "accepted",
            receipt,
        }
    }
}

/// `Entry`: a fan's own entry (`GET /events/{eventId}/entries/me`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryBody<'a> {
    #[serde(flatten)]
    pub accepted: AcceptedBody<'a>,
    pub note: Option<&'a str>,
    pub accepted_at: String,
}

impl<'a> EntryBody<'a> {
    pub fn of(e: &'a Entry, receipt: Option<Receipt>) -> Self {
        Self { accepted: AcceptedBody::of(e, receipt), note: e.note.as_deref(), accepted_at: rfc3339(e.accepted_at) }
    }
}

/// `ReceiptKeys`: the keys receipts are checked with, the current one first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiptKeysBody {
    pub keys: Vec<PublishedKey>,
}

/// `FanEvent` with its counts, as the admin API answers: `accepted` is the
/// places the gate holds (queued or written; null when the gate does not
/// hold the event), `written` the rows in PostgreSQL (the GET only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminEventBody<'a> {
    #[serde(flatten)]
    pub event: FanEventBody<'a>,
    pub accepted: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<i64>,
    /// For an event whose line has a pre-queue: the commitment to its
    /// draw's seed, fixed when the event was created.
    #[serde(rename = "drawCommitment", skip_serializing_if = "Option::is_none")]
    pub draw_commitment: Option<String>,
    /// Where the event's gate lives (the GET only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GatePlacementBody>,
}

/// Where an event's gate lives: the hash tag its keys carry, the tag's
/// slot and the primary serving the slot now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatePlacementBody {
    #[serde(rename = "hashTag")]
    pub hash_tag: String,
    pub slot: u16,
    pub shard: Option<String>,
}

/// The admin list: every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventListBody<'a> {
    pub events: Vec<FanEventBody<'a>>,
}

/// One line of an entries page in JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryLineBody<'a> {
    pub position: i64,
    pub fan_id: &'a str,
    pub accepted_at: String,
    pub note: Option<&'a str>,
}

/// `DrawPage`: a page of an event's revealed pre-queue draw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrawPageBody<'a> {
    pub event_id: &'a str,
    pub commitment: &'a str,
    pub seed: &'a str,
    /// The digest the draw was sealed with, before the opening.
    pub digest: &'a str,
    pub revealed_at: String,
    /// How many fans the whole draw holds.
    pub prequeued: usize,
    pub fans: &'a [RevealRow],
    /// The `from` of the next page; null on the last.
    pub next: Option<usize>,
}
