//! Putting the gate back in step with PostgreSQL and the DLQ.
//!
//! - [`restore_gate`]: an event refuses everything once its state is
//!   missing or was built on another server (a failover, a restart from a
//!   snapshot; see [`crate::adapters::redis_gate`]). Once every entry
//!   request that was in flight then has finished (`settle`, longer than the
//!   entry function's timeout, counted from when the loss was first
//!   noticed) and the queue has drained, one restorer per event (a lease in
//!   the event's slot, every write fenced by it) rebuilds each lost event
//!   from its stored entries, read in pages of [`RESTORE_PAGE`] rows, plus
//!   its dead-lettered ones without a row, once per fan however many copies
//!   the DLQ holds; a closed
//!   event gets its definition and counters only. Nothing is counted from
//!   zero and no stored or dead-lettered position is handed out again. An
//!   event's line gets back its seed; its door and grants start empty, and
//!   for [`RESTORE_HOLD`](crate::rules::line::RESTORE_HOLD) it grants
//!   nothing while the entry environments' syncs bring back its served
//!   mark and put the fans they saw at the door back there, so the line
//!   resumes where it stood, in the order of places.
//! - [`sweep_pending`]: a reservation whose SQS send had an unknown outcome
//!   stays pending until the fan retries. Once the queue has drained, the
//!   sweep confirms those whose row exists or whose message is in the DLQ,
//!   and releases the rest.
//! - [`tend_lines`]: a line's grants lapse at its calls; once its fans stop
//!   calling, the scheduler's pass lapses the last ones, so no place stays
//!   held for a fan who walked away.
//! - [`archive_closed`]: [`ARCHIVE_AFTER`] after an event closes, the gate
//!   drops what it holds per fan (PostgreSQL holds the entries), so Redis
//!   memory holds the events that are open or coming, not every event ever.

use crate::adapters::postgres_store::{Database, StoreError};
use crate::adapters::redis_gate::{Archival, EntryGate, GateError, RestoreLease, Restored};
use crate::adapters::sqs_queue::{DeadLetterQueue, DeadLetters, EntryQueue, QueueError};
use crate::rules::domain::{Entry, EventId, FanEvent};
use chrono::{DateTime, Utc};
use std::time::Duration;
use thiserror::Error;

/// Rows read and written per step of a restore: a page is a few MB at
/// most, so a 128 MB function restores an event of any size.
pub const RESTORE_PAGE: i64 = 5_000;
/// How long a restorer's lease lasts without a write renewing it.
const RESTORE_LEASE: Duration = Duration::from_secs(60);

/// How long after an event closes its fans stay in the gate: past the
/// sweep of sends with an unknown outcome (`PENDING_SWEEP_AFTER_SECONDS`,
/// 300 s) and the queue's drain, with room for an operator to look. A send
/// still pending holds the archive back until the sweep resolved it.
pub const ARCHIVE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Events closed longer ago than this (plus [`ARCHIVE_AFTER`]) are not
/// looked at again: archived by then, or restored archived (a restore
/// rebuilds a closed event without its fans).
const ARCHIVE_LOOKBACK: chrono::Duration = chrono::Duration::days(7);

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
    Settling(Duration),
}

impl RecoveryError {
    /// Not a failure: a later pass will do the work.
    pub fn is_deferred(&self) -> bool {
        matches!(
            self,
            Self::QueueNotDrained
                | Self::Settling(_)
                | Self::Gate(GateError::RestoreBusy)
                | Self::Queue(QueueError::DeadLettersBusy(_))
        )
    }
}

/// The queues recovery must see drained and read: the entry queue and its DLQ.
pub struct Queues<'a> {
    pub entries: &'a EntryQueue,
    pub dead_letters: &'a DeadLetterQueue,
}

/// What [`restore_gate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Every event's state was there; nothing to do.
    NotNeeded,
    Restored {
        /// Events rebuilt in this pass.
        events: usize,
        entries: usize,
        /// Other lost events wait for a later pass (their loss is recent,
        /// or another restorer holds them).
        deferred: bool,
    },
}

