//! Memory: entry-api's RSS over 100,000 invocations, against hello-world's.

use super::*;

impl Workloads {
    /// RSS of `program` after `checkpoints` invocations of `make_body`.
    pub(super) async fn rss_curve(
        &self,
        program: &PathBuf,
        env: &[(String, String)],
        args: &[&str],
        checkpoints: &[usize],
        make_body: impl Fn(usize) -> String,
    ) -> Vec<f64> {
        let harness = Harness::start().await;
        let mut command = self.command(program, env);
        command.args(args);
        let (child, _) = harness.spawn(&mut command);
        let pid = child.id().unwrap();
        let mut out = Vec::new();
        let mut done = 0;
        for &c in checkpoints {
            while done < c {
                harness.invoke(make_body(done)).await;
                done += 1;
            }
            out.push(rss_mb(pid));
        }
        out
    }

    pub async fn memory(&self, report: &mut Report) {
        let (small, large) = if self.quick { (2_000, 10_000) } else { (10_000, 100_000) };
        let points = [1, small, large];
        // Redis-only paths, alternating: read the event, be refused as sold out.
        let body = |i: usize| {
            if i.is_multiple_of(2) {
                http_event("GET", &format!("/events/{OPEN}"), "reader")
            } else {
                Self::post(FULL, &format!("mem-{i}"))
            }
        };
        let entry = self.rss_curve(&self.binary("entry-api"), &self.env, &[], &points, body).await;
        // The limit: a hello-world with upstream lambda_runtime's behaviour,
        // which writes each invocation's unique trace id into the environment.
        let mut upstream_env = self.env.clone();
        upstream_env.push(("AWS_LAMBDA_RUST_SET_TRACE_ENV".into(), "true".into()));
        let upstream = self.rss_curve(&self.binary("hello"), &upstream_env, &[], &points, |_| "{}".into()).await;
        let hello = self.rss_curve(&self.binary("hello"), &self.env, &[], &points, |_| "{}".into()).await;
        for (i, n) in [(1, small), (2, large)] {
            report.add(Figure {
                name: format!("RSS entry-api after {n} invocations"),
                value: entry[i],
                unit: "MB",
                limit: Some(32.0),
                limit_name: format!(
                    "32 MB budget (hello-world: {:.1} MB; upstream trace-id env: {:.1} MB)",
                    hello[i], upstream[i]
                ),
                target: "<= 32 MB".into(),
                met: Some(entry[i] <= 32.0),
            });
        }
        report.add(Figure {
            name: format!("RSS growth entry-api {small} -> {large} invocations"),
            value: entry[2] - entry[1],
            unit: "MB",
            limit: Some(upstream[2] - upstream[1]),
            limit_name: "hello-world's growth with upstream lambda_runtime (unique trace id in the env)".into(),
            target: "no upward trend (< 1 MB)".into(),
            met: Some(entry[2] - entry[1] < 1.0),
        });
    }
}
