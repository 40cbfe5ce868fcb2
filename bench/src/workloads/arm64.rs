//! arm64, the template's default architecture: entry-api cross-built and run
//! under qemu-user.

use super::*;

impl Workloads {
    /// The template's default architecture, arm64: each function
    /// cross-built by `cargo lambda build --arm64` (zipped size), and
    /// entry-api's arm64 binary run under qemu-user in the same harness,
    /// answering real requests against the same Redis and SQS endpoint. A
    /// run under emulation proves the binary works, not how fast it is: its
    /// cold start is reported, never compared.
    pub async fn arm64(&self, report: &mut Report) {
        self.zip_sizes("target/lambda-arm64", "arm64", report);
        let binary = self.root.join("target/aarch64-unknown-linux-gnu/release/entry-api");
        let qemu = PathBuf::from("/usr/bin/qemu-aarch64");
        if !binary.exists() || !qemu.exists() {
            eprintln!("  arm64: no {} or no qemu-aarch64; skipped", binary.display());
            return;
        }
        let binary = binary.display().to_string();
        let args = ["-L", "/usr/aarch64-linux-gnu", binary.as_str()];
        let emulated = self.cold_start(&qemu, &self.env, &args).await;
        report.add(Figure {
            name: "cold start: entry-api arm64 under qemu-user (emulated)".into(),
            value: emulated,
            unit: "ms",
            limit: None,
            limit_name: "none: emulation says nothing of Graviton's speed".into(),
            target: "reported".into(),
            met: None,
        });
        let harness = Harness::start().await;
        let mut command = self.command(&qemu, &self.env);
        command.args(args);
        let (mut child, _) = harness.spawn(&mut command);
        let mut right = 0;
        let checks = [
            (Self::post(OPEN, "arm64-fan"), "\"statusCode\":202"),
            (Self::post(OPEN, "arm64-fan"), "\"statusCode\":200"),
            (Self::post(FULL, "arm64-late"), "\"statusCode\":409"),
            (http_event("GET", &format!("/events/{OPEN}/entries/me"), "arm64-fan"), "\"statusCode\":200"),
        ];
        let n = checks.len();
        for (request, expected) in checks {
            match harness.try_invoke(request, Duration::from_secs(30)).await {
                Ok(answer) if answer.body.contains(expected) => right += 1,
                Ok(answer) => eprintln!("  arm64: expected {expected}, got {}", answer.body),
                Err(e) => eprintln!("  arm64: no answer: {e:?}"),
            }
        }
        let _ = child.kill().await;
        report.add(Figure {
            name: "arm64 entry-api under qemu-user: requests answered as on x86_64 (202, 200, 409, entry read back)"
                .into(),
            value: right as f64,
            unit: "count",
            limit: Some(n as f64),
            limit_name: "requests".into(),
            target: format!("{n}"),
            met: Some(right == n),
        });
    }
}
