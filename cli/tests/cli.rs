//! `fanrush plan`, `simulate` and `preflight` as an operator runs them.

use serde_json::{json, Value};
use std::process::Command;

fn fanrush(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn plan_prints_the_step_function_of_overlapping_events_with_its_cost() {
    let dir = std::env::temp_dir().join(format!("fanrush-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("calendar.json");
    let calendar = json!([
        {"eventId":"a","title":"A","opensAt":"2026-12-01T10:00:00Z","closesAt":"2026-12-01T10:30:00Z","capacity":5000,"expectedPeakRps":10000},
        {"eventId":"b","title":"B","opensAt":"2026-12-01T10:20:00Z","closesAt":"2026-12-01T11:00:00Z","capacity":5000,"expectedPeakRps":5000,"cooldownMinutes":0}
    ]);
    std::fs::write(&file, calendar.to_string()).unwrap();
    let plan = fanrush(&[
        "plan",
        "--calendar",
        file.to_str().unwrap(),
        "--duration-ms",
        "150",
        "--account-limit",
        "2100",
        "--json",
    ]);
    let steps: Vec<(String, i64, bool)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["at"].as_str().unwrap().to_owned(),
                a["provisionedConcurrency"].as_i64().unwrap(),
                a["clamped"].as_bool().unwrap(),
            )
        })
        .collect();
    let expect = |at: &str, n, c| (at.to_owned(), n, c);
    assert_eq!(
        steps,
        [
            expect("2026-12-01T09:30:00Z", 1800, false),
            expect("2026-12-01T09:50:00Z", 2000, true), // 2,700 wanted, 2,100 - 100 granted
            expect("2026-12-01T10:40:00Z", 900, false),
            expect("2026-12-01T11:00:00Z", 0, false), // b has no cooldown
        ]
    );
    assert_eq!(plan["actions"][1]["events"], json!(["a", "b"]));
    // 1800 x 20 min + 2000 x 50 min + 900 x 20 min, at 128 MB.
    assert_eq!(plan["cost"]["gbSeconds"], (1800.0 * 1200.0 + 2000.0 * 3000.0 + 900.0 * 1200.0) * 0.125);
    assert!(plan["cost"]["dollars"].as_f64().unwrap() > 0.0);
    assert_eq!(plan["needs"][0]["boundBy"], "concurrency (rps x p99)", "150 ms: in-flight requests bind");

    // At the default 20 ms, 10,000 rps is 200 in flight, but an environment
    // serves at most 10 rps: 1,000 x 1.2 headroom.
    let fast = fanrush(&["plan", "--calendar", file.to_str().unwrap(), "--json"]);
    assert_eq!(fast["needs"][0]["environments"], 1200, "{fast}");
    assert_eq!(fast["needs"][0]["boundBy"], "request rate (rps / 10 per environment)");
}

#[test]
fn simulate_shows_the_seed_spike_throttled_on_demand_and_absorbed_with_the_plan() {
    // Each fan once, and no gate limit: Lambda's limits alone.
    let base = [
        "simulate",
        "--peak-rps",
        "10000",
        "--duration-ms",
        "150",
        "--account-limit",
        "10000",
        "--no-retries",
        "--redis-admissions-per-second",
        "1000000",
        "--json",
    ];
    let cold = fanrush(&base);
    assert!(cold["throttled"].as_u64().unwrap() > 0, "{cold}");
    let planned = fanrush(&[&base[..], &["--provisioned", "1800"]].concat());
    assert_eq!((planned["throttled"].as_u64(), planned["coldStarts"].as_u64()), (Some(0), Some(0)), "{planned}");
    assert_eq!(planned["requests"], cold["requests"]);
    assert_eq!(planned["fans"], planned["requests"], "no retries: one request a fan");
    assert_eq!(cold["throttledByApiGateway"], 0, "10,000 rps is within API Gateway's default: {cold}");
    assert_eq!(cold["throttledByLambda"], cold["throttled"]);
}