/// Rebuilds, from PostgreSQL and the DLQ, each event whose state is lost
/// once its loss is `settle` old and the queue has drained; the events
/// whose state holds are not touched and keep admitting. First the
/// directory of events, if it was lost.
pub async fn restore_gate(
    gate: &EntryGate,
    db: &Database,
    queues: &Queues<'_>,
    now: DateTime<Utc>,
    settle: Duration,
) -> Result<Restore, RecoveryError> {
    let events = db.events().await?;
    if !gate.directory_holds().await? {
        let tags = db.gate_tags().await?;
        gate.rebuild_directory(&tags).await?;
        tracing::info!(events = tags.len(), "directory of events rebuilt");
    }
    let (mut lost, mut settling) = (Vec::new(), None::<Duration>);
    for event in &events {
        let Some(lost_at) = gate.state_lost_since(&event.id, now).await? else { continue };
        let age = (now - lost_at).to_std().unwrap_or_default();
        if age < settle {
            settling = Some(settling.map_or(age, |s| s.min(age)));
        } else {
            lost.push(event);
        }
    }
    if lost.is_empty() {
        return match settling {
            Some(age) => Err(RecoveryError::Settling(age)),
            None => Ok(Restore::NotNeeded),
        };
    }
    if !queues.entries.is_drained().await? {
        return Err(RecoveryError::QueueNotDrained);
    }
    let dead = queues.dead_letters.peek().await?;
    let token = restore_token();
    let (mut restored, mut entries, mut busy) = (0, 0, false);
    for event in lost {
        let lease = match gate.begin_restore(&event.id, &token, RESTORE_LEASE).await {
            Ok(lease) => lease,
            Err(GateError::RestoreBusy) => {
                busy = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        entries += restore_event(gate, db, &lease, event, &dead, now).await?;
        restored += 1;
        tracing::info!(event = %event.id, "event state restored");
    }
    if restored == 0 {
        return Err(GateError::RestoreBusy.into());
    }
    tracing::info!(events = restored, entries, dead_letters = dead.entries.len(), "gate state restored");
    Ok(Restore::Restored { events: restored, entries, deferred: busy || settling.is_some() })
}

/// Rebuilds one event under its lease: how many entries it holds.
async fn restore_event(
    gate: &EntryGate,
    db: &Database,
    lease: &RestoreLease,
    event: &FanEvent,
    dead: &DeadLetters,
    now: DateTime<Utc>,
) -> Result<usize, RecoveryError> {
    gate.restore_clear(lease).await?;
    // Dead letters (one per fan) count as taken, and a row, where there
    // is one, wins: a redelivery may have written it too.
    let extra = dead_without_row(db, &event.id, dead).await?;
    let dead_seq = extra.iter().map(|e| e.position).max().unwrap_or(0);
    let (taken, seq) = if event.closes_at > now {
        let (mut taken, mut seq) = (0i64, 0);
        loop {
            let page = db.entries_after(&event.id, seq, RESTORE_PAGE).await?;
            let Some(last) = page.last() else { break };
            seq = last.position;
            taken += page.len() as i64;
            gate.restore_entries(lease, &page).await?;
        }
        gate.restore_entries(lease, &extra).await?;
        (taken + extra.len() as i64, seq.max(dead_seq))
    } else {
        let (taken, seq) = db.entry_totals(&event.id).await?;
        (taken + extra.len() as i64, seq.max(dead_seq))
    };
    let restored = if event.closes_at > now { Restored::Whole } else { Restored::Archived };
    let seed = match event.line {
        Some(_) => db.line_seed(&event.id).await?,
        None => None,
    };
    // The line's hold runs from when its definition is back, however
    // long the restore took so far.
    let resumed = now.max(Utc::now());
    gate.restore_definition(lease, event, seed.as_deref(), taken, seq, restored, resumed).await?;
    gate.finish_restore(lease).await?;
    Ok(taken as usize)
}

/// The event's dead-lettered entries that PostgreSQL does not hold.
async fn dead_without_row(db: &Database, event: &EventId, dead: &DeadLetters) -> Result<Vec<Entry>, RecoveryError> {
    let mut extra = Vec::new();
    for e in dead.entries.iter().filter(|e| e.event_id == *event) {
        if !db.entry_exists(event, &e.fan_id).await? {
            extra.push(e.clone());
        }
    }
    Ok(extra)
}

/// A restorer's token: unique per process and call.
fn restore_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{:016x}", RandomState::new().hash_one((std::process::id(), Utc::now().timestamp_nanos_opt())))
}

/// What [`sweep_pending`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Pending reservations whose row exists or whose message is in the
    /// DLQ: now confirmed.
    pub confirmed: usize,
    /// Pending reservations that never landed: slot released.
    pub released: usize,
}

