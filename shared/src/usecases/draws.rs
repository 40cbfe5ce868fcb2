//! Revealing pre-queue draws, and reading them back for anyone who asks.
//!
//! Once an event with a pre-queue has opened ([`REVEAL_AFTER`]), the
//! scheduler reads the sealed draw from the gate (sealing it first if no
//! environment did), checks that the gate's seed is the one PostgreSQL
//! holds (the one the commitment was made to) and that the fans read hash
//! to the digest sealed before the opening, and stores the seed, the digest
//! and the fans in the order counted, once. A draw whose line was restored
//! since its pre-queue opened, or whose gate holds another seed than the
//! stored one, is withheld, never published: a published draw never
//! changes (the scheduler names it to Slack). The public
//! `GET /draws/{eventId}` ([`reveal`]) answers from that row, so the
//! reveal outlives the event's keys in Redis.

use crate::adapters::postgres_store::{Database, StoreError};
use crate::adapters::redis_gate::{EntryGate, GateError};
use crate::rules::domain::{EventId, FanEvent};
use crate::rules::line::draw::{commitment, draw, Reveal};
use crate::rules::line::SYNC_EVERY_MOST;
use chrono::{DateTime, Utc};
use std::time::Duration;
use thiserror::Error;

/// How long after the opening a draw is revealed: twice the longest an
/// environment waits between syncs of a line ([`SYNC_EVERY_MOST`]); the
/// draw was sealed before the opening, so this is only the margin for the
/// environments that seal it late to have done so.
pub const REVEAL_AFTER: Duration = Duration::from_secs(2 * SYNC_EVERY_MOST.as_secs());

#[derive(Debug, Error)]
pub enum DrawError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gate(#[from] GateError),
}

/// What one pass revealed: the events and how many fans each drew, and
/// the events whose draws are withheld, each with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revealed {
    pub revealed: Vec<(EventId, usize)>,
    pub withheld: Vec<(EventId, Withheld)>,
}

/// Why a draw is not published (it never will be without an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The line was restored after its pre-queue opened (who was counted
    /// may be incomplete), or the fans read do not hash to the digest the
    /// draw was sealed with.
    RestoredSincePrequeue,
    /// The gate's seed is not the one stored when the event was created,
    /// the one its commitment was made to.
    SeedMismatch,
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RestoredSincePrequeue => {
                "the line was restored after its pre-queue opened, so who was counted may be incomplete \
                 and may not match the digest it was sealed with"
            }
            Self::SeedMismatch => "the gate's line seed differs from the stored one, which the commitment was made to",
        })
    }
}

/// Reveals the draws that are due: events with a pre-queue, opened at
/// least `after` ago and still open, whose draw is not stored yet.
pub async fn reveal_due(
    gate: &EntryGate,
    db: &Database,
    events: &[FanEvent],
    now: DateTime<Utc>,
    after: Duration,
) -> Result<Revealed, DrawError> {
    let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let due: Vec<&FanEvent> = events
        .iter()
        .filter(|e| e.line.is_some_and(|l| l.prequeue_minutes > 0))
        .filter(|e| e.opens_at + after <= now && now < e.closes_at)
        .collect();
    let mut out = Revealed::default();
    if due.is_empty() {
        return Ok(out);
    }
    let ids: Vec<&str> = due.iter().map(|e| e.id.as_str()).collect();
    let done = db.drawn(&ids).await?;
    for event in due.into_iter().filter(|e| !done.iter().any(|d| d == e.id.as_str())) {
        // Sealed now if no environment did: the seal is due before the opening.
        gate.tend_line(&event.id, now).await?;
        let Some(prequeue) = gate.prequeue(&event.id).await? else { continue };
        let why = if db.line_seed(&event.id).await?.as_deref() != Some(prequeue.draw.seed.as_str()) {
            Some(Withheld::SeedMismatch)
        } else {
            (!prequeue.complete).then_some(Withheld::RestoredSincePrequeue)
        };
        if let Some(why) = why {
            tracing::error!(event = %event.id, why = %why, "a pre-queue draw is withheld");
            out.withheld.push((event.id.clone(), why));
            continue;
        }
        let digest = prequeue.draw.digest.as_deref().unwrap_or_default();
        if db.store_draw(&event.id, &prequeue.draw.seed, digest, &prequeue.fans).await? {
            tracing::info!(event = %event.id, fans = prequeue.fans.len(), "pre-queue draw revealed");
            out.revealed.push((event.id.clone(), prequeue.fans.len()));
        }
    }
    Ok(out)
}

/// The reveal of an event's draw, if it was stored.
pub async fn reveal(db: &Database, id: &EventId) -> Result<Option<(Reveal, DateTime<Utc>)>, StoreError> {
    let Some(stored) = db.draw(id).await? else { return Ok(None) };
    let fans = draw(stored.seed.as_bytes(), id.as_str(), &stored.fans);
    let reveal = Reveal {
        event_id: id.as_str().into(),
        commitment: commitment(&stored.seed),
        seed: stored.seed,
        digest: stored.digest,
        fans,
    };
    Ok(Some((reveal, stored.revealed_at)))
}
