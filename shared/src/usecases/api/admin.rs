//! The admin API (`admin-api`): operators define the calendar of fan events.
//!
//! A definition is published to the Redis gate first (atomically refusing a
//! capacity below the slots already taken, never resetting counters) and then
//! stored in PostgreSQL, the calendar the scheduler reads. If the second step
//! fails the client gets 503 and its retry converges both.
//!
//! Operators take an event's entries out page by page
//! ([`entries_page`]): the record in PostgreSQL, in position order.
//!
//! Anyone may read an event's revealed pre-queue draw (`GET
//! /draws/{eventId}`, no identity needed), page by page.
//!
//! A new event is placed: its gate's keys get the hash tag that puts them
//! on the Redis shard least loaded during its window
//! ([`crate::rules::scaling::placement`]); PostgreSQL keeps the tag and the
//! GET shows it with its slot and shard.
//!
//! A deleted event's id is retired: its entries stay in PostgreSQL, and a
//! new event under the same id would hand their positions out again, so a
//! PUT of a retired id is refused with 409 `event_id_retired`.

use super::bodies::{AdminEventBody, DrawPageBody, EventListBody, GatePlacementBody};
use super::entries_page::{self, DrawPageRequest, PageRequest};
use super::AuthMode;
use super::{identity, json_response, no_content, route, ApiError};
use crate::adapters::postgres_store::{Database, StoreError, Upserted};
use crate::adapters::redis_gate::{EntryGate, GateError, Published, SeedWrite};
use crate::adapters::sqs_queue::{DeadLetterQueue, EntryQueue};
use crate::rules::domain::{rfc3339, FanEventBody};
use crate::rules::domain::{EventId, FanEvent, FanEventSpec, ValidationError};
use crate::rules::line::draw::commitment;
use crate::rules::scaling::placement;
use crate::usecases::draws;
use crate::usecases::recovery::{self, Queues};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

/// Largest event definition accepted.
const MAX_EVENT_BODY_BYTES: usize = 16 * 1024;

/// The admin API with its adapters, built once per execution environment.
pub struct AdminApi {
    gate: EntryGate,
    db: Database,
    queue: EntryQueue,
    dead_letters: DeadLetterQueue,
    auth: AuthMode,
    retry_after_s: u64,
    restore_settle: std::time::Duration,
}

impl AdminApi {
    pub fn new(
        gate: EntryGate,
        db: Database,
        queue: EntryQueue,
        dead_letters: DeadLetterQueue,
        auth: AuthMode,
        retry_after_s: u64,
    ) -> Self {
        Self { gate, db, queue, dead_letters, auth, retry_after_s, restore_settle: std::time::Duration::ZERO }
    }

    /// How long after a loss of the gate state a write may restore it (see
    /// [`recovery::restore_gate`]); zero unless set.
    pub fn with_restore_settle(mut self, settle: std::time::Duration) -> Self {
        self.restore_settle = settle;
        self
    }

