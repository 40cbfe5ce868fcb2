//! One scenario at a time on the drill's stack: open a fresh event, play
//! its traffic (the spike, or an opening at a line) with its faults on a
//! timeline, wait until everything settled, then check every invariant
//! against PostgreSQL and Redis, and for a line its fairness too.

use crate::draw;
use crate::fairness;
use crate::faults;
use crate::line::{self, Opening};
use crate::options::Options;
use crate::report::{Report, Row};
use crate::scenarios::Scenario;
use crate::spike::{self, Observed};
use crate::stack::{DrillEvent, Stack, PREFIX};
use crate::verify::{self, GateView, Tally};
use chrono::Utc;
use fanrush::adapters::redis_gate::{new_line_seed, SeedWrite};
use fanrush::rules::domain::{EventId, FanEvent, LineSettings};
use fanrush::rules::scaling::placement;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long before its opening a line's event is defined: the pre-queue's
/// joins land in this window, before the draw closes
/// ([`fanrush::rules::line::draw::CLOSES_BEFORE`] the opening).
const BEFORE_OPENING: Duration = Duration::from_secs(12 + fanrush::rules::line::draw::CLOSES_BEFORE.as_secs());

pub async fn run_all(stack: &Stack, scenarios: &[&Scenario], o: &Options) -> Report {
    let shape = o.shape();
    let mut report = Report { rows: Vec::new(), shape: format!("{shape:?}"), capacity: o.capacity };
    for (i, scenario) in scenarios.iter().enumerate() {
        eprintln!("drill: scenario {} ...", scenario.name);
        for row in run_scenario(stack, scenario, i, o).await {
            eprintln!("drill: {} done in {:.1} s: {:?}", row.scenario, row.seconds, row.tally);
            if let Some(c) = row.commands_per_request {
                eprintln!("drill: {}: {c:.2} Redis commands per HTTP request (INFO commandstats)", row.scenario);
            }
            report.rows.push(row);
        }
    }
    report
}

/// What one event's traffic saw.
struct Traffic {
    observed: Observed,
    seen: Option<line::Seen>,
}

