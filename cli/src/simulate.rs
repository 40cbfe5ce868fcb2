//! `fanrush simulate`: replays a spike fan by fan through API Gateway's
//! throttle and Lambda's limits, with or without provisioned concurrency,
//! against the gate's Redis core and, with `--line-rate`, a line in front of
//! it; refused fans retry as the drill's client does. Says which limit
//! refused how many requests, how many polls the line cost, and how long
//! admitted fans waited.

use fanrush::rules::scaling::preflight::{
    Capacities, LineRates, MEASURED_GATE_ADMISSIONS_PER_SECOND, MEASURED_GATE_ANSWERS_PER_SECOND,
    MEASURED_LINE_PLACES_PER_SECOND, MEASURED_LINE_SYNCS_PER_SECOND,
};
use fanrush::rules::scaling::Quotas;
use fanrush_ops::simulate::{simulate_spike, GateModel, LineModel, ScalingModel, Spike, Traffic};
use serde_json::json;

#[derive(clap::ValueEnum, Clone, Copy)]
enum Model {
    /// 1,000 environments per 10 s per function.
    Current,
    /// The older rule: a burst of 3,000, then 500 a minute.
    Legacy,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Arrivals per second at the peak.
    #[arg(long)]
    peak_rps: f64,
    /// Time a request holds an environment, ms (at least 100 ms is held: 10 requests a second each).
    #[arg(long, value_name = "MS")]
    duration_ms: f64,
    /// A linear ramp to the peak over this long.
    #[arg(long, default_value_t = 0.0)]
    ramp_seconds: f64,
    /// Then this long at the peak, or decaying from it.
    #[arg(long, default_value_t = 60.0)]
    hold_seconds: f64,
    /// Decay as peak x e^(-t/decay) after the ramp (0: flat).
    #[arg(long, default_value_t = 0.0)]
    decay_seconds: f64,
    /// Warm environments from the start.
    #[arg(long, default_value_t = 0)]
    provisioned: i64,
    /// Lambda "Concurrent executions" for the account.
    #[arg(long, default_value_t = Quotas::default().account_concurrency)]
    account_limit: i64,
    /// API Gateway's account throttle rate.
    #[arg(long, default_value_t = Quotas::default().api_rate)]
    api_rate: f64,
    /// API Gateway's token bucket.
    #[arg(long, default_value_t = Quotas::default().api_burst)]
    api_burst: f64,
    #[arg(long, value_enum, default_value_t = Model::Current)]
    model: Model,
    /// Places to admit [default: unlimited].
    #[arg(long)]
    capacity: Option<u64>,
    /// New fans one Redis core admits per second (admit plus confirm).
    #[arg(long, default_value_t = MEASURED_GATE_ADMISSIONS_PER_SECOND)]
    redis_admissions_per_second: f64,
    /// The gate's other answers (sold out, already in) per second on one core.
    #[arg(long, default_value_t = MEASURED_GATE_ANSWERS_PER_SECOND)]
    redis_answers_per_second: f64,
    /// Line syncs per second on one core, carrying no place.
    #[arg(long, default_value_t = MEASURED_LINE_SYNCS_PER_SECOND)]
    redis_syncs_per_second: f64,
    /// Places one core counts per second inside line syncs.
    #[arg(long, default_value_t = MEASURED_LINE_PLACES_PER_SECOND)]
    redis_places_per_second: f64,
    /// A line in front of the gate admitting this many fans a second, or
    /// `suggested`: the rate the preflight suggests for this core and peak
    /// (80% of the core, less the line's syncs and the places they count,
    /// over the catch-up second's 1.1).
    #[arg(long, value_name = "PER_SECOND|suggested", value_parser = line_rate)]
    line_rate: Option<LineRate>,
    /// Refused fans do not retry (each fan is one request).
    #[arg(long)]
    no_retries: bool,
    /// Seed of the clients' jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// With --json, every second's figures too.
    #[arg(long)]
    per_second: bool,
    /// Also draw the spike as SVG, second by second: arrivals, served,
    /// throttled by each limit, refused by Redis, admitted, waiting in line.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<std::path::PathBuf>,
}

/// `--line-rate`: a number, or the suggested rate.
#[derive(Clone, Copy, Debug)]
enum LineRate {
    PerSecond(f64),
    Suggested,
}

fn line_rate(s: &str) -> Result<LineRate, String> {
    if s == "suggested" {
        return Ok(LineRate::Suggested);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(LineRate::PerSecond(r)),
        _ => Err(format!("{s:?}: must be a positive number or `suggested`")),
    }
}

