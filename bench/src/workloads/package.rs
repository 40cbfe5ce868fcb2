//! Package sizes: each function's zipped bootstrap, x86_64 and arm64.

use super::*;

impl Workloads {
    pub fn package_sizes(&self, report: &mut Report) {
        self.zip_sizes("target/lambda", "x86_64", report);
    }

    /// The zipped bootstrap of each function under `dir`, for `arch`.
    pub(super) fn zip_sizes(&self, dir: &str, arch: &str, report: &mut Report) {
        for f in ["entry-api", "admin-api", "writer", "scheduler", "notifier"] {
            let zip = self.root.join(dir).join(f).join("bootstrap.zip");
            let Ok(meta) = std::fs::metadata(&zip) else {
                eprintln!("  no {} (see scripts/bench.sh for the cargo lambda build)", zip.display());
                continue;
            };
            let mb = meta.len() as f64 / 1_048_576.0;
            report.add(Figure {
                name: format!("package size: {f} (zipped bootstrap, {arch})"),
                value: mb,
                unit: "MB",
                limit: Some(5.0),
                limit_name: "5 MB".into(),
                target: if f == "entry-api" { "< 5 MB".into() } else { "reported".into() },
                met: (f == "entry-api").then_some(mb < 5.0),
            });
        }
    }
}
