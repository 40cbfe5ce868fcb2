//! Putting the gate back in step with PostgreSQL.
//!
//! - [`restore_gate`]: after Redis lost its data (flush, failover without
//!   persistence) the gate refuses entries. Once every entry request that was
//!   in flight at the loss has finished (`settle`, longer than the entry
//!   function's timeout, counted from when the loss was first noticed) and the
//!   queue has drained, every event's counters and fan records are rebuilt
//!   from the stored entries, so nothing is counted from zero and no position
//!   is handed out twice.
//! - [`sweep_pending`]: a reservation whose SQS send had an unknown outcome
//!   stays pending until the fan retries. Once the queue has drained, the
//!   sweep confirms those whose row exists and releases the rest.

use crate::domain::{EventId, FanEvent};
use crate::gate::{EntryGate, GateError};
use crate::queue::{EntryQueue, QueueError};
use crate::store::{Database, StoreError};
use chrono::{DateTime, Utc};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Entries are still queued: PostgreSQL is not yet the whole truth.
    #[error("the entry queue has not drained yet")]
    QueueNotDrained,
    /// The loss is recent: a request admitted before it may still be sending.
    #[error("the gate state was lost {0:?} ago; waiting for requests in flight to finish")]
    Settling(std::time::Duration),
}

impl RecoveryError {
    /// Not a failure: a later pass will do the work.
    pub fn is_deferred(&self) -> bool {
        matches!(self, Self::QueueNotDrained | Self::Settling(_))
    }
}

/// What [`restore_gate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The state was there; nothing to do.
    NotNeeded,
    Restored {
        events: usize,
        entries: usize,
    },
}

/// Rebuilds the gate from PostgreSQL if Redis lost it, once the loss is
/// `settle` old and the queue has drained.
pub async fn restore_gate(
    gate: &EntryGate,
    db: &Database,
    queue: &EntryQueue,
    now: DateTime<Utc>,
    settle: std::time::Duration,
) -> Result<Restore, RecoveryError> {
    let Some(lost_at) = gate.state_lost_since(now).await? else {
        return Ok(Restore::NotNeeded);
    };
    let age = (now - lost_at).to_std().unwrap_or_default();
    if age < settle {
        return Err(RecoveryError::Settling(age));
    }
    if !queue.is_drained().await? {
        return Err(RecoveryError::QueueNotDrained);
    }
    let events = db.events().await?;
    let mut entries = 0;
    for event in &events {
        let stored = db.entries(&event.id).await?;
        entries += stored.len();
        gate.restore_event(event, &stored).await?;
    }
    gate.mark_state_present().await?;
    tracing::info!(events = events.len(), entries, "gate state restored from postgres");
    Ok(Restore::Restored { events: events.len(), entries })
}

/// What [`sweep_pending`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Pending reservations whose row exists: now confirmed.
    pub confirmed: usize,
    /// Pending reservations that never landed: slot released.
    pub released: usize,
}

/// Resolves reservations pending since before `cutoff`, for `events`.
pub async fn sweep_pending(
    gate: &EntryGate,
    db: &Database,
    queue: &EntryQueue,
    events: &[FanEvent],
    cutoff: DateTime<Utc>,
) -> Result<Sweep, RecoveryError> {
    if !queue.is_drained().await? {
        return Err(RecoveryError::QueueNotDrained);
    }
    let mut sweep = Sweep::default();
    for event in events {
        sweep_event(gate, db, &event.id, cutoff, &mut sweep).await?;
    }
    Ok(sweep)
}

async fn sweep_event(
    gate: &EntryGate,
    db: &Database,
    event: &EventId,
    cutoff: DateTime<Utc>,
    sweep: &mut Sweep,
) -> Result<(), RecoveryError> {
    for (fan, position) in gate.pending_since(event, cutoff).await? {
        if db.entry_exists(event, &fan).await? {
            if gate.confirm_position(event, &fan, position).await? {
                sweep.confirmed += 1;
            }
        } else if gate.release_stale(event, &fan, position, cutoff).await? {
            tracing::info!(event = %event, position, "released a slot whose entry never reached the queue");
            sweep.released += 1;
        }
    }
    Ok(())
}

/// What one housekeeping pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Set when the gate had to be restored.
    pub restored: Option<(usize, usize)>,
    pub sweep: Sweep,
    /// True when the queue had not drained, so restore or sweep waits for a
    /// later pass.
    pub deferred: bool,
}

/// How long [`housekeeping`] waits: see [`restore_gate`] and [`sweep_pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Restore a lost gate only once the loss is this old.
    pub restore_settle: std::time::Duration,
    /// Resolve reservations pending for longer than this.
    pub sweep_after: std::time::Duration,
}

/// One pass of the scheduler's housekeeping: restore a lost gate, then sweep
/// stale pending reservations.
pub async fn housekeeping(
    gate: &EntryGate,
    db: &Database,
    queue: &EntryQueue,
    now: DateTime<Utc>,
    patience: Patience,
) -> Result<Housekeeping, RecoveryError> {
    let mut report = Housekeeping::default();
    match restore_gate(gate, db, queue, now, patience.restore_settle).await {
        Ok(Restore::Restored { events, entries }) => report.restored = Some((events, entries)),
        Ok(Restore::NotNeeded) => {}
        Err(e) if e.is_deferred() => {
            report.deferred = true;
            return Ok(report);
        }
        Err(e) => return Err(e),
    }
    let cutoff = now - chrono::Duration::from_std(patience.sweep_after).unwrap_or(chrono::Duration::MAX);
    match sweep_pending(gate, db, queue, &db.events().await?, cutoff).await {
        Ok(sweep) => report.sweep = sweep,
        Err(RecoveryError::QueueNotDrained) => report.deferred = true,
        Err(e) => return Err(e),
    }
    Ok(report)
}
