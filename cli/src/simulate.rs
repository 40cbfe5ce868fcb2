//! `fanrush simulate`: replays a spike through API Gateway's throttle and
//! Lambda's limits, with or without provisioned concurrency, and says which
//! limit refused how many requests.

use fanrush::flags::Args;
use fanrush::rules::scaling::{simulate, Quotas, ScalingModel, Traffic};
use serde_json::json;

pub const USAGE: &str =
    "  fanrush simulate --peak-rps R --duration-ms D [--ramp-seconds 0] [--hold-seconds 60] [--decay-seconds 0]
                   [--provisioned 0]
                   [--account-limit 1000] [--api-rate 10000] [--api-burst 5000] [--model current|legacy] [--json]";

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "peak-rps",
            "duration-ms",
            "ramp-seconds",
            "hold-seconds",
            "decay-seconds",
            "provisioned",
            "account-limit",
            "api-rate",
            "api-burst",
            "model",
        ],
        &["json"],
    )?;
    let traffic = Traffic {
        peak_rps: args.need("peak-rps")?,
        duration_ms: args.need("duration-ms")?,
        ramp_s: args.get("ramp-seconds", 0.0)?,
        hold_s: args.get("hold-seconds", 60.0)?,
        decay_s: args.get("decay-seconds", 0.0)?,
    };
    let times = [traffic.ramp_s, traffic.hold_s, traffic.decay_s];
    if !(traffic.peak_rps >= 0.0 && traffic.duration_ms > 0.0 && times.iter().all(|t| *t >= 0.0)) {
        return Err("rates and times must be positive numbers".into());
    }
    let defaults = Quotas::default();
    let quotas = Quotas {
        account_concurrency: args.get("account-limit", defaults.account_concurrency)?,
        api_rate: args.get("api-rate", defaults.api_rate)?,
        api_burst: args.get("api-burst", defaults.api_burst)?,
    };
    if !(quotas.account_concurrency >= 0 && quotas.api_rate >= 0.0 && quotas.api_burst >= 0.0) {
        return Err("quotas must be positive numbers".into());
    }
    let model = match args.get("model", "current".to_owned())?.as_str() {
        "current" => ScalingModel::Current,
        "legacy" => ScalingModel::LEGACY,
        other => return Err(format!("--model {other:?}: use current or legacy")),
    };
    let sim = simulate(traffic, args.get("provisioned", 0)?, quotas, model);
    let out = json!({
        "requests": sim.requests,
        "throttled": sim.throttled(),
        "throttledByLambda": sim.throttled_by_lambda,
        "throttledByApiGateway": sim.throttled_by_api_gateway,
        "peakConcurrency": sim.peak_concurrency,
        "coldStarts": sim.cold_starts,
    });
    if args.switch("json") {
        println!("{out}");
    } else {
        println!(
            "requests {}  throttled {} ({:.2}%: {} by API Gateway, {} by Lambda)  peak concurrency {}  cold starts {}",
            sim.requests,
            sim.throttled(),
            100.0 * sim.throttled() as f64 / sim.requests.max(1) as f64,
            sim.throttled_by_api_gateway,
            sim.throttled_by_lambda,
            sim.peak_concurrency,
            sim.cold_starts
        );
    }
    Ok(())
}