/// Plays a scenario: its events opened at once (on a cluster, each on a
/// shard of its own), their traffic together, the faults on a timeline;
/// then one row per event.
async fn run_scenario(stack: &Stack, scenario: &Scenario, index: usize, o: &Options) -> Vec<Row> {
    let started = Instant::now();
    let failed = |why: String| vec![Row { scenario: scenario.name.to_owned(), problems: vec![why], ..Row::default() }];
    let shards = match (&stack.cluster, scenario.events) {
        (Some(_), n) if n > 1 => match stack.gate.shards().await {
            Ok(s) => s,
            Err(e) => return failed(format!("could not read the cluster's shards: {e}")),
        },
        _ => Vec::new(),
    };
    let mut events = Vec::new();
    for k in 0..scenario.events {
        let id = match scenario.events {
            1 => format!("drill-{}-{}", scenario.name, std::process::id()),
            _ => format!("drill-{}-{}-{}", scenario.name, std::process::id(), k + 1),
        };
        let event = match scenario.line {
            Some(opening) => lined_event(&id, opening),
            None => Stack::event(&id, o.capacity),
        };
        let event = match event {
            Ok(e) => e,
            Err(e) => return failed(format!("could not define the event: {e}")),
        };
        // One event a shard, as placement spreads events at the same time.
        let tag = match shards.get(k % shards.len().max(1)) {
            Some(shard) => placement::tag_on(&event.id, shard).unwrap_or_else(|| id.clone()),
            None => id.clone(),
        };
        if let Err(e) = open_event(stack, &event, &tag).await {
            return failed(format!("could not open the event: {e}"));
        }
        events.push((event, DrillEvent { id, tag }));
    }
    // The draw's commitment, as a fan reads it before anyone joined.
    let mut committed = Vec::new();
    for (_, e) in &events {
        committed.push(match scenario.line {
            Some(_) => draw::commitment(stack, &e.id).await.map(Some),
            None => Ok(None),
        });
    }
    // The faults' timeline: fractions of the spike's arrival window, or of
    // the time a line takes from its opening to let everyone in.
    let (base, span) = match scenario.line {
        Some(opening) => (Instant::now() + BEFORE_OPENING, opening.duration()),
        None => (Instant::now(), o.shape().duration),
    };
    let drill_events: Vec<DrillEvent> = events.iter().map(|(_, e)| e.clone()).collect();
    let timeline = futures::future::join_all(scenario.faults.iter().map(|(at, fault)| {
        let drill_events = &drill_events;
        async move {
            tokio::time::sleep_until((base + span.mul_f64(*at)).into()).await;
            faults::play(stack, *fault, drill_events, o).await
        }
    }));
    let commands_before = commands_processed(stack).await;
    let traffic = futures::future::join_all(events.iter().enumerate().map(|(k, (_, e))| {
        let fan_prefix = match scenario.events {
            1 => format!("s{index}-fan-"),
            _ => format!("s{index}-{}-fan-", k + 1),
        };
        let seed = o.seed + index as u64 + 1_000 * k as u64;
        async move {
            match scenario.line {
                Some(opening) => {
                    let seen =
                        line::run(stack.entry.clone(), &e.id, &fan_prefix, opening, BEFORE_OPENING, 256, seed).await;
                    Traffic { observed: seen.observed.clone(), seen: Some(seen) }
                }
                None => {
                    let shape = o.shape();
                    let observed =
                        spike::run(stack.entry.clone(), &e.id, &fan_prefix, &shape, scenario.repeat, seed).await;
                    Traffic { observed, seen: None }
                }
            }
        }
    }));
    let (traffic, injected) = tokio::join!(traffic, timeline);
    let mut rows = Vec::new();
    for (k, (((event, e), traffic), committed)) in events.iter().zip(traffic).zip(committed).enumerate() {
        let name = match scenario.events {
            1 => scenario.name.to_owned(),
            n => format!("{}:{}/{n}", scenario.name, k + 1),
        };
        let mut row = Row { scenario: name, ..Row::default() };
        if k == 0 {
            take_faults(&mut row, injected.clone());
        }
        // Every command Redis ran while the traffic lasted (scripts' inner
        // ones too), over the HTTP requests: syncs and scheduler ticks ride
        // along, so it errs high. A failover's new server starts afresh.
        if let (Some(before), Some(after), 1) = (commands_before, commands_processed(stack).await, scenario.events) {
            if after >= before && traffic.observed.attempts > 0 {
                row.commands_per_request = Some((after - before) as f64 / traffic.observed.attempts as f64);
            }
        }
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                row.problems.push(format!("the event shows no draw commitment: {e}"));
                None
            }
        };
        finish_event(stack, scenario, o, event, e, traffic, committed, &mut row).await;
        if stack.cluster.is_some() && scenario.events > 1 && !stack.failed_over.lock().unwrap().contains(&e.id) {
            // A shard that did not fail over serves its events throughout.
            if let Some(n) = row.statuses.get("503").filter(|n| **n > 0) {
                row.problems.push(format!("{n} answers 503 from an event whose shard did not fail over"));
            }
        }
        row.seconds = started.elapsed().as_secs_f64();
        rows.push(row);
    }
    rows
}

