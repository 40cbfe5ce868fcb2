//! One scheduler tick, every minute: gate housekeeping, then the calendar
//! (PostgreSQL plus an optional iCalendar feed) reconciled with
//! provisioned concurrency. Every failure reaches Slack; a failing feed or
//! housekeeping step does not stop scaling.

use crate::control::ControlError;
use crate::domain::{parse_ics, FanEvent};
use crate::gate::EntryGate;
use crate::notify::Notice;
use crate::queue::{DeadLetterQueue, EntryQueue};
use crate::recovery::{housekeeping, Patience, Queues};
use crate::scheduler::Scheduler;
use crate::store::{Database, StoreError};
use crate::web::Web;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TickError {
    #[error("the calendar could not be read: {0}")]
    Calendar(#[from] StoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// What a tick needs, built once per execution environment.
pub struct Services {
    pub gate: EntryGate,
    pub db: Database,
    pub queue: EntryQueue,
    pub dead_letters: DeadLetterQueue,
    /// The dead letters Slack was last told about, so a standing DLQ is
    /// named once per change, not every minute.
    pub dead_letters_told: std::sync::Mutex<Vec<String>>,
    pub scheduler: Scheduler,
    pub patience: Patience,
    pub calendar_ics_url: Option<String>,
    pub web: Web,
}

/// Runs one tick at `now` and reports what it did.
pub async fn tick(s: &Services, now: DateTime<Utc>) -> Result<Value, TickError> {
    let notify =
        |message: String| async move { s.scheduler.notifier().notify(&Notice::SchedulerError { message }).await };
    let queues = Queues { entries: &s.queue, dead_letters: &s.dead_letters };
    let house = match housekeeping(&s.gate, &s.db, &queues, now, s.patience).await {
        Ok(h) => json!({
            "restored": h.restored.map(|(events, entries)| json!({ "events": events, "entries": entries })),
            "confirmed": h.sweep.confirmed,
            "released": h.sweep.released,
            "deferred": h.deferred,
        }),
        Err(e) => {
            notify(format!("gate housekeeping failed: {e}")).await;
            json!({ "error": e.to_string() })
        }
    };
    let dead = name_dead_letters(s).await;
    let stored = match s.db.events().await {
        Ok(events) => events,
        Err(e) => {
            notify(format!("the calendar could not be read: {e}")).await;
            return Err(e.into());
        }
    };
    let mut calendar = stored.clone();
    if let Some(url) = &s.calendar_ics_url {
        match s.web.get_text(url, Duration::from_secs(5)).await {
            Ok(text) => merge(&mut calendar, parse_ics(&text)),
            Err(e) => notify(format!("the iCalendar feed could not be read: {e}")).await,
        }
    }
    let r = s.scheduler.reconcile(&calendar, &stored, Some(&s.gate), now).await?;
    Ok(json!({
        "housekeeping": house,
        "deadLetters": dead,
        "provisionedConcurrency": r.desired.provisioned_concurrency,
        "previous": r.previous,
        "applied": format!("{:?}", r.applied),
        "events": r.desired.events.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "clamped": r.desired.clamped,
        "alerts": r.alerts,
    }))
}

/// Names the entries in the DLQ to Slack when they changed since last told;
/// returns how many there are.
async fn name_dead_letters(s: &Services) -> Value {
    let peeked = match s.dead_letters.depth().await {
        Ok(d) if d.total() == 0 => Ok(Default::default()),
        Ok(_) => s.dead_letters.peek().await,
        Err(e) => Err(e),
    };
    let letters = match peeked {
        Ok(l) => l,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut names: Vec<String> =
        letters.entries.iter().map(|e| format!("{}/{}@{}", e.event_id, e.fan_id, e.position)).collect();
    names.sort();
    let changed = {
        let mut told = s.dead_letters_told.lock().unwrap();
        let changed = *told != names;
        told.clone_from(&names);
        changed
    };
    if changed && (!names.is_empty() || letters.unreadable > 0) {
        tracing::error!(count = names.len(), unreadable = letters.unreadable, "accepted entries are dead-lettered");
        let notice = Notice::DeadLetters { entries: names.clone(), unreadable: letters.unreadable };
        s.scheduler.notifier().notify(&notice).await;
    }
    json!({ "entries": names.len(), "unreadable": letters.unreadable })
}

/// Adds feed events; an event defined in PostgreSQL wins over the feed's.
fn merge(calendar: &mut Vec<FanEvent>, feed: crate::domain::IcsCalendar) {
    for why in &feed.skipped {
        tracing::warn!(skipped = %why, "iCalendar event skipped");
    }
    for event in feed.events {
        if !calendar.iter().any(|e| e.id == event.id) {
            calendar.push(event);
        }
    }
}
