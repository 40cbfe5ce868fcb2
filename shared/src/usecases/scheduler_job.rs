//! The scheduler function's job, every minute: gate housekeeping (restore,
//! sweep), the dead letters named to Slack, then the calendar (PostgreSQL
//! plus an optional iCalendar feed, whose skipped entries are named to
//! Slack) reconciled with provisioned concurrency, and the pre-queue draws
//! that are due revealed. Every failure reaches Slack; a failing feed,
//! housekeeping or reveal step does not stop scaling.

use crate::adapters::https::HttpsClient;
use crate::adapters::lambda_control::ControlError;
use crate::adapters::postgres_store::{Database, StoreError};
use crate::adapters::redis_gate::EntryGate;
use crate::adapters::slack::Notice;
use crate::adapters::sqs_queue::{DeadLetterQueue, EntryQueue};
use crate::rules::domain::{parse_ics, FanEvent};
use crate::usecases::draws::reveal_due;
use crate::usecases::provisioning::Provisioner;
use crate::usecases::recovery::{housekeeping, Patience, Queues};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SchedulerJobError {
    #[error("the calendar could not be read: {0}")]
    Calendar(#[from] StoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl SchedulerJobError {
    /// The run's failure as the invocation's `errorType`: what a metric
    /// filter or an operator reading the logs can tell apart.
    pub fn kind(&self) -> &'static str {
        match self {
            SchedulerJobError::Calendar(_) => "CalendarUnreadable",
            SchedulerJobError::Control(_) => "ProvisioningFailed",
        }
    }
}

/// An iCalendar feed of more fan events, read on every run.
pub struct CalendarFeed {
    pub url: String,
    pub https: HttpsClient,
}

/// What the gate housekeeping reads and repairs.
pub struct GateUpkeep {
    pub gate: EntryGate,
    pub db: Database,
    pub queue: EntryQueue,
    pub dead_letters: DeadLetterQueue,
    pub patience: Patience,
    /// How long after an event's opening its pre-queue's draw is revealed
    /// ([`crate::usecases::draws::REVEAL_AFTER`]).
    pub reveal_after: Duration,
}

/// The job, built once per execution environment by
/// [`crate::config::SchedulerConfig::job`]; every client in it connects on
/// first use.
pub struct SchedulerJob {
    upkeep: GateUpkeep,
    feed: Option<CalendarFeed>,
    provisioner: Provisioner,
    /// The dead letters Slack was last told about, so a standing DLQ is
    /// named once per change, not every minute.
    dead_letters_told: std::sync::Mutex<Vec<String>>,
    /// Likewise the feed entries skipped, and the draws withheld.
    skipped_told: std::sync::Mutex<Vec<String>>,
    withheld_told: std::sync::Mutex<Vec<String>>,
}

impl SchedulerJob {
    pub fn new(upkeep: GateUpkeep, feed: Option<CalendarFeed>, provisioner: Provisioner) -> Self {
        Self {
            upkeep,
            feed,
            provisioner,
            dead_letters_told: Default::default(),
            skipped_told: Default::default(),
            withheld_told: Default::default(),
        }
    }

    /// Runs the job once at `now` and reports what it did.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<Value, SchedulerJobError> {
        let (job, s) = (self, &self.upkeep);
        let notify = |message: String| async move {
            job.provisioner.notifier().notify(&Notice::SchedulerError { message }).await
        };
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
        let dead = name_dead_letters(job).await;
        let stored = match s.db.events().await {
            Ok(events) => events,
            Err(e) => {
                notify(format!("the calendar could not be read: {e}")).await;
                return Err(e.into());
            }
        };
        let draws = match reveal_due(&s.gate, &s.db, &stored, now, s.reveal_after).await {
            Ok(r) => {
                let withheld: Vec<String> = r.withheld.iter().map(|(e, why)| format!("{e} ({why})")).collect();
                if changed(&job.withheld_told, &withheld) && !withheld.is_empty() {
                    notify(format!("pre-queue draws withheld, not published: {}", withheld.join("; "))).await;
                }
                let revealed: Vec<Value> =
                    r.revealed.iter().map(|(e, fans)| json!({ "event": e.as_str(), "fans": fans })).collect();
                json!({ "revealed": revealed, "withheld": withheld })
            }
            Err(e) => {
                notify(format!("a pre-queue draw could not be revealed: {e}")).await;
                json!({ "error": e.to_string() })
            }
        };
        let mut calendar = stored.clone();
        if let Some(feed) = &job.feed {
            match feed.https.get_text(&feed.url, Duration::from_secs(5)).await {
                Ok(text) => {
                    let feed = parse_ics(&text, now);
                    if changed(&job.skipped_told, &feed.skipped) && !feed.skipped.is_empty() {
                        let notice = Notice::CalendarSkipped { entries: feed.skipped.clone() };
                        job.provisioner.notifier().notify(&notice).await;
                    }
                    merge(&mut calendar, feed);
                }
                Err(e) => notify(format!("the iCalendar feed could not be read: {e}")).await,
            }
        }
        let r = job.provisioner.reconcile(&calendar, &stored, Some(&s.gate), now).await?;
        Ok(json!({
            "housekeeping": house,
            "deadLetters": dead,
            "drawsRevealed": draws,
            "provisionedConcurrency": r.desired.provisioned_concurrency,
            "previous": r.previous,
            "applied": format!("{:?}", r.applied),
            "events": r.desired.events.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "clamped": r.desired.clamped,
            "alerts": r.alerts,
        }))
    }
}

/// Names the entries in the DLQ to Slack when they changed since last told;
/// returns how many there are.
async fn name_dead_letters(job: &SchedulerJob) -> Value {
    let dead_letters = &job.upkeep.dead_letters;
    let peeked = match dead_letters.depth().await {
        Ok(d) if d.total() == 0 => Ok(Default::default()),
        Ok(_) => dead_letters.peek().await,
        Err(e) => Err(e),
    };
    let letters = match peeked {
        Ok(l) => l,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    // `event/fan@position`, the fan percent-encoded: a `sub` may hold `/` or `@`.
    let mut names: Vec<String> =
        letters.entries.iter().map(|e| format!("{}/{}@{}", e.event_id, e.fan_id.encoded(), e.position)).collect();
    names.sort();
    if changed(&job.dead_letters_told, &names) && (!names.is_empty() || letters.unreadable > 0) {
        tracing::error!(count = names.len(), unreadable = letters.unreadable, "accepted entries are dead-lettered");
        let notice = Notice::DeadLetters { entries: names.clone(), unreadable: letters.unreadable };
        job.provisioner.notifier().notify(&notice).await;
    }
    json!({ "entries": names.len(), "unreadable": letters.unreadable })
}

/// Records `now` as what Slack was told; true when it differs from before.
fn changed(told: &std::sync::Mutex<Vec<String>>, now: &[String]) -> bool {
    let mut told = told.lock().unwrap();
    let changed = *told != now;
    *told = now.to_vec();
    changed
}

/// Adds feed events; an event defined in PostgreSQL wins over the feed's.
fn merge(calendar: &mut Vec<FanEvent>, feed: crate::rules::domain::IcsCalendar) {
    for why in &feed.skipped {
        tracing::warn!(skipped = %why, "iCalendar event skipped");
    }
    for event in feed.events {
        if !calendar.iter().any(|e| e.id == event.id) {
            calendar.push(event);
        }
    }
}