    /// Answers one request; never fails, never panics on input.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        self.route(&req).await.unwrap_or_else(ApiError::into_response)
    }

    async fn route(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let segments = route::segments(req.uri().path());
        let id = match segments.as_slice() {
            ["admin", "events"] => None,
            ["admin", "events", id] => Some(*id),
            ["admin", "events", id, "entries"] => {
                route::allow(req.method(), "GET")?;
                identity::admin(req, self.auth)?;
                return self.entries(&EventId::parse(id)?, req.uri().query()).await;
            }
            // Public: anyone may check a draw.
            ["draws", id] => {
                route::allow(req.method(), "GET")?;
                return self.draw(&EventId::parse(id)?, req.uri().query()).await;
            }
            _ => return Err(ApiError::route_not_found()),
        };
        let allowed = if id.is_some() { "GET, PUT, DELETE" } else { "GET" };
        route::allow(req.method(), allowed)?;
        let operator = identity::admin(req, self.auth)?;
        let Some(id) = id else { return self.list().await };
        let id = EventId::parse(id)?;
        match *req.method() {
            Method::PUT => self.put(&operator, id, req.body().as_ref()).await,
            Method::DELETE => self.delete(&operator, &id).await,
            _ => self.get(&id).await,
        }
    }

    async fn list(&self) -> Result<Response<Body>, ApiError> {
        let events = self.db.events().await.map_err(|e| self.store_failed(e))?;
        Ok(json_response(StatusCode::OK, &EventListBody { events: events.iter().map(FanEventBody::of).collect() }))
    }

    async fn get(&self, id: &EventId) -> Result<Response<Body>, ApiError> {
        let event = self.db.event(id).await.map_err(|e| self.store_failed(e))?.ok_or_else(event_not_found)?;
        let written = self.db.written_count(id).await.map_err(|e| self.store_failed(e))?;
        let view = self.gate.event(id).await.map_err(|e| self.gate_failed(e))?;
        let seed = self.db.line_seed(id).await.map_err(|e| self.store_failed(e))?;
        let gate = self.placement(id).await.map_err(|e| self.gate_failed(e))?;
        let body = AdminEventBody {
            event: FanEventBody::of(&event),
            accepted: view.map(|v| v.taken),
            written: Some(written),
            draw_commitment: draw_commitment(&event, seed.as_deref()),
            gate,
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// A page of an event's revealed draw: the seed, its commitment and the
    /// pre-queued fans from `from` on, in the draw's order.
    async fn draw(&self, id: &EventId, query: Option<&str>) -> Result<Response<Body>, ApiError> {
        let request = DrawPageRequest::parse(query)?;
        let Some((reveal, revealed_at)) = draws::reveal(&self.db, id).await.map_err(|e| self.store_failed(e))? else {
            let event = self.db.event(id).await.map_err(|e| self.store_failed(e))?.ok_or_else(event_not_found)?;
            return Err(match event.line {
                Some(line) if line.prequeue_minutes > 0 => ApiError::not_found(
                    "draw_not_revealed",
                    "the draw is revealed once the pre-queue is drawn, a minute or two after the opening; \
                     its commitment is in GET /events/{eventId}",
                ),
                _ => ApiError::not_found("no_draw", "this event has no pre-queue, so no draw"),
            });
        };
        let total = reveal.fans.len();
        let from = (request.from as usize).min(total);
        let to = (from + request.limit as usize).min(total);
        let body = DrawPageBody {
            event_id: id.as_str(),
            commitment: &reveal.commitment,
            seed: &reveal.seed,
            digest: &reveal.digest,
            revealed_at: rfc3339(revealed_at),
            prequeued: total,
            fans: &reveal.fans[from..to],
            next: (to < total).then_some(to),
        };
        let mut response = json_response(StatusCode::OK, &body);
        // Written once and never changed: caches may keep it.
        response
            .headers_mut()
            .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=300"));
        Ok(response)
    }

    /// A page of the event's entries (PostgreSQL, position order): an
    /// event deleted since keeps its entries and is read too.
    async fn entries(&self, id: &EventId, query: Option<&str>) -> Result<Response<Body>, ApiError> {
        let request = PageRequest::parse(query)?;
        let entries =
            self.db.entries_after(id, request.after, request.limit).await.map_err(|e| self.store_failed(e))?;
        if entries.is_empty() && request.after == 0 {
            let known = self.db.event(id).await.map_err(|e| self.store_failed(e))?.is_some()
                || self.db.is_retired(id).await.map_err(|e| self.store_failed(e))?;
            if !known {
                return Err(event_not_found());
            }
        }
        let page = entries_page::render(&request, &entries);
        let mut response = Response::new(Body::Text(page.body));
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(request.format.content_type()));
        headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        if let Some(after) = page.next_after {
            headers.insert(entries_page::NEXT_HEADER, http::HeaderValue::from(after));
        }
        Ok(response)
    }

    async fn put(&self, operator: &str, id: EventId, body: &[u8]) -> Result<Response<Body>, ApiError> {
        if body.len() > MAX_EVENT_BODY_BYTES {
            return Err(ValidationError::BodyTooLarge { limit: MAX_EVENT_BODY_BYTES, actual: body.len() }.into());
        }
        let event = FanEventSpec::parse_at(id, body, chrono::Utc::now())?;
        if self.db.is_retired(&event.id).await.map_err(|e| self.store_failed(e))? {
            return Err(retired(&event.id));
        }
        // The line's seed is fixed when the event is first stored: an update
        // publishes the stored one, a new event a fresh one.
        let stored = self.db.line_seed(&event.id).await.map_err(|e| self.store_failed(e))?;
        refuse_another_commitment(body, stored.as_deref())?;
        // A new event is placed on the shard least loaded in its window; one
        // the gate lists keeps its tag whatever is asked.
        let wanted = match stored {
            Some(_) => event.id.as_str().to_owned(),
            None => self.place(&event).await?,
        };
        let seed = stored.unwrap_or_else(crate::adapters::redis_gate::new_line_seed);
        let (published, tag) = match self.gate.publish_at(&event, &wanted, SeedWrite::Set(&seed)).await {
            Err(GateError::StateLost) => {
                self.restore().await?;
                self.gate.publish_at(&event, &wanted, SeedWrite::Set(&seed)).await
            }
            other => other,
        }
        .map_err(|e| self.gate_failed(e))?;
        let taken = match published {
            Published::Ok { taken } => taken,
            // Deleted between the check above and the publish.
            Published::Retired => return Err(retired(&event.id)),
            Published::Archived => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "event_archived",
                    format!(
                        "event {} closed and was archived: its entries are in the database and its fans no longer \
                         in the gate, so it cannot be changed or reopened; define a new event under a new id",
                        event.id
                    ),
                ))
            }
            Published::CapacityBelowTaken { taken } => {
                return Err(ApiError {
                    field: Some("capacity"),
                    ..ApiError::new(
                        StatusCode::CONFLICT,
                        "capacity_below_accepted",
                        format!("{taken} places are already taken; capacity cannot go below that"),
                    )
                })
            }
        };
        let (upserted, kept_seed) = self.db.upsert_event(&event, &seed).await.map_err(|e| self.store_failed(e))?;
        if upserted != Upserted::Retired && kept_seed != seed {
            // Another PUT created the event first: its seed is the one stored.
            self.gate.publish(&event, SeedWrite::Set(&kept_seed)).await.map_err(|e| self.gate_failed(e))?;
        }
        if upserted != Upserted::Retired {
            let kept = self.db.keep_gate_tag(&event.id, &tag).await.map_err(|e| self.store_failed(e))?;
            if kept.as_deref().is_some_and(|k| k != tag) {
                tracing::error!(event = %event.id, gate = %tag, stored = ?kept, "the gate and the database name different tags");
            }
        }
        let created = match upserted {
            Upserted::Created => true,
            Upserted::Updated => false,
            // Deleted between the check and now: take the definition back out.
            Upserted::Retired => {
                self.gate.unpublish(&event.id).await.map_err(|e| self.gate_failed(e))?;
                return Err(retired(&event.id));
            }
        };
        tracing::info!(event = %event.id, operator, created, "fan event defined");
        let body = AdminEventBody {
            event: FanEventBody::of(&event),
            accepted: Some(taken),
            written: None,
            draw_commitment: draw_commitment(&event, Some(&kept_seed)),
            gate: None,
        };
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(json_response(status, &body))
    }

    async fn delete(&self, operator: &str, id: &EventId) -> Result<Response<Body>, ApiError> {
        // Close the gate first so no fan enters an event being deleted.
        self.gate.unpublish(id).await.map_err(|e| self.gate_failed(e))?;
        let existed = self.db.delete_event(id).await.map_err(|e| self.store_failed(e))?;
        if !existed {
            return Err(event_not_found());
        }
        tracing::info!(event = %id, operator, "fan event deleted");
        Ok(no_content())
    }

    /// The hash tag for a new event: on the shard whose load peaks lowest
    /// during its window, counting the calendar's events where their tags
    /// put them ([`placement`]).
    async fn place(&self, event: &FanEvent) -> Result<String, ApiError> {
        let shards = self.gate.shards().await.map_err(|e| self.gate_failed(e))?;
        if shards.len() < 2 {
            return Ok(event.id.as_str().to_owned());
        }
        let events = self.db.events().await.map_err(|e| self.store_failed(e))?;
        let tags = self.db.gate_tags().await.map_err(|e| self.store_failed(e))?;
        Ok(placement::place(&shards, &events, &tags, event))
    }

    /// Where an event's gate lives now; `None` when the gate does not list
    /// it.
    async fn placement(&self, id: &EventId) -> Result<Option<GatePlacementBody>, GateError> {
        let Some(tag) = self.gate.tag_of(id).await? else { return Ok(None) };
        let slot = placement::slot_of(&tag);
        let shards = self.gate.shards().await?;
        let shard = placement::shard_of(&shards, slot).map(|s| shards[s].primary.clone());
        Ok(Some(GatePlacementBody { hash_tag: tag, slot, shard }))
    }

    async fn restore(&self) -> Result<(), ApiError> {
        let queues = Queues { entries: &self.queue, dead_letters: &self.dead_letters };
        match recovery::restore_gate(&self.gate, &self.db, &queues, chrono::Utc::now(), self.restore_settle).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_deferred() => Err(ApiError::unavailable(
                self.retry_after_s,
                "the gate is being restored; retry once the queue drains",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "gate restore failed");
                Err(ApiError::unavailable(self.retry_after_s, "the gate could not be restored; retry"))
            }
        }
    }

    fn gate_failed(&self, e: GateError) -> ApiError {
        tracing::warn!(error = %e, "gate unavailable");
        let message = match e {
            GateError::EvictionPossible(_) => "redis may evict the gate's keys; set maxmemory-policy noeviction",
            _ => "redis is unavailable; retry",
        };
        ApiError::unavailable(self.retry_after_s, message)
    }

    fn store_failed(&self, e: StoreError) -> ApiError {
        tracing::warn!(error = %e, "store unavailable");
        ApiError::unavailable(self.retry_after_s, "the database is unavailable; retry")
    }
}