#[test]
fn simulate_says_which_limit_bit() {
    // 20,000 rps with 2,000 warm environments at 20 ms: Lambda would serve
    // it all, API Gateway's default 10,000 rps (5,000 bucket) refuses ~95,000.
    let base = [
        "simulate",
        "--peak-rps",
        "20000",
        "--duration-ms",
        "20",
        "--hold-seconds",
        "10",
        "--no-retries",
        "--redis-admissions-per-second",
        "1000000",
    ];
    let args = [&base[..], &["--provisioned", "2000", "--account-limit", "100000", "--json"]].concat();
    let by_default = fanrush(&args);
    let api = by_default["throttledByApiGateway"].as_u64().unwrap();
    assert!((94_980..=95_020).contains(&api), "{by_default}");
    assert_eq!(by_default["throttledByLambda"], 0, "{by_default}");
    assert_eq!(by_default["throttled"].as_u64(), Some(api));
    let raised = fanrush(&[&args[..], &["--api-rate", "20000", "--api-burst", "10000"]].concat());
    assert_eq!(raised["throttled"], 0, "{raised}");
    // Lambda's default 1,000 environments serve 10,000 rps at most.
    let small = fanrush(&[&base[..], &["--provisioned", "1000", "--api-rate", "20000", "--json"]].concat());
    assert!(small["throttledByLambda"].as_u64().unwrap() > 0, "{small}");
    assert_eq!(small["throttledByApiGateway"], 0, "{small}");
}

