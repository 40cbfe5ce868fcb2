//! `fanrush plan --chart` and `fanrush simulate --chart`: the files are
//! SVG a parser reads, with every series named in the legend.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fanrush-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn fanrush(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fanrush")).args(args).output().unwrap()
}

/// The SVG's text: every <text> element's content, trimmed.
fn texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(|t| t.trim().to_owned()).collect()
}

#[test]
fn the_plan_chart_stacks_each_event_and_draws_the_clamp() {
    let calendar = scratch("calendar.json");
    std::fs::write(
        &calendar,
        r#"[{"eventId":"first","title":"A","opensAt":"2026-12-01T10:00:00Z","closesAt":"2026-12-01T10:30:00Z","capacity":5000,"expectedPeakRps":10000},
            {"eventId":"second","title":"B","opensAt":"2026-12-01T10:20:00Z","closesAt":"2026-12-01T11:00:00Z","capacity":5000,"expectedPeakRps":5000}]"#,
    )
    .unwrap();
    let chart = scratch("plan.svg");
    let out = fanrush(&[
        "plan",
        "--calendar",
        calendar.to_str().unwrap(),
        "--account-limit",
        "2100",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let texts = texts(&chart);
    for label in
        ["first (1200 environments)", "second (600 environments)", "set by the scheduler", "the account's clamp (2000)"]
    {
        assert!(texts.iter().any(|t| t == label), "no {label:?} in {texts:?}");
    }
    assert!(texts.iter().any(|t| t == "12-01 10:00"), "the time axis is labelled in UTC: {texts:?}");
}

#[test]
fn the_simulate_chart_names_every_series() {
    let chart = scratch("simulate.svg");
    let out = fanrush(&[
        "simulate",
        "--peak-rps",
        "20000",
        "--duration-ms",
        "20",
        "--hold-seconds",
        "10",
        "--capacity",
        "5000",
        "--line-rate",
        "1000",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let texts = texts(&chart);
    for label in [
        "arrivals (new fans)",
        "served (requests a function ran)",
        "throttled by API Gateway",
        "throttled by Lambda",
        "refused by Redis",
        "admitted",
        "waiting in line (right axis)",
        "fans waiting in line",
    ] {
        assert!(texts.iter().any(|t| t == label), "no {label:?} in {texts:?}");
    }
}

#[test]
fn a_chart_that_cannot_be_written_fails_the_command_and_names_the_flag() {
    let out =
        fanrush(&["simulate", "--peak-rps", "100", "--duration-ms", "20", "--chart", "/nonexistent-dir/simulate.svg"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--chart /nonexistent-dir/simulate.svg"), "{stderr}");
}