/// Resolves reservations pending since before `cutoff`, for `events`.
pub async fn sweep_pending(
    gate: &EntryGate,
    db: &Database,
    queues: &Queues<'_>,
    events: &[FanEvent],
    cutoff: DateTime<Utc>,
) -> Result<Sweep, RecoveryError> {
    if !queues.entries.is_drained().await? {
        return Err(RecoveryError::QueueNotDrained);
    }
    let mut candidates = Vec::new();
    for event in events {
        for (fan, position) in gate.pending_since(&event.id, cutoff).await? {
            candidates.push((event.id.clone(), fan, position));
        }
    }
    if candidates.is_empty() {
        return Ok(Sweep::default());
    }
    // Read the DLQ only when there is something to decide.
    let dead: DeadLetters = queues.dead_letters.peek().await?;
    let mut sweep = Sweep::default();
    for (event, fan, position) in candidates {
        if db.entry_exists(&event, &fan).await? || dead.find(&event, &fan).is_some() {
            if gate.confirm_position(&event, &fan, position).await? {
                sweep.confirmed += 1;
            }
        } else if gate.release_stale(&event, &fan, position, cutoff).await? {
            tracing::info!(event = %event, position, "released a slot whose entry never reached the queue");
            sweep.released += 1;
        }
    }
    Ok(sweep)
}

/// What one housekeeping pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Set when the gate had to be restored.
    pub restored: Option<(usize, usize)>,
    pub sweep: Sweep,
    /// Closed events whose fans the gate dropped in this pass.
    pub archived: usize,
    /// True when restore or sweep waits for a later pass (the queue has not
    /// drained, the loss is recent, another restorer is at work).
    pub deferred: bool,
}

/// How long [`housekeeping`] waits: see [`restore_gate`] and [`sweep_pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Restore a lost gate only once the loss is this old.
    pub restore_settle: Duration,
    /// Resolve reservations pending for longer than this.
    pub sweep_after: Duration,
}

/// One pass of the scheduler's housekeeping: restore a lost gate, then sweep
/// stale pending reservations.
pub async fn housekeeping(
    gate: &EntryGate,
    db: &Database,
    queues: &Queues<'_>,
    now: DateTime<Utc>,
    patience: Patience,
) -> Result<Housekeeping, RecoveryError> {
    let mut report = Housekeeping::default();
    match restore_gate(gate, db, queues, now, patience.restore_settle).await {
        Ok(Restore::Restored { events, entries, deferred }) => {
            report.restored = Some((events, entries));
            report.deferred = deferred;
        }
        Ok(Restore::NotNeeded) => {}
        // The events that were not lost go on: the passes below skip
        // the ones still waiting.
        Err(e) if e.is_deferred() => report.deferred = true,
        Err(e) => return Err(e),
    }
    let cutoff = now - chrono::Duration::from_std(patience.sweep_after).unwrap_or(chrono::Duration::MAX);
    let events = db.events().await?;
    tend_lines(gate, &events, now).await?;
    match sweep_pending(gate, db, queues, &events, cutoff).await {
        Ok(sweep) => report.sweep = sweep,
        Err(e) if e.is_deferred() => report.deferred = true,
        Err(e) => return Err(e),
    }
    report.archived = archive_closed(gate, &events, now, ARCHIVE_AFTER).await?;
    Ok(report)
}

/// Archives the events that closed at least `after` ago (within the
/// lookback): how many were archived now.
pub async fn archive_closed(
    gate: &EntryGate,
    events: &[FanEvent],
    now: DateTime<Utc>,
    after: Duration,
) -> Result<usize, RecoveryError> {
    let after_chrono = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let mut archived = 0;
    for event in events
        .iter()
        .filter(|e| e.closes_at + after_chrono <= now && now - e.closes_at < after_chrono + ARCHIVE_LOOKBACK)
    {
        let archival = match gate.archive(&event.id, now, after).await {
            // Lost: archived once its restore is done.
            Err(GateError::StateLost) => continue,
            other => other?,
        };
        match archival {
            Archival::Archived => {
                tracing::info!(event = %event.id, "closed event archived: its fans are in PostgreSQL only");
                archived += 1;
            }
            Archival::Pending => {
                tracing::info!(event = %event.id, "closed event waits for the sweep before its archive")
            }
            Archival::Already | Archival::NotYet | Archival::NotFound => {}
        }
    }
    Ok(archived)
}

/// Runs the pace of every line that is open now: grants whose fans did not
/// claim them lapse even when nobody calls (the pace runs at every call of
/// a line; this is the call when there are none).
pub async fn tend_lines(gate: &EntryGate, events: &[FanEvent], now: DateTime<Utc>) -> Result<(), RecoveryError> {
    for event in events.iter().filter(|e| e.line.is_some() && e.opens_at <= now && now < e.closes_at) {
        match gate.tend_line(&event.id, now).await {
            // Lost: its restore comes first.
            Err(GateError::StateLost) => continue,
            other => {
                other?;
            }
        }
    }
    Ok(())
}