/// Runs `fanrush preflight` on `calendar`; returns its exit status and JSON.
fn preflight(calendar: &Value, extra: &[&str]) -> (bool, Value) {
    let dir = std::env::temp_dir().join(format!("fanrush-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("calendar-{}.json", extra.join("_").replace(['-', ':'], "")));
    std::fs::write(&file, calendar.to_string()).unwrap();
    let args = [&["preflight", "--calendar", file.to_str().unwrap(), "--now", "2026-12-01T12:00:00Z", "--json"], extra]
        .concat();
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).args(&args).output().unwrap();
    (out.status.success(), serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn preflight_fails_a_default_account_and_says_what_to_raise() {
    let calendar = json!([
        {"eventId":"gig","title":"Gig","opensAt":"2026-12-01T20:00:00Z","closesAt":"2026-12-01T20:30:00Z","capacity":100000,"expectedPeakRps":12000}
    ]);
    let (ok, report) = preflight(&calendar, &["--account-limit", "1000"]);
    assert!(!ok, "a failed check exits non-zero: {report}");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<&str> = checks.iter().filter(|c| c["ok"] == false).map(|c| c["name"].as_str().unwrap()).collect();
    assert!(failed.iter().any(|n| n.contains("concurrency")), "{failed:?}");
    assert!(failed.contains(&"gig: api gateway throttle rate"), "12,000 rps over 10,000: {failed:?}");
    for c in checks {
        assert!(c["needed"].is_number() && c["available"].is_number() && c["ok"].is_boolean(), "{c}");
    }
    // 12,000 rps / 10 x 1.2 = 1,440 environments; 1,540 with the 100 kept unreserved.
    assert_eq!(report["events"][0]["environments"], 1440);
    let concurrency = checks.iter().find(|c| c["name"] == "gig: lambda account concurrency").unwrap();
    assert_eq!((concurrency["needed"].as_f64(), concurrency["available"].as_f64()), (Some(1540.0), Some(1000.0)));
    assert!(concurrency["raise"].as_str().unwrap().contains("+540"), "{concurrency}");

    let raised = [
        "--account-limit",
        "2000",
        "--api-rate",
        "15000",
        "--fan-route-rate",
        "14000",
        "--redis-admissions-per-second",
        "50000",
    ];
    let (ok, report) = preflight(&calendar, &raised);
    assert!(ok, "raised quotas pass: {report}");
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true));
}

#[test]
fn simulate_shows_the_gates_core_refusing_an_opening_and_a_line_pacing_it() {
    // A tenth of the README's worked event: 100,000 fans in a minute for
    // 10,000 places against a core admitting 1,400 fans a second.
    let base = [
        "simulate",
        "--peak-rps",
        "6375",
        "--ramp-seconds",
        "2",
        "--decay-seconds",
        "15",
        "--hold-seconds",
        "58",
        "--duration-ms",
        "20",
        "--provisioned",
        "2000",
        "--account-limit",
        "3000",
        "--api-rate",
        "20000",
        "--capacity",
        "10000",
        "--redis-admissions-per-second",
        "1400",
        "--json",
    ];
    let unlined = fanrush(&base);
    assert!(unlined["refusedByRedis"].as_u64().unwrap() > 0, "{unlined}");
    assert!(unlined["retries"].as_u64().unwrap() > 0, "refused fans retry: {unlined}");
    let lined = fanrush(&[&base[..], &["--line-rate", "1120"]].concat());
    let suggested = fanrush(&[&base[..], &["--line-rate", "suggested"]].concat());
    let rate = suggested["lineRate"].as_f64().unwrap();
    assert!(
        rate > 500.0 && rate < 1_400.0 * 0.8 / 1.1,
        "80% of the core less the line's bookkeeping, over 1.1: {rate}"
    );
    assert_eq!((lined["refusedByRedis"].as_u64(), lined["throttled"].as_u64()), (Some(0), Some(0)), "{lined}");
    assert_eq!(lined["admitted"], 10_000, "every place sold: {lined}");
    assert!(lined["polls"].as_u64().unwrap() > 0 && lined["waitMaxSeconds"].as_f64().unwrap() > 1.0, "{lined}");
    for field in ["waitP50Seconds", "waitMaxSeconds", "polls", "refusedByRedis"] {
        assert!(lined[field].is_number(), "{field}: {lined}");
    }
}

#[test]
fn preflight_checks_the_places_memory_against_the_node_when_told_its_maxmemory() {
    let calendar = json!([
        {"eventId":"gig","title":"Gig","opensAt":"2026-12-01T20:00:00Z","closesAt":"2026-12-01T20:30:00Z",
         "capacity":1000000,"expectedPeakRps":100}
    ]);
    let memory = |report: &Value| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "gig: redis memory (MB) for its places")
            .cloned()
    };
    let (_, report) = preflight(&calendar, &["--account-limit", "1000"]);
    assert_eq!(memory(&report), None, "no maxmemory given, no check: {report}");
    // 1,000,000 places at 100 + 400 bytes: 500 MB, over a 300 MB node; fans
    // writing 70 characters on average need 200 MB, which fits.
    let node = ["--account-limit", "1000", "--cache-maxmemory", "300000000", "--bytes-per-fan", "100"];
    let (ok, report) = preflight(&calendar, &[&node[..], &["--bytes-per-note", "400"]].concat());
    let check = memory(&report).unwrap();
    assert!(!ok && check["ok"] == false && check["needed"] == 500.0 && check["available"] == 300.0, "{check}");
    let (_, report) = preflight(&calendar, &[&node[..], &["--bytes-per-note", "400", "--note-chars", "70"]].concat());
    assert_eq!(memory(&report).unwrap()["needed"], 200.0);
    // A note longer than an entry may carry is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush"))
        .args([
            "preflight",
            "--calendar",
            "calendars/million-fans.json",
            "--account-limit",
            "1000",
            "--note-chars",
            "281",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--note-chars"), "{out:?}");
}

/// Account and API quotas far above what the calendars below need, so only
/// the gate's checks can fail.
const ROOMY_QUOTAS: &[&str] = &["--account-limit", "100000", "--api-rate", "1000000", "--fan-route-rate", "900000"];

#[test]
fn preflight_fails_a_peak_over_the_redis_ceiling_without_a_line_and_passes_with_one() {
    let unlined = json!([
        {"eventId":"drop","title":"Drop","opensAt":"2026-12-01T20:00:00Z","closesAt":"2026-12-01T20:30:00Z",
         "capacity":100000,"expectedPeakRps":60000}
    ]);
    // The line's syncs take 500 / 10,000 = 5% of the core, the places of
    // 60,000 arrivals a second 10%: 80% less those leaves 65% of 14,000.
    let big = [
        ROOMY_QUOTAS,
        &[
            "--redis-admissions-per-second",
            "14000",
            "--redis-syncs-per-second",
            "10000",
            "--redis-places-per-second",
            "600000",
        ],
    ]
    .concat();
    let (ok, report) = preflight(&unlined, &big);
    assert!(!ok);
    let redis = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "drop: redis admissions/s on one primary")
        .unwrap();
    assert_eq!(redis["ok"], false);
    assert!(redis["raise"].as_str().unwrap().contains("admissionsPerSecond to at most 9100"), "{redis}");
    let mut lined = unlined.clone();
    lined[0]["admissionsPerSecond"] = json!(9100);
    let (ok, report) = preflight(&lined, &big);
    assert!(ok, "a line within 80% of the core, its bookkeeping included, passes: {report}");
    lined[0]["admissionsPerSecond"] = json!(9101);
    assert!(!preflight(&lined, &big).0, "one more a second does not");
    let requests = report["events"][0]["requestsPerSecond"].as_f64().unwrap();
    assert!(requests > 60_000.0, "the line's polls are in the quotas: {requests}");
}

