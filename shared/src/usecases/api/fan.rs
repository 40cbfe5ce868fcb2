//! The fan API (`entry-api`): read an event, enter it, read your entry.
//!
//! The accept path is one Redis script and one SQS send. A fan is told
//! `accepted` only after SQS acknowledged the entry; when Redis or SQS fails
//! the fan gets 503 with Retry-After, and the reservation is either released
//! (the send surely never happened and no other request took it over) or
//! kept pending so the retry gets the same position.
//!
//! For an event with a line ([`super::line`]), a POST joins the line or
//! polls it with the fan's ticket, and is answered 203 `waiting` from this
//! environment's memory until the fan's turn comes; then the same POST takes
//! the accept path, at the gate's pace.

use super::line::{LineError, Lines, Step, TicketKeyring, TICKET_HEADER, TICKET_HEADER_MAX_LEN};
use super::AuthMode;
use super::{identity, json_response, route, ApiError};
use crate::adapters::redis_gate::{Admission, EntryGate, EntryLookup, GateError, LineCall, Reservation};
use crate::adapters::sqs_queue::{EntryQueue, QueueError};
use crate::rules::domain::{Entry, EntryRequest, EventId};
use chrono::Utc;
use http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use metrics::{counter, histogram};
use serde_json::json;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The fan API with its adapters, built once per execution environment.
pub struct FanApi {
    gate: Arc<EntryGate>,
    queue: EntryQueue,
    auth: AuthMode,
    retry_after_s: u64,
    tokens: RequestTokens,
    lines: Lines,
}

impl FanApi {
    pub fn new(gate: EntryGate, queue: EntryQueue, auth: AuthMode, retry_after_s: u64) -> Self {
        Self {
            gate: Arc::new(gate),
            queue,
            auth,
            retry_after_s,
            tokens: RequestTokens::new(),
            lines: Lines::new(TicketKeyring::none(), crate::rules::line::SYNC_EVERY),
        }
    }

    /// The line's ticket keys, and how often each event's line is synced.
    pub fn with_line(mut self, keys: TicketKeyring, sync_every: Duration) -> Self {
        self.lines = Lines::new(keys, sync_every);
        self
    }

