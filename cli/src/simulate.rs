//! `fanrush simulate`: replays a spike against Lambda's scaling model, with
//! or without provisioned concurrency.

use fanrush::flags::Args;
use fanrush::rules::scaling::{simulate, ScalingModel, Traffic};
use serde_json::json;

pub const USAGE: &str =
    "  fanrush simulate --peak-rps R --duration-ms D [--ramp-seconds 0] [--hold-seconds 60] [--provisioned 0]
                   [--account-limit 1000] [--model current|legacy] [--json]";

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &["peak-rps", "duration-ms", "ramp-seconds", "hold-seconds", "provisioned", "account-limit", "model"],
        &["json"],
    )?;
    let traffic = Traffic {
        peak_rps: args.need("peak-rps")?,
        duration_ms: args.need("duration-ms")?,
        ramp_s: args.get("ramp-seconds", 0.0)?,
        hold_s: args.get("hold-seconds", 60.0)?,
    };
    if !(traffic.peak_rps >= 0.0 && traffic.duration_ms > 0.0 && traffic.ramp_s >= 0.0 && traffic.hold_s >= 0.0) {
        return Err("rates and times must be positive numbers".into());
    }
    let model = match args.get("model", "current".to_owned())?.as_str() {
        "current" => ScalingModel::Current,
        "legacy" => ScalingModel::LEGACY,
        other => return Err(format!("--model {other:?}: use current or legacy")),
    };
    let sim = simulate(traffic, args.get("provisioned", 0)?, args.get("account-limit", 1000)?, model);
    let out = json!({
        "requests": sim.requests,
        "throttled": sim.throttled,
        "peakConcurrency": sim.peak_concurrency,
        "coldStarts": sim.cold_starts,
    });
    if args.switch("json") {
        println!("{out}");
    } else {
        println!(
            "requests {}  throttled {} ({:.2}%)  peak concurrency {}  cold starts {}",
            sim.requests,
            sim.throttled,
            100.0 * sim.throttled as f64 / sim.requests.max(1) as f64,
            sim.peak_concurrency,
            sim.cold_starts
        );
    }
    Ok(())
}