#[test]
fn preflight_on_shards_places_three_drops_apart_where_one_node_cannot_hold_them() {
    let drop = |id: &str, rate: u32| {
        json!({"eventId": id, "title": id, "opensAt": "2026-12-01T20:00:00Z", "closesAt": "2026-12-01T20:30:00Z",
               "capacity": 20000, "expectedPeakRps": 10000, "admissionsPerSecond": rate})
    };
    let calendar = json!([drop("big", 6000), drop("one", 4000), drop("two", 4000)]);
    let roomy = [ROOMY_QUOTAS, &["--redis-admissions-per-second", "10000"]].concat();
    let (ok, report) = preflight(&calendar, &roomy);
    assert!(!ok, "14,000 a second on one core: {report}");
    assert_eq!(report["shards"], json!([]));
    let (ok, report) = preflight(&calendar, &[&roomy[..], &["--shards", "3"]].concat());
    assert!(ok, "{report}");
    let shards = report["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let mut placed: Vec<String> = shards
        .iter()
        .map(|s| s["peakEvents"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect())
        .collect();
    placed.sort();
    assert_eq!(placed, ["big", "one", "two"], "one event a shard: {report}");
    // Two shards: two drops share one, 8,000 a second over its 8,000 budget
    // passes; a third drop a little faster does not, and it is named.
    let (ok, report) = preflight(
        &json!([drop("big", 6000), drop("one", 4000), drop("two", 4500)]),
        &[&roomy[..], &["--shards", "2"]].concat(),
    );
    assert!(!ok);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.iter().any(|n| n.starts_with("shard ") && n.contains("at its peak")), "{failed:?}");
}

#[test]
fn bad_arguments_are_refused_with_a_message_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).args(["simulate", "--peak-rps", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peak-rps"));
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).args(["plan", "--calender", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--calender"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_command_answers_help_and_the_cli_its_version() {
    for command in ["plan", "simulate", "preflight", "measure-gate", "redrive"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: fanrush"), "{command}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("fanrush {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn plan_and_preflight_exit_non_zero_on_a_calendar_they_cannot_read_and_never_print_minus_zero() {
    let dir = std::env::temp_dir().join(format!("fanrush-badcal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ics = dir.join("not.ics");
    std::fs::write(&ics, "this is not a calendar").unwrap();
    for command in ["plan", "preflight"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fanrush"))
            .args([command, "--calendar", ics.to_str().unwrap(), "--account-limit", "1000"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not iCalendar"), "{command}");
    }
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fanrush"))
        .args(["plan", "--calendar", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("-0"), "{text}");
}
