//! The fan API (`entry-api`): read an event, enter it, read your entry.
//!
//! The accept path is one Redis script and one SQS send. A fan is told
//! `accepted` only after SQS acknowledged the entry; when Redis or SQS fails
//! the fan gets 503 with Retry-After, and the reservation is either released
//! (the send surely never happened) or kept pending so the retry gets the
//! same position.

use super::{identity, json_response, route, ApiError};
use crate::config::AuthMode;
use crate::domain::{Entry, EntryRequest, EventId};
use crate::gate::{Admission, EntryGate, EntryLookup, GateError};
use crate::queue::{EntryQueue, QueueError};
use chrono::Utc;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use metrics::{counter, histogram};
use serde_json::json;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The fan API with its adapters, built once per execution environment.
pub struct FanApi {
    gate: EntryGate,
    queue: EntryQueue,
    auth: AuthMode,
    retry_after_s: u64,
    tokens: RequestTokens,
}

impl FanApi {
    pub fn new(gate: EntryGate, queue: EntryQueue, auth: AuthMode, retry_after_s: u64) -> Self {
        Self { gate, queue, auth, retry_after_s, tokens: RequestTokens::new() }
    }

    /// Answers one request; never fails, never panics on input.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.route(&req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn route(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        match route::segments(req.uri().path()).as_slice() {
            ["events", id] => {
                route::allow(req.method(), "GET")?;
                self.event(id).await
            }
            ["events", id, "entries"] => {
                route::allow(req.method(), "POST")?;
                self.enter(req, id).await
            }
            ["events", id, "entries", "me"] => {
                route::allow(req.method(), "GET")?;
                self.my_entry(req, id).await
            }
            _ => Err(ApiError::route_not_found()),
        }
    }

    async fn event(&self, id: &str) -> Result<Response<Body>, ApiError> {
        let id = EventId::parse(id)?;
        let view = self.gate.event(&id).await.map_err(|e| self.gate_failed(e))?.ok_or_else(event_not_found)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "eventId": id.as_str(),
                "title": view.title,
                "opensAt": view.opens_at,
                "closesAt": view.closes_at,
                "capacity": view.capacity,
                "remaining": view.remaining(),
            }),
        ))
    }

    async fn enter(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let fan = identity::fan(req, self.auth).map_err(refused)?;
        let event = EventId::parse(id).map_err(|e| refused(e.into()))?;
        let body = EntryRequest::parse(req.body().as_ref()).map_err(|e| refused(e.into()))?;
        let token = self.tokens.next();
        let started = Instant::now();
        let admission = self.gate.admit(&event, &fan, &body.note, Utc::now(), &token).await;
        histogram!("RedisLatencyMs").record(started.elapsed().as_secs_f64() * 1e3);
        let reservation = match admission.map_err(|e| self.gate_failed(e))? {
            Admission::Reserved(r) => r,
            Admission::Existing(entry) => {
                counter!("EntriesRepeated").increment(1);
                return Ok(accepted(StatusCode::OK, &entry));
            }
            Admission::NotFound => return Err(refused(event_not_found())),
            Admission::NotOpen => {
                return Err(refused(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "event_not_open",
                    "the event is not open yet",
                )))
            }
            Admission::Closed => {
                return Err(refused(ApiError::new(StatusCode::FORBIDDEN, "event_closed", "the event has closed")))
            }
            Admission::SoldOut => {
                counter!("EntriesSoldOut").increment(1);
                return Err(ApiError::new(StatusCode::CONFLICT, "sold_out", "no places are left"));
            }
        };
        let started = Instant::now();
        let sent = self.queue.send(&reservation.entry).await;
        histogram!("SqsLatencyMs").record(started.elapsed().as_secs_f64() * 1e3);
        if sent.is_err() {
            counter!("SqsErrors").increment(1);
        }
        match sent {
            Ok(()) => {
                counter!("EntriesAccepted").increment(1);
                // The entry is durable now. If marking it so fails, the sweep
                // finds its row later and confirms it; the fan is accepted.
                match self.gate.confirm(&reservation).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(event = %event, position = reservation.entry.position, "confirmed entry had no reservation")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, event = %event, "could not confirm a queued entry; the sweep will")
                    }
                }
                Ok(accepted(StatusCode::ACCEPTED, &reservation.entry))
            }
            Err(QueueError::NotSent(e)) | Err(QueueError::Api(e)) => {
                tracing::warn!(error = %e, event = %event, "entry not queued; releasing its slot");
                if let Err(e) = self.gate.release(&reservation).await {
                    tracing::warn!(error = %e, event = %event, "could not release a slot; the sweep will");
                }
                Err(ApiError::unavailable(self.retry_after_s, "the entry queue is unavailable; retry"))
            }
            Err(QueueError::Unknown(e)) => {
                tracing::warn!(error = %e, event = %event, "entry send outcome unknown; keeping its slot for the retry");
                Err(ApiError::unavailable(self.retry_after_s, "the entry queue did not answer; retry"))
            }
        }
    }

    async fn my_entry(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let fan = identity::fan(req, self.auth)?;
        let event = EventId::parse(id)?;
        match self.gate.entry(&event, &fan).await.map_err(|e| self.gate_failed(e))? {
            EntryLookup::Confirmed(e) => Ok(json_response(
                StatusCode::OK,
                &json!({
                    "eventId": e.event_id.as_str(),
                    "fanId": e.fan_id.as_str(),
                    "position": e.position,
                    "note": e.note,
                    "acceptedAt": crate::domain::rfc3339(e.accepted_at),
                    "status": "accepted",
                }),
            )),
            EntryLookup::EventNotFound => Err(event_not_found()),
            EntryLookup::None | EntryLookup::Pending => {
                Err(ApiError::not_found("entry_not_found", "you have no accepted entry in this event"))
            }
        }
    }

    fn gate_failed(&self, e: GateError) -> ApiError {
        counter!("RedisErrors").increment(1);
        tracing::warn!(error = %e, "gate unavailable");
        let message = match e {
            GateError::StateLost => "the event state is being restored; retry",
            _ => "the entry gate is unavailable; retry",
        };
        ApiError::unavailable(self.retry_after_s, message)
    }
}

/// Counts a refusal by its reason.
fn refused(e: ApiError) -> ApiError {
    counter!("EntriesRejected", "reason" => e.code).increment(1);
    e
}

fn event_not_found() -> ApiError {
    ApiError::not_found("event_not_found", "no such event")
}

fn accepted(status: StatusCode, e: &Entry) -> Response<Body> {
    json_response(
        status,
        &json!({ "eventId": e.event_id.as_str(), "fanId": e.fan_id.as_str(), "position": e.position, "status": "accepted" }),
    )
}

/// Unique request tokens: a random per-process seed and a counter, so two
/// environments never mint the same token without a random-number crate.
struct RequestTokens {
    seed: u64,
    counter: AtomicU64,
}

impl RequestTokens {
    fn new() -> Self {
        Self { seed: RandomState::new().hash_one(std::process::id()), counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        format!("{:016x}{:x}", self.seed, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}
