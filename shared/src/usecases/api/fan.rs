//! The fan API (`entry-api`): read an event, enter it, read your entry.
//!
//! A POST is decided by the [`Entrance`] (with or without a line); this
//! module turns its outcome into HTTP. The accept path is one Redis script
//! and one SQS send: a fan is told `accepted` only after SQS acknowledged
//! the entry; when Redis or SQS fails the fan gets 503 with Retry-After,
//! and the reservation is either released (the send surely never happened
//! and no other request took it over) or kept pending so the retry gets
//! the same position.
//!
//! Reads cost the event's core little whoever hammers them: an event's view
//! is this environment's copy, at most [`EVENT_COPY_MAX_AGE`] old; a fan's
//! own entry is answered from memory once this environment told it (or read
//! it), and otherwise reaches the gate a few times per window
//! ([`crate::usecases::entrance::ENTRY_READS`]).
//!
//! Every accepted answer and a fan's own entry carry a signed receipt
//! ([`crate::rules::line::receipt`]), and `GET /receipt-keys` publishes
//! the keys that check it; an event whose line has a pre-queue shows the
//! commitment to its draw ([`crate::rules::line::draw`]).

use super::bodies::{AcceptedBody, EntryBody, EventViewBody, ReceiptKeysBody};
use super::copies::{EventCopies, EVENT_COPY_MAX_AGE};
use super::AuthMode;
use super::{identity, json_response, route, ApiError};
use crate::adapters::redis_gate::{DrawSeed, EntryGate, EntryLookup, GateError, Reservation};
use crate::adapters::sqs_queue::{EntryQueue, QueueError};
use crate::rules::domain::{rfc3339, Entry, EntryRequest, EventId};
use crate::rules::line::draw::{commitment, draw_key, fan_ref, hex};
use crate::rules::line::receipt::{Receipt, ReceiptClaims};
use crate::usecases::clock::{Clock, SystemClock};
use crate::usecases::entrance::{
    Entrance, EntranceError, EntryAttempt, Outcome, RateLimit, ReceiptKeyring, Refusal, TicketKeyring, Waiting,
};
use http::{HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use metrics::{counter, histogram};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The request header a fan repeats its POST with.
pub const TICKET_HEADER: &str = "x-fanrush-ticket";

/// The longest ticket header accepted, as `openapi.yaml` documents it: a
/// ticket is 51 characters, so anything past this is refused before the line
/// (or an unlined gate) is consulted.
pub const TICKET_HEADER_MAX_LEN: usize = 256;

/// The waiting answer's status: 203 Non-Authoritative Information. No other
/// answer of either API uses it, so a client can tell "keep waiting" from
/// every final answer by the status alone; it is a 2xx (waiting is the line
/// working, not an error: API Gateway's 4XX/5XX metrics and the alarms on
/// them stay quiet during an opening); it carries a body; and its meaning
/// fits: the answer is the line's estimate, not the gate's decision.
pub const WAITING: StatusCode = StatusCode::NON_AUTHORITATIVE_INFORMATION;

/// The fan API with its adapters, built once per execution environment.
pub struct FanApi {
    gate: Arc<EntryGate>,
    queue: EntryQueue,
    auth: AuthMode,
    retry_after_s: u64,
    entrance: Entrance,
    events: EventCopies,
    receipts: ReceiptKeyring,
    clock: Arc<dyn Clock>,
}

impl FanApi {
    /// The fan API on `gate` and `queue`. Events with a line answer 503
    /// until [`FanApi::with_line`] gives it ticket keys.
    pub fn new(gate: EntryGate, queue: EntryQueue, auth: AuthMode, retry_after_s: u64) -> Self {
        let gate = Arc::new(gate);
        let sync = crate::rules::line::SYNC_EVERY;
        let entrance = Entrance::new(gate.clone(), TicketKeyring::none(), sync, RateLimit::OFF);
        let events = EventCopies::new(EVENT_COPY_MAX_AGE);
        let receipts = ReceiptKeyring::none();
        Self { gate, queue, auth, retry_after_s, entrance, events, receipts, clock: Arc::new(SystemClock) }
    }

    /// The keys admitted fans' receipts are signed with; without them the
    /// answers carry none.
    pub fn with_receipts(mut self, receipts: ReceiptKeyring) -> Self {
        self.receipts = receipts;
        self
    }

    /// The line's ticket keys, how often each event's line is synced, and
    /// each fan's limit at an event without a line.
    pub fn with_line(mut self, keys: TicketKeyring, sync_every: Duration, limit: RateLimit) -> Self {
        self.entrance = Entrance::new(self.gate.clone(), keys, sync_every, limit);
        self
    }

    /// How old an event's view may be when it is answered from this
    /// environment's copy (zero: every read goes to the gate; tests that
    /// watch the gate change under them).
    pub fn with_event_copies(mut self, max_age: Duration) -> Self {
        self.events = EventCopies::new(max_age);
        self
    }

    /// The clock the API decides by (tests move it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
            ["receipt-keys"] => {
                route::allow(req.method(), "GET")?;
                self.receipt_keys().await
            }
            _ => Err(ApiError::route_not_found()),
        }
    }

    async fn event(&self, id: &str) -> Result<Response<Body>, ApiError> {
        let id = EventId::parse(id)?;
        let view = self.event_view(&id).await?.ok_or(Refusal::EventNotFound)?;
        let body = EventViewBody {
            event_id: id.as_str(),
            title: &view.title,
            opens_at: &view.opens_at,
            closes_at: &view.closes_at,
            capacity: view.capacity,
            remaining: view.remaining(),
            draw_commitment: view.draw.as_ref().filter(|d| d.prequeued).map(|d| commitment(&d.seed)),
            draw_digest: view.draw.as_ref().filter(|d| d.prequeued).and_then(|d| d.digest.clone()),
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// The event's view: this environment's copy while fresh, else read.
    async fn event_view(&self, id: &EventId) -> Result<Option<crate::adapters::redis_gate::EventView>, ApiError> {
        let now_ms = self.clock.now().timestamp_millis();
        if let Some(copy) = self.events.fresh(id, now_ms) {
            return Ok(copy);
        }
        let read = self.gate.event(id).await.map_err(|e| self.gate_failed(e))?;
        self.events.keep(id, read.clone(), now_ms);
        Ok(read)
    }

    /// The published receipt keys.
    async fn receipt_keys(&self) -> Result<Response<Body>, ApiError> {
        let keys = self.receipts.keys().await.map_err(|why| {
            tracing::warn!(why, "receipt keys unreadable");
            unavailable("receipt_keys", self.retry_after_s, "the receipt keys cannot be read right now; retry")
        })?;
        let mut response = json_response(StatusCode::OK, &ReceiptKeysBody { keys: keys.published() });
        // Public and the same for everyone: caches may keep it a while.
        response.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
        Ok(response)
    }

    /// The receipt of an entry: the one this environment gave the fan
    /// before, else signed now with its event's draw (`None`: an event
    /// without a line). None when the keys cannot be read.
    async fn receipt(&self, e: &Entry, draw: Option<&DrawSeed>) -> Option<Receipt> {
        if let Some(given) = self.entrance.told_receipt(&e.event_id, &e.fan_id) {
            return Some(given);
        }
        let keys = match self.receipts.keys().await {
            Ok(keys) => keys,
            Err(_) => {
                counter!("ReceiptsUnsigned").increment(1);
                return None;
            }
        };
        let (event, fan) = (e.event_id.as_str(), e.fan_id.as_str());
        let seed = draw.map_or(&b""[..], |d| d.seed.as_bytes());
        let reference = fan_ref(seed, event, fan);
        let claims = ReceiptClaims {
            event_id: event.to_owned(),
            fan: hex(&reference),
            position: e.position,
            accepted_at: rfc3339(e.accepted_at),
            draw_key: draw.filter(|d| d.prequeued).and_then(|d| {
                let digest = d.digest.as_deref()?;
                Some(format!("{:016x}", draw_key(d.seed.as_bytes(), event, digest, &reference)))
            }),
        };
        Some(keys.current.sign(claims))
    }

    /// An accepted answer (202 or 200) with its receipt; the fan is
    /// remembered as told both. The POST went through the line this
    /// environment follows, or the direct way (no line, no draw).
    async fn accepted(&self, status: StatusCode, e: &Entry) -> Response<Body> {
        let draw = self.entrance.draw_seed(&e.event_id);
        let receipt = self.receipt(e, draw.as_ref()).await;
        self.entrance.told(e, receipt.as_ref());
        json_response(status, &AcceptedBody::of(e, receipt))
    }

    async fn enter(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let fan = identity::fan(req, self.auth).map_err(refused)?;
        let event = EventId::parse(id).map_err(|e| refused(e.into()))?;
        let body = EntryRequest::parse(req.body().as_ref()).map_err(|e| refused(e.into()))?;
        let ticket = match req.headers().get(TICKET_HEADER).map(|v| v.to_str()) {
            None => None,
            Some(Ok(t)) if t.len() <= TICKET_HEADER_MAX_LEN => Some(t),
            Some(_) => return Err(refused(Refusal::TicketMalformed.into())),
        };
        let attempt = EntryAttempt {
            event: &event,
            fan: &fan,
            note: &body.note,
            ticket,
            received_ms: received_at(req),
            now: self.clock.now(),
        };
        let started = Instant::now();
        let outcome = self.entrance.admit(&attempt).await;
        histogram!("RedisLatencyMs").record(started.elapsed().as_secs_f64() * 1e3);
        match outcome.map_err(|e| self.entrance_failed(e))? {
            Outcome::Reserved(reservation) => self.queue_entry(&event, reservation).await,
            Outcome::Existing(entry) => {
                counter!("EntriesRepeated").increment(1);
                Ok(self.accepted(StatusCode::OK, &entry).await)
            }
            Outcome::Waiting(waiting) => Ok(waiting_response(&waiting)),
            Outcome::Refused(refusal) => {
                if refusal == Refusal::SoldOut {
                    counter!("EntriesSoldOut").increment(1);
                }
                Err(refused(refusal.into()))
            }
        }
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
                let response = self.accepted(StatusCode::ACCEPTED, &reservation.entry).await;
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

    fn entrance_failed(&self, e: EntranceError) -> ApiError {
        match e {
            EntranceError::Gate(e) => self.gate_failed(e),
            EntranceError::NoTicketKeys(why) => {
                tracing::error!(why, "the line cannot sign tickets");
                unavailable("line_keys", self.retry_after_s, "the line cannot issue tickets right now; retry later")
            }
            EntranceError::TicketKeyUnread { retry_after } => unavailable(
                "line_keys",
                retry_after.as_millis().div_ceil(1000).max(1) as u64,
                "the line is reading its new ticket key; retry with the same ticket, your place is kept",
            ),
        }
    }

    async fn my_entry(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let fan = identity::fan(req, self.auth)?;
        let event = EventId::parse(id)?;
        if let Some(entry) = self.entrance.told_entry(&event, &fan) {
            return Ok(self.my_entry_response(&entry).await);
        }
        self.entrance.entry_read(&event, &fan, self.clock.now()).map_err(|r| refused(r.into()))?;
        match self.gate.entry(&event, &fan).await.map_err(|e| self.gate_failed(e))? {
            EntryLookup::Confirmed(entry) => Ok(self.my_entry_response(&entry).await),
            EntryLookup::EventNotFound => Err(Refusal::EventNotFound.into()),
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

    /// A fan's own entry, as `GET /entries/me` answers it, with its
    /// receipt: the one given before, else signed with the event's draw
    /// (from the line this environment follows, else the event's view; a
    /// failed read leaves the receipt out). The fan is remembered as told.
    async fn my_entry_response(&self, e: &Entry) -> Response<Body> {
        let receipt = match self.entrance.told_receipt(&e.event_id, &e.fan_id) {
            Some(given) => Some(given),
            None => {
                let draw = match self.entrance.draw_seed(&e.event_id) {
                    Some(draw) => Ok(Some(draw)),
                    None => self.event_view(&e.event_id).await.map(|v| v.and_then(|v| v.draw)),
                };
                match draw {
                    Ok(draw) => self.receipt(e, draw.as_ref()).await,
                    Err(_) => None,
                }
            }
        };
        self.entrance.told(e, receipt.as_ref());
        json_response(StatusCode::OK, &EntryBody::of(e, receipt))
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

/// A waiting answer: 203 with the body, `Retry-After` and the ticket.
fn waiting_response(w: &Waiting) -> Response<Body> {
    let mut response = json_response(WAITING, w);
    let headers = response.headers_mut();
    let seconds = crate::rules::line::poll::retry_after_header(w.retry_after());
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    if let Ok(value) = HeaderValue::from_str(&w.ticket) {
        headers.insert(TICKET_HEADER, value);
    }
    response
}

/// When the request reached API Gateway (Unix ms), as its request context
/// says; set by API Gateway, not by the client.
fn received_at(req: &Request) -> Option<i64> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx.time_epoch),
        _ => None,
    }
}