/// Settles one event, checks every invariant and, at a line, its fairness
/// and draw; fills its row.
#[allow(clippy::too_many_arguments)]
async fn finish_event(
    stack: &Stack,
    scenario: &Scenario,
    o: &Options,
    event: &FanEvent,
    e: &DrillEvent,
    traffic: Traffic,
    committed: Option<String>,
    row: &mut Row,
) {
    let Traffic { observed, seen } = traffic;
    let event_id = &e.id;
    row.deleted_event = scenario.deletes_event;
    if let Err(problem) = settle(stack, &e.tag, o.settle_limit()).await {
        row.problems.push(problem);
    }
    let capacity = event.capacity;
    match check(stack, &e.tag, capacity, &observed).await {
        Ok(t) => row.tally = t,
        Err(problem) => row.problems.push(format!("could not check: {problem}")),
    }
    if let (Some(seen), Some(opening)) = (&seen, scenario.line) {
        match admissions(stack, &event.id).await {
            Ok(admitted) => {
                row.fairness =
                    Some(fairness::check(opening.rate, &seen.visits, &admitted, seen.opened, seen.opened_unix_ms));
                // A fan that follows the protocol is never refused for its
                // ticket, a key rotation and an extension outage included.
                for visit in seen.visits.iter().filter(|v| v.kind.follows()) {
                    if let Some(a) = visit.trail.iter().find(|a| a.status == 403) {
                        row.problems.push(format!("fan {} ({:?}) was told 403: {a:?}", visit.fan, visit.kind));
                    }
                }
                // Name the first few answers whose numbers disagree, with the
                // answer before each: a count alone cannot be looked into.
                let disagreeing = seen.visits.iter().flat_map(|v| {
                    v.trail.iter().enumerate().filter(|(_, a)| !a.numbers_agree()).map(move |(i, a)| (v, i, a))
                });
                for (visit, i, answer) in disagreeing.take(3) {
                    let before = i.checked_sub(1).map(|j| format!("; the answer before: {:?}", visit.trail[j]));
                    row.problems.push(format!(
                        "a waiting answer whose numbers disagree: fan {} ({:?}) was told {answer:?}{}",
                        visit.fan,
                        visit.kind,
                        before.unwrap_or_default()
                    ));
                }
                // The draw, checked from outside: on an opening without
                // faults (a failover may lose the last counts of who was
                // pre-queued before the reveal: docs/line.md).
                let drawn = seen.visits.iter().find(|v| v.prequeued && admitted.contains_key(&v.fan));
                if let (Some(committed), Some(fan), true) = (&committed, drawn, scenario.faults.is_empty()) {
                    let dir = std::env::temp_dir().join(format!("fanrush-drill-draw-{}", std::process::id()));
                    match draw::check(stack, event_id, committed, &fan.fan, &dir).await {
                        Ok(c) if c.fan_index.is_some() => row.draw = Some(c),
                        Ok(c) => row.problems.push(format!("fan {} is not in its own draw: {c:?}", fan.fan)),
                        Err(e) => row.problems.push(format!("the draw does not verify: {e}")),
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                }
                if let Some(path) = &o.visits {
                    let path = path.with_extension(format!("{}.json", scenario.name));
                    let at = admitted.iter().map(|(f, a)| (f.clone(), a.at_ms)).collect();
                    if let Err(e) = std::fs::write(&path, seen.to_json(&at).to_string()) {
                        row.problems.push(format!("could not write {}: {e}", path.display()));
                    }
                }
            }
            Err(e) => row.problems.push(format!("could not check the line: {e}")),
        }
    }
    row.dead_lettered = stack.queue_depth(&stack.dlq_url).await.unwrap_or(-1);
    row.requests = match scenario.line {
        Some(opening) => opening.fans(),
        None => o.shape().requests,
    };
    row.capacity = capacity;
    row.scheduler_ticks_failed = stack.take_failed_ticks();
    row.fill(&observed);
}

/// The calls of every command Redis ran (`INFO commandstats`, which counts
/// the commands inside scripts too), when it answers.
async fn commands_processed(stack: &Stack) -> Option<u64> {
    if stack.cluster.is_some() {
        return None;
    }
    let info = stack.redis.lock().await.command(&["INFO", "commandstats"]).await.ok()?;
    let text = match info {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::SimpleString(text) => text,
        _ => return None,
    };
    let calls = |line: &str| -> Option<u64> { line.split_once(":calls=")?.1.split(',').next()?.parse().ok() };
    Some(text.lines().filter(|l| l.starts_with("cmdstat_")).filter_map(calls).sum())
}

fn take_faults(row: &mut Row, injected: Vec<Result<String, String>>) {
    for outcome in injected {
        match outcome {
            Ok(done) => row.faults.push(done),
            Err(e) => row.problems.push(e),
        }
    }
}

/// The opening's event: it opens [`BEFORE_OPENING`] from now, with a line
/// at the opening's rate and a pre-queue open since a minute before that.
fn lined_event(id: &str, opening: Opening) -> Result<FanEvent, String> {
    let opens_at = Utc::now() + chrono::Duration::from_std(BEFORE_OPENING).map_err(|e| e.to_string())?;
    Ok(FanEvent {
        id: EventId::parse(id).map_err(|e| e.to_string())?,
        title: "Drill at a line".into(),
        opens_at,
        closes_at: opens_at + chrono::Duration::hours(2),
        capacity: opening.capacity,
        expected_peak_rps: opening.crowd as f64,
        lead_minutes: None,
        cooldown_minutes: None,
        line: Some(LineSettings { admissions_per_second: opening.rate, prequeue_minutes: 1 }),
    })
}

/// Defines the event in PostgreSQL and publishes it to the gate under
/// `tag`, which PostgreSQL keeps too (a restore lists it again).
async fn open_event(stack: &Stack, event: &FanEvent, tag: &str) -> Result<(), String> {
    let (_, seed) = stack.db.upsert_event(event, &new_line_seed()).await.map_err(|e| e.to_string())?;
    // A scenario before may have left the gate to be restored; wait for it.
    for _ in 0..600 {
        match stack.gate.publish_at(event, tag, SeedWrite::Set(&seed)).await {
            Ok((_, tag)) => {
                stack.db.keep_gate_tag(&event.id, &tag).await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err("the gate did not accept the event within 60 s".into())
}

/// Every admitted fan of the event, as PostgreSQL holds it.
async fn admissions(stack: &Stack, id: &EventId) -> Result<HashMap<String, fairness::Admitted>, String> {
    let entries = stack.db.entries(id).await.map_err(|e| e.to_string())?;
    Ok(entries
        .iter()
        .map(|e| {
            let at_ms = e.accepted_at.timestamp_millis();
            (e.fan_id.as_str().to_owned(), fairness::Admitted { position: e.position, at_ms })
        })
        .collect())
}

/// Whether the event's state (keys tagged `tag`) is fenced by the server
/// now holding it: it was built there, or restored there after a fault.
async fn built_here(stack: &Stack, tag: &str) -> bool {
    let text = |v: Result<redis::Value, String>| match v {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::VerbatimString { text, .. }) => text,
        _ => String::new(),
    };
    let meta = format!("{PREFIX}:ev:{{{tag}}}");
    let info = text(stack.command_for(&meta, &["INFO", "server"]).await);
    let run_id = info.lines().find_map(|l| l.strip_prefix("run_id:")).map(str::trim);
    let fence = text(stack.command_for(&meta, &["HGET", &meta, "fence"]).await);
    run_id.is_some_and(|id| !id.is_empty() && id == fence)
}

/// Waits until the queue drained, the gate state is there and nothing
/// is pending or granted for the event (keys tagged `tag`), twice in a row.
async fn settle(stack: &Stack, tag: &str, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut calm = 0;
    let meta = format!("{PREFIX}:ev:{{{tag}}}");
    while started.elapsed() < limit {
        let drained = stack.queue_depth(&stack.queue_url).await == Ok(0);
        let state = built_here(stack, tag).await;
        let pending = stack.command_for(&meta, &["ZCARD", &format!("{meta}:pending")]).await;
        // A line's grants whose fans walked away lapse at the scheduler's tick.
        let grants = stack.command_for(&meta, &["ZCARD", &format!("{meta}:grants")]).await;
        let quiet = matches!(pending, Ok(redis::Value::Int(0))) && matches!(grants, Ok(redis::Value::Int(0)));
        calm = if drained && state && quiet { calm + 1 } else { 0 };
        if calm >= 2 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("did not settle within {limit:?} (queue, gate state or pending reservations)"))
}

/// Every invariant of the event whose keys carry `tag`, against
/// PostgreSQL and the gate.
async fn check(stack: &Stack, tag: &str, capacity: i64, observed: &Observed) -> Result<Tally, String> {
    let id = match tag.split_once('~') {
        Some((id, _)) => id,
        None => tag,
    };
    let id = EventId::parse(id).map_err(|e| e.to_string())?;
    let rows: Vec<(String, i64)> = stack
        .db
        .entries(&id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| (e.fan_id.as_str().to_owned(), e.position))
        .collect();
    let meta = format!("{PREFIX}:ev:{{{tag}}}");
    let taken = match stack.command_for(&meta, &["HGET", &meta, "taken"]).await? {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).parse().unwrap_or(-1),
        _ => 0,
    };
    let fans = stack.command_for(&meta, &["HGETALL", &format!("{meta}:fans")]).await?;
    let mut gate = GateView { taken, ..GateView::default() };
    if let redis::Value::Array(items) = fans {
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        for pair in items.chunks(2) {
            let (fan, record) = (text(&pair[0]), text(&pair[1]));
            let parts: Vec<&str> = record.split(':').collect();
            let position = parts.first().and_then(|p| p.parse().ok()).unwrap_or(-1);
            gate.records.insert(fan, (position, parts.len() > 2));
        }
    }
    Ok(verify::check(capacity, &observed.told, &rows, &gate, observed.sold_out))
}
