//! Rebuilding an event's gate state (`restore.lua`, `lost.lua`): noticing
//! that it was lost, and the fenced steps of its restore, each under its
//! restorer's lease; and the directory of events (`dir.lua`), rebuilt from
//! PostgreSQL when it was lost.

use super::scripts::{DIRECTORY, LOST, RESTORE};
use super::{texts, EntryGate, GateError, OnEviction};
use crate::rules::domain::{Entry, EventId, FanEvent, Position};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// How much of an event a restore brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Open or upcoming: definition, counters and every fan's record.
    Whole,
    /// Closed: definition and counters only.
    Archived,
}

/// The right to write an event's restore, held by one restorer at a time.
/// Every write under it checks it is still held, so a restorer that stalled
/// past its lease writes nothing.
#[derive(Debug, Clone)]
pub struct RestoreLease {
    event: EventId,
    token: String,
    ttl: Duration,
}

/// Ids listed per call of a directory rebuild.
const DIRECTORY_CHUNK: usize = 500;

impl EntryGate {
    /// `None` while Redis holds `event`'s state built on this server;
    /// otherwise when this server first noticed it missing or foreign
    /// (recorded now if nobody noticed before).
    pub async fn state_lost_since(
        &self,
        event: &EventId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, GateError> {
        let k = self.keys_of(event).await?;
        let now_ms = now.timestamp_millis().to_string();
        let r: Option<i64> = self.call(&LOST, OnEviction::Run, &[&k.meta, &k.lost_at], &texts(&[&now_ms])).await?;
        r.map(|ms| {
            Utc.timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| GateError::Protocol(format!("lost-at out of range: {ms}")))
        })
        .transpose()
    }

    /// Takes `event`'s restore lease (or renews it, for its holder).
    /// `RestoreBusy` when another restorer holds it.
    pub async fn begin_restore(&self, event: &EventId, token: &str, ttl: Duration) -> Result<RestoreLease, GateError> {
        let lease = RestoreLease { event: event.clone(), token: token.to_owned(), ttl };
        self.restore_step(&lease, "begin", &[], &[]).await?;
        Ok(lease)
    }

    /// Clears what the gate holds for one event, before it is rewritten:
    /// all but the line's counts and who was counted.
    pub async fn restore_clear(&self, lease: &RestoreLease) -> Result<(), GateError> {
        let k = self.keys_of(&lease.event).await?;
        self.restore_step(lease, "clear", &k.rebuilt(), &[]).await
    }