    /// Does now what the first request would otherwise do: builds the SQS
    /// client and opens the Redis connection (TLS, AUTH, `INFO`) with
    /// `connect_budget` for the connect. For environments Lambda initializes
    /// ahead of traffic; on error (logged) nothing is kept and the first
    /// request connects as usual.
    pub async fn warm(&self, connect_budget: Duration) -> Result<(), GateError> {
        let started = Instant::now();
        self.queue.warm().await;
        let warmed = self.gate.warm(connect_budget).await;
        let ms = started.elapsed().as_millis() as u64;
        match &warmed {
            Ok(()) => tracing::info!(ms, "warmed at init: SQS client built, Redis connected"),
            Err(e) => tracing::warn!(ms, error = %e, "warming at init failed; the first request connects"),
        }
        warmed
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
        let ticket = match req.headers().get(TICKET_HEADER).map(|v| v.to_str()) {
            None => None,
            Some(Ok(t)) if t.len() <= TICKET_HEADER_MAX_LEN => Some(t),
            Some(_) => {
                return Err(refused(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_ticket",
                    "the ticket is malformed",
                )))
            }
        };
        let now = Utc::now();
        let received = received_at(req);
        let mut step =
            self.lines.step(&self.gate, &event, &fan, ticket, now, received).await.map_err(|e| self.line_failed(e))?;
        for _ in 0..2 {
            let (call, place) = match step {
                Step::Answer(response) => return Ok(response),
                Step::Unlined => (LineCall::Unlined, None),
                Step::Turn { call, place } => (call, Some(place)),
            };
            let token = self.tokens.next();
            let started = Instant::now();
            let lined = !matches!(call, LineCall::Unlined);
            let admission = match call {
                LineCall::Unlined => self.gate.admit(&event, &fan, &body.note, now, &token).await,
                call => {
                    // The environment's refresh of the line rides on the admission.
                    let refresh = self.lines.refresh(&event, now);
                    let outcome = self.gate.admit_in_line(&event, &fan, &body.note, now, &token, call, &refresh).await;
                    let tail = outcome.as_ref().map(|(_, tail)| tail);
                    self.lines.refreshed(&self.gate, &event, &refresh, tail, now).await;
                    outcome.map(|(admission, _)| admission)
                }
            };
            histogram!("RedisLatencyMs").record(started.elapsed().as_secs_f64() * 1e3);
            let reservation = match admission.map_err(|e| self.gate_failed(e))? {
                Admission::Reserved(r) if lined => {
                    counter!("LineAdmitted").increment(1);
                    r
                }
                Admission::Reserved(r) => r,
                Admission::Lined => {
                    // The event has a line this environment did not know of.
                    self.lines.adopt(&self.gate, &event, now).await.map_err(|e| self.line_failed(e))?;
                    step = self
                        .lines
                        .step(&self.gate, &event, &fan, ticket, now, received)
                        .await
                        .map_err(|e| self.line_failed(e))?;
                    continue;
                }
                Admission::Paced { retry_after } => {
                    let place =
                        place.ok_or_else(|| self.gate_failed(GateError::Protocol("paced without a line".into())))?;
                    return self
                        .lines
                        .paced(&event, &fan, place, now, retry_after)
                        .await
                        .map_err(|e| self.line_failed(e));
                }
                Admission::TurnMissed => {
                    return Err(refused(ApiError::new(
                        StatusCode::GONE,
                        "turn_missed",
                        "your turn came and passed; join the line again (POST without the ticket)",
                    )))
                }
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
                Admission::RateLimited { retry_after } => {
                    let seconds = retry_after.as_millis().div_ceil(1000).max(1) as u64;
                    return Err(refused(ApiError {
                        retry_after: Some(seconds),
                        ..ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate_limited",
                            "too many entry attempts; slow down",
                        )
                    }));
                }
                Admission::SoldOut => {
                    counter!("EntriesSoldOut").increment(1);
                    self.lines.sold_out(&event);
                    return Err(ApiError::new(StatusCode::CONFLICT, "sold_out", "no places are left"));
                }
            };
            return self.queue_entry(&event, reservation).await;
        }
        Err(self.gate_failed(GateError::Protocol("the gate kept sending this request to the line".into())))
    }

    /// Sends a reserved entry to SQS and answers: 202 once it is queued.
    async fn queue_entry(&self, event: &EventId, reservation: Reservation) -> Result<Response<Body>, ApiError> {
        let started = Instant::now();
        let sent = self.queue.send(&reservation.entry).await;
        histogram!("SqsLatencyMs").record(started.elapsed().as_secs_f64() * 1e3);
        if sent.is_err() {
            counter!("SqsErrors").increment(1);
        }
        match sent {
            Ok(()) => {
                counter!("EntriesAccepted").increment(1);
                let response = accepted(StatusCode::ACCEPTED, &reservation.entry);
                confirm_detached(self.gate.clone(), reservation).await;
                Ok(response)
            }
            Err(QueueError::NotSent(e)) | Err(QueueError::Api(e)) => {
                tracing::warn!(error = %e, event = %event, "entry not queued; releasing its slot");
                if let Err(e) = self.gate.release(&reservation).await {
                    tracing::warn!(error = %e, event = %event, "could not release a slot; the sweep will");
                }
                Err(unavailable("queue", self.retry_after_s, "the entry queue is unavailable; retry"))
            }
            Err(e @ (QueueError::Unknown(_) | QueueError::DeadLettersBusy(_))) => {
                tracing::warn!(error = %e, event = %event, "entry send outcome unknown; keeping its slot for the retry");
                Err(unavailable("queue", self.retry_after_s, "the entry queue did not answer; retry"))
            }
        }
    }

    fn line_failed(&self, e: LineError) -> ApiError {
        match e {
            LineError::Gate(e) => self.gate_failed(e),
            LineError::NotFound => refused(event_not_found()),
            // Counted as EntriesSoldOut already, as the gate's sold out is.
            LineError::Refused(e) if e.code == "sold_out" => e,
            LineError::Refused(e) => refused(e),
            LineError::NoKeys(why) => {
                tracing::error!(why, "the line cannot sign tickets");
                unavailable("line_keys", self.retry_after_s, "the line cannot issue tickets right now; retry later")
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
                    "acceptedAt": crate::rules::domain::rfc3339(e.accepted_at),
                    "status": "accepted",
                }),
            )),
            EntryLookup::EventNotFound => Err(event_not_found()),
            EntryLookup::Archived => Err(ApiError::new(
                StatusCode::GONE,
                "entry_archived",
                "this event has closed; its entries are kept by the organiser but no longer shown here",
            )),
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
            GateError::EvictionPossible(_) => "the entry gate is misconfigured and refuses entries; retry later",
            _ => "the entry gate is unavailable; retry",
        };
        unavailable("gate", self.retry_after_s, message)
    }
}

/// A 503, counted by the dependency that caused it.
fn unavailable(cause: &'static str, retry_after_s: u64, message: &str) -> ApiError {
    counter!("Unavailable", "cause" => cause).increment(1);
    ApiError::unavailable(retry_after_s, message)
}

/// Marks a queued entry confirmed without waiting for Redis's reply: the
/// command is handed to the connection before the fan is answered (one poll
/// puts it on the wire queue, so this environment's next command sees it),
/// and the reply is awaited in the background. This keeps the accept path to
/// one awaited Redis round trip and one SQS call. If the confirm is lost (the
/// environment is frozen or killed first), the entry stays pending and the
/// sweep confirms it from its row; a repeat POST re-sends it with the same
/// position, which the idempotent writer absorbs.
async fn confirm_detached(gate: Arc<EntryGate>, reservation: Reservation) {
    let mut confirm = Box::pin(async move {
        let entry = &reservation.entry;
        match gate.confirm(&reservation).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(event = %entry.event_id, position = entry.position, "confirmed entry had no reservation")
            }
            Err(e) => {
                tracing::warn!(error = %e, event = %entry.event_id, "could not confirm a queued entry; the sweep will")
            }
        }
    });
    let first = std::future::poll_fn(|cx| Poll::Ready(confirm.as_mut().poll(cx))).await;
    if first.is_pending() {
        tokio::spawn(confirm);
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

/// When the request reached API Gateway (Unix ms), as its request context
/// says; set by API Gateway, not by the client.
fn received_at(req: &Request) -> Option<i64> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx.time_epoch),
        _ => None,
    }
}