pub async fn run(a: SimulateArgs) -> Result<(), String> {
    let traffic = Traffic {
        peak_rps: a.peak_rps,
        duration_ms: a.duration_ms,
        ramp_s: a.ramp_seconds,
        hold_s: a.hold_seconds,
        decay_s: a.decay_seconds,
    };
    let positive = |name: &str, x: f64| {
        if x.is_finite() && x >= 0.0 {
            Ok(())
        } else {
            Err(format!("--{name} {x}: must be a number of at least 0"))
        }
    };
    for (name, x) in [
        ("peak-rps", a.peak_rps),
        ("ramp-seconds", a.ramp_seconds),
        ("hold-seconds", a.hold_seconds),
        ("decay-seconds", a.decay_seconds),
        ("api-rate", a.api_rate),
        ("api-burst", a.api_burst),
        ("account-limit", a.account_limit as f64),
        ("redis-admissions-per-second", a.redis_admissions_per_second),
        ("redis-answers-per-second", a.redis_answers_per_second),
        ("redis-syncs-per-second", a.redis_syncs_per_second),
        ("redis-places-per-second", a.redis_places_per_second),
    ] {
        positive(name, x)?;
    }
    if !(a.duration_ms.is_finite() && a.duration_ms > 0.0) {
        return Err(format!("--duration-ms {}: must be a positive number", a.duration_ms));
    }
    let core = Capacities {
        redis_admissions_per_second: a.redis_admissions_per_second,
        line_syncs_per_second: a.redis_syncs_per_second,
        line_places_per_second: a.redis_places_per_second,
        ..Capacities::default()
    };
    let line_rate = a.line_rate.map(|r| match r {
        LineRate::PerSecond(rate) => rate,
        LineRate::Suggested => LineRates::for_core(&core, a.peak_rps).suggested,
    });
    if line_rate.is_some_and(|r| r <= 0.0) {
        return Err("--line-rate suggested: this core has no room for a line at this peak".into());
    }
    let spike = Spike {
        traffic,
        provisioned: a.provisioned,
        quotas: Quotas { account_concurrency: a.account_limit, api_rate: a.api_rate, api_burst: a.api_burst },
        model: match a.model {
            Model::Current => ScalingModel::Current,
            Model::Legacy => ScalingModel::LEGACY,
        },
        gate: GateModel {
            admissions_per_second: a.redis_admissions_per_second,
            answers_per_second: a.redis_answers_per_second,
            syncs_per_second: a.redis_syncs_per_second,
            places_per_second: a.redis_places_per_second,
            capacity: a.capacity.unwrap_or(u64::MAX),
        },
        line: line_rate.map(LineModel::at),
        retries: !a.no_retries,
        seed: a.seed,
    };
    let sim = simulate_spike(&spike);
    if let Some(path) = &a.chart {
        crate::chart::simulation(path, &sim.seconds).map_err(|e| format!("--chart {}: {e}", path.display()))?;
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let out = json!({
        "fans": sim.fans,
        "requests": sim.requests,
        "polls": sim.polls,
        "retries": sim.retries,
        "throttled": sim.throttled(),
        "throttledByLambda": sim.throttled_by_lambda,
        "throttledByApiGateway": sim.throttled_by_api_gateway,
        "refusedByRedis": sim.refused_by_redis,
        "admitted": sim.admitted,
        "soldOut": sim.sold_out,
        "gaveUp": sim.gave_up,
        "peakConcurrency": sim.peak_concurrency,
        "coldStarts": sim.cold_starts,
        "peakRequestsPerSecond": sim.peak_requests_per_second,
        "redisPeakLoad": round(sim.redis_peak_load),
        "waitP50Seconds": round(sim.wait_p50_seconds),
        "waitMaxSeconds": round(sim.wait_max_seconds),
        "lineRate": line_rate,
    });
    let mut out = out;
    if a.per_second {
        out["seconds"] = sim
            .seconds
            .iter()
            .map(|s| {
                json!({
                    "arrivals": s.arrivals, "requests": s.requests, "polls": s.polls, "served": s.served,
                    "throttledByApiGateway": s.throttled_by_api_gateway, "throttledByLambda": s.throttled_by_lambda,
                    "refusedByRedis": s.refused_by_redis, "admitted": s.admitted, "waiting": s.waiting,
                    "redisAdmissions": round(s.redis_admissions), "redisAnswers": round(s.redis_answers),
                    "redisSyncs": round(s.redis_syncs),
                })
            })
            .collect();
    }
    if a.json {
        println!("{out}");
    } else {
        println!(
            "fans {}  requests {} (polls {}, retries {})  throttled {} ({} by API Gateway, {} by Lambda)  refused by Redis {}",
            sim.fans,
            sim.requests,
            sim.polls,
            sim.retries,
            sim.throttled(),
            sim.throttled_by_api_gateway,
            sim.throttled_by_lambda,
            sim.refused_by_redis
        );
        println!(
            "admitted {}  sold out {}  gave up {}  wait p50 {:.1} s, max {:.1} s  peak {} requests/s, concurrency {}, \
             Redis {:.0}% of its core  cold starts {}",
            sim.admitted,
            sim.sold_out,
            sim.gave_up,
            sim.wait_p50_seconds,
            sim.wait_max_seconds,
            sim.peak_requests_per_second,
            sim.peak_concurrency,
            sim.redis_peak_load * 100.0,
            sim.cold_starts
        );
        if let Some(rate) = line_rate {
            println!("a line at {rate:.0} admissions a second");
        }
    }
    Ok(())
}
