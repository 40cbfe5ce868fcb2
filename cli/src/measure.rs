//! `fanrush measure-gate`: the admitted-fan ceiling of a real Redis node
//! (the calls a fan admitted through a busy line costs: it joins the door,
//! claims its grant, its entry is confirmed), to set a line's `admissionsPerSecond` and the
//! preflight's `--redis-admissions-per-second` from the node the event will
//! run on; with `--cluster`, of every shard of a cluster, one after
//! another. Runs on a scratch key prefix and removes it afterwards; refuses
//! a server that holds a live gate (the measurement saturates its core).

use fanrush::rules::domain::MAX_NOTE_CHARS;
use fanrush::rules::scaling::placement::Shard;
use fanrush::rules::scaling::preflight::{Capacities, LineRates, LINE_CATCH_UP, LINE_SHARE_OF_CEILING};
use fanrush_ops::measure::{
    measure_gate, measure_memory, measure_memory_in_cluster, measure_shards, CoreFigure, CoreFigures, Load,
    MemoryFigures,
};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(clap::Args)]
pub struct MeasureArgs {
    /// The node, as the functions reach it (rediss://:TOKEN@host:6379 for
    /// ElastiCache with TLS and AUTH). Never printed.
    #[arg(long, value_name = "URL")]
    redis_url: String,
    /// Seconds to drive each kind of call.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Connections to drive it from: Lambda environments, each with its own.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Requests in flight on each connection (an environment sends one at a
    /// time; more pipelines, which makes calls cheaper than Lambda's are).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// New fans a second at the opening's peak (the event's
    /// expectedPeakRps): the line's syncs count their places on the same
    /// core, so the rate to set leaves room for them.
    #[arg(long, default_value_t = 0.0)]
    peak_rps: f64,
    /// The URL is a cluster's configuration endpoint (cluster mode
    /// enabled, as the functions' REDIS_CLUSTER=true): every shard's
    /// primary is measured in turn.
    #[arg(long)]
    cluster: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: MeasureArgs) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(format!("--seconds {}: must be a positive number", args.seconds));
    }
    if !(args.peak_rps.is_finite() && args.peak_rps >= 0.0) {
        return Err(format!("--peak-rps {}: must be a number of at least 0", args.peak_rps));
    }
    let prefix = format!("fanrush-measure-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let load = Load {
        seconds: Duration::from_secs_f64(args.seconds),
        connections: args.connections,
        in_flight: args.in_flight,
    };
    let (shards, memory) = if args.cluster {
        let shards = measure_shards(&args.redis_url, &prefix, load).await.map_err(|e| e.to_string())?;
        let memory = measure_memory_in_cluster(&args.redis_url, &format!("{prefix}-memory")).await;
        (shards.into_iter().map(|s| (Some(s.shard), s.figures)).collect(), memory)
    } else {
        let figures = measure_gate(&args.redis_url, &prefix, load).await.map_err(|e| e.to_string())?;
        (vec![(None, figures)], measure_memory(&args.redis_url, &format!("{prefix}-memory")).await)
    };
    let memory = memory.map_err(|e| e.to_string())?;
    let cores: Vec<(Value, Vec<String>)> =
        shards.iter().map(|(shard, f)| core_report(shard.as_ref(), f, &memory, args.peak_rps)).collect();
    if args.json {
        let mut out = if args.cluster {
            json!({ "shards": cores.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>() })
        } else {
            cores[0].0.clone()
        };
        out["bytesPerFan"] = json!(memory.per_fan.round());
        out["bytesPerNote"] = json!(memory.per_note.round());
        println!("{out}");
    } else {
        for (_, lines) in &cores {
            for line in lines {
                println!("{line}");
            }
        }
        println!(
            "{:<46} {:>9.0} bytes per admitted fan (36-character id, no note), {:.0} more with a {MAX_NOTE_CHARS}-character note",
            "memory", memory.per_fan, memory.per_note
        );
    }
    Ok(())
}

/// One core's figures, as JSON and as text: what it answers, and the line
/// rate it allows an opening of `peak_rps` new fans a second.
fn core_report(shard: Option<&Shard>, f: &CoreFigures, memory: &MemoryFigures, peak_rps: f64) -> (Value, Vec<String>) {
    let ceiling = f.admitted_fans.per_second.round();
    let core = Capacities {
        redis_admissions_per_second: ceiling,
        line_syncs_per_second: f.syncs.per_second.round(),
        line_places_per_second: f.places.per_second.round(),
        ..Capacities::default()
    };
    let LineRates { at_most, suggested } = LineRates::for_core(&core, peak_rps);
    let figure = |c: CoreFigure| json!({ "perSecondOfCore": c.per_second.round(), "coreBusy": (c.core_busy * 100.0).round() / 100.0 });
    let mut out = json!({
        "set": figure(f.set),
        "admittedFans": figure(f.admitted_fans),
        "admittedAtOnce": figure(f.admitted_at_once),
        "joins": figure(f.joins),
        "claims": figure(f.claims),
        "atOnce": figure(f.at_once),
        "confirms": figure(f.confirms),
        "answers": figure(f.answers),
        "lineSyncs": figure(f.syncs),
        "linePlaces": figure(f.places),
        "redisAdmissionsPerSecond": ceiling,
        "admissionsPerSecond": suggested,
        "admissionsPerSecondAtMost": at_most,
    });
    let mut lines = Vec::new();
    if let Some(shard) = shard {
        let slots: Vec<String> = shard.slots.iter().map(|r| format!("{}-{}", r.start(), r.end())).collect();
        out["primary"] = json!(shard.primary);
        out["slots"] = json!(slots);
        lines.push(format!("shard {} (slots {}):", shard.primary, slots.join(", ")));
    }
    let line = |name: &str, c: CoreFigure| {
        format!(
            "{name:<46} {:>9.0} per second of the core (core {:.0}% busy while measured)",
            c.per_second,
            c.core_busy * 100.0
        )
    };
    lines.extend([
        line("SET", f.set),
        line("joins at the door (admit.lua)", f.joins),
        line("claims of a grant (admit.lua)", f.claims),
        line("confirm.lua", f.confirms),
        line("admitted fans, busy line (the three added up)", f.admitted_fans),
        line("one call, granted at once (admit.lua)", f.at_once),
        line("admitted fans, line keeping up (+ confirm)", f.admitted_at_once),
        line("sold-out answers (admit.lua)", f.answers),
        line("line syncs carrying no place (line.lua)", f.syncs),
        line("places counted in line syncs", f.places),
    ]);
    lines.push(format!(
        "use --redis-admissions-per-second {ceiling:.0} --redis-syncs-per-second {:.0} \
         --redis-places-per-second {:.0} in fanrush simulate (and --bytes-per-fan {:.0} \
         --bytes-per-note {:.0} in fanrush preflight); for an opening of {:.0} new fans a second, a \
         line's admissionsPerSecond {suggested:.0} (at most {at_most:.0}: with the line's syncs and the places \
         they count, {:.0}% of the core; {suggested:.0} keeps the gate's catch-up second, {LINE_CATCH_UP}x the \
         rate, within that)",
        core.line_syncs_per_second,
        core.line_places_per_second,
        memory.per_fan,
        memory.per_note,
        peak_rps,
        LINE_SHARE_OF_CEILING * 100.0
    ));
    (out, lines)
}
