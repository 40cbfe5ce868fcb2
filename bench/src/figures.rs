//! Figures and their report: each figure is a value, the limit it is
//! measured against in the same run, their ratio and the target.

use serde_json::{json, Value};

#[derive(Debug, Clone, Default)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// What bounds the figure, measured in the same run (or a stated constant).
    pub limit: Option<f64>,
    pub limit_name: String,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met, when the figure has one.
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn add(&mut self, f: Figure) {
        eprintln!("  {:<48} {:>10.3} {:<6} limit {:>10} {}", f.name, f.value, f.unit, fmt(f.limit), f.limit_name);
        self.figures.push(f);
    }

    pub fn print(&self) {
        println!(
            "{:<48} {:>11} {:<6} {:>11} {:>7}  {:<5} target (limit)",
            "figure", "value", "unit", "limit", "ratio", "met"
        );
        for f in &self.figures {
            println!(
                "{:<48} {:>11.3} {:<6} {:>11} {:>7}  {:<5} {} ({})",
                f.name,
                f.value,
                f.unit,
                fmt(f.limit),
                f.limit.map_or("-".into(), |l| format!("{:.2}", ratio(f.value, l))),
                f.met.map_or("-", |m| if m { "yes" } else { "NO" }),
                f.target,
                f.limit_name
            );
        }
    }

    /// The figures as the markdown table docs/benchmarks.md holds
    /// (`make tables` copies it from results.json).
    pub fn markdown(&self) -> String {
        let mut t =
            String::from("| figure | value | limit (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n");
        for f in &self.figures {
            let value = format!("{} {}", human(f.value), f.unit);
            let limit = match f.limit {
                Some(l) if f.limit_name.is_empty() => format!("{} {}", human(l), f.unit),
                Some(l) => format!("{} {} ({})", human(l), f.unit, f.limit_name),
                None if f.limit_name.is_empty() => "-".to_owned(),
                None => format!("- ({})", f.limit_name),
            };
            let ratio = f.limit.map_or("-".into(), |l| format!("{:.2}", ratio(f.value, l)));
            let met = f.met.map_or("-", |m| if m { "yes" } else { "**no**" });
            t.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                f.name,
                value.trim(),
                limit,
                ratio,
                f.target,
                met
            ));
        }
        t
    }

    pub fn json(&self) -> Value {
        json!({
            "machine": fanrush_local::runtime::machine(),
            "measuredAt": chrono::Utc::now().to_rfc3339(),
            "table": self.markdown(),
            "figures": self.figures.iter().map(|f| json!({
                "name": f.name,
                "value": round(f.value),
                "unit": f.unit,
                "limit": f.limit.map(round),
                "limitName": f.limit_name,
                "ratio": f.limit.map(|l| round(ratio(f.value, l))),
                "target": f.target,
                "met": f.met,
            })).collect::<Vec<_>>(),
        })
    }
}

fn ratio(v: f64, l: f64) -> f64 {
    if l == 0.0 {
        0.0
    } else {
        v / l
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Median of a sample.
pub fn median(xs: &mut [f64]) -> f64 {
    percentile(xs, 50.0)
}

/// Nearest-rank percentile of a sample.
pub fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((p / 100.0) * xs.len() as f64).ceil().max(1.0) as usize;
    xs[rank.min(xs.len()) - 1]
}

/// A figure as a person reads it: thousands grouped, three significant
/// digits below a hundred.
fn human(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        return if v < 0.0 { format!("-{grouped}") } else { grouped };
    }
    let decimals = if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.decimals$}")
}