    /// Writes queued fan records (and notes) for stored entries; called
    /// chunk by chunk so no restorer holds a whole event in memory.
    pub async fn restore_entries(&self, lease: &RestoreLease, entries: &[Entry]) -> Result<(), GateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let k = self.keys_of(&lease.event).await?;
        let records: Vec<String> =
            entries.iter().map(|x| format!("{}:{}", x.position, x.accepted_at.timestamp_millis())).collect();
        let mut args: Vec<&str> = Vec::with_capacity(entries.len() * 4);
        for (x, record) in entries.iter().zip(&records) {
            let (has, note) = match &x.note {
                Some(n) => ("1", n.as_str()),
                None => ("0", ""),
            };
            args.extend([x.fan_id.as_str(), record, has, note]);
        }
        self.restore_step(lease, "rows", &[&k.fans, &k.notes], &args).await
    }

    /// Writes an event's definition and counters: `taken` entries held,
    /// `seq` the highest position ever stored (so none is handed out twice),
    /// and for an event with a line its seed, the moment it resumes
    /// (`resumed`), and a pace that grants nothing for
    /// [`RESTORE_HOLD`](crate::rules::line::RESTORE_HOLD) after it.
    #[allow(clippy::too_many_arguments)]
    pub async fn restore_definition(
        &self,
        lease: &RestoreLease,
        e: &FanEvent,
        seed: Option<&str>,
        taken: i64,
        seq: Position,
        restored: Restored,
        resumed: DateTime<Utc>,
    ) -> Result<(), GateError> {
        let k = self.keys_of(&lease.event).await?;
        let json = e.to_json();
        let mut fields = vec![
            ("title", e.title.clone()),
            ("opensAt", json["opensAt"].as_str().unwrap_or_default().to_owned()),
            ("closesAt", json["closesAt"].as_str().unwrap_or_default().to_owned()),
            ("opensAtMs", e.opens_at.timestamp_millis().to_string()),
            ("closesAtMs", e.closes_at.timestamp_millis().to_string()),
            ("capacity", e.capacity.to_string()),
            ("taken", taken.to_string()),
            ("seq", seq.to_string()),
            ("archived", if restored == Restored::Archived { "1" } else { "0" }.to_owned()),
        ];
        if let (Some(settings), Some(seed)) = (e.line, seed) {
            let hold = resumed + chrono::Duration::from_std(crate::rules::line::RESTORE_HOLD).unwrap_or_default();
            fields.extend([
                ("lineRate", settings.admissions_per_second.to_string()),
                ("linePrequeueMs", e.joinable_from().timestamp_millis().to_string()),
                ("lineSeed", seed.to_owned()),
                ("lineRestoredAt", resumed.timestamp_millis().to_string()),
                ("lineTokens", "0".to_owned()),
                ("lineTokensAt", hold.timestamp_millis().to_string()),
            ]);
        }
        let args: Vec<&str> = fields.iter().flat_map(|(f, v)| [*f, v.as_str()]).collect();
        self.restore_step(lease, "meta", &[&k.meta], &args).await
    }

    /// Stamps the event's fence with this server's `run_id`: its
    /// admissions resume.
    pub async fn finish_restore(&self, lease: &RestoreLease) -> Result<(), GateError> {
        let k = self.keys_of(&lease.event).await?;
        self.restore_step(lease, "finish", &[&k.meta, &k.lost_at], &[]).await
    }

    async fn restore_step(
        &self,
        lease: &RestoreLease,
        step: &str,
        keys: &[&str],
        args: &[&str],
    ) -> Result<(), GateError> {
        let lease_key = self.keys_of(&lease.event).await?.restoring;
        let all_keys: Vec<&str> = std::iter::once(lease_key.as_str()).chain(keys.iter().copied()).collect();
        let ttl = lease.ttl.as_millis().max(1).to_string();
        let all_args: Vec<&str> = [lease.token.as_str(), &ttl, step].into_iter().chain(args.iter().copied()).collect();
        // Fenced by the server so the finish step can stamp its run_id.
        let done: i64 = self.call(&RESTORE, OnEviction::Run, &all_keys, &texts(&all_args)).await?;
        if done == 1 {
            Ok(())
        } else {
            Err(GateError::RestoreBusy)
        }
    }

    /// Marks an empty gate's directory whole, built on this server: a new
    /// deployment's first setup (and tests). Never use it on a gate that
    /// held events; restore that instead ([`EntryGate::rebuild_directory`]).
    pub async fn mark_state_present(&self) -> Result<(), GateError> {
        self.rebuild_directory(&[]).await
    }

    /// Whether the directory of events is whole on this server.
    pub async fn directory_holds(&self) -> Result<bool, GateError> {
        let dir = self.key("events");
        let holds: i64 = self.call(&DIRECTORY, OnEviction::Run, &[&dir], &texts(&["holds"])).await?;
        Ok(holds == 1)
    }

    /// Lists `events` (every event PostgreSQL holds, each with its tag) in
    /// the directory, then marks it whole on this server. Events listed
    /// before stay listed.
    pub async fn rebuild_directory(&self, events: &[(EventId, String)]) -> Result<(), GateError> {
        let dir = self.key("events");
        for chunk in events.chunks(DIRECTORY_CHUNK) {
            let pairs = chunk.iter().flat_map(|(id, tag)| [id.as_str(), tag.as_str()]);
            let args: Vec<&str> = ["add"].into_iter().chain(pairs).collect();
            let _: i64 = self.call(&DIRECTORY, OnEviction::Run, &[&dir], &texts(&args)).await?;
        }
        let _: i64 = self.call(&DIRECTORY, OnEviction::Run, &[&dir], &texts(&["stamp"])).await?;
        Ok(())
    }
}