fn retired(id: &EventId) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "event_id_retired",
        format!("event {id} was deleted and its entries are kept; define the new event under a new id"),
    )
}

/// The commitment to an event's draw, when its line has a pre-queue.
fn draw_commitment(event: &FanEvent, seed: Option<&str>) -> Option<String> {
    let prequeued = event.line.is_some_and(|l| l.prequeue_minutes > 0);
    seed.filter(|_| prequeued).map(commitment)
}

/// The draw's seed is fixed when the event is first stored, so its
/// commitment never changes: a PUT that names another one (or any, for a
/// new event, whose seed fanrush draws) is refused by the field's name. A
/// body read back from a GET names the stored one, and passes.
fn refuse_another_commitment(body: &[u8], stored_seed: Option<&str>) -> Result<(), ApiError> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else { return Ok(()) };
    let Some(claimed) = fields.get("drawCommitment") else { return Ok(()) };
    if stored_seed.map(commitment).is_some_and(|c| claimed.as_str() == Some(&c)) {
        return Ok(());
    }
    Err(ValidationError::InvalidField {
        field: "drawCommitment",
        reason: "the draw's commitment is fixed by fanrush when the event is created and never changes; omit it".into(),
    }
    .into())
}

fn event_not_found() -> ApiError {
    ApiError::not_found("event_not_found", "no such event")
}
