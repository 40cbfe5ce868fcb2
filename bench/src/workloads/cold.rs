//! The cold-start benchmarks: each function's exec-to-first-`/next`, against
//! the hello-world floor and with every service unreachable.

use super::*;

impl Workloads {
    pub async fn cold_starts(&self, report: &mut Report) {
        let hello = self.cold_start(&self.binary("hello"), &self.env, &[]).await;
        let entry = self.cold_start(&self.binary("entry-api"), &self.env, &[]).await;
        report.add(Figure {
            name: "cold start: entry-api".into(),
            value: entry,
            unit: "ms",
            limit: Some(hello),
            limit_name: "hello-world lambda_runtime, same harness".into(),
            target: "<= 2x hello-world and < 15 ms".into(),
            met: Some(entry <= 2.0 * hello && entry < 15.0),
        });
        let unreachable: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(k, v)| match k.as_str() {
                "REDIS_URL" => (k.clone(), "redis://127.0.0.1:1".into()),
                "AWS_ENDPOINT_URL" => (k.clone(), "http://127.0.0.1:1".into()),
                "DATABASE_URL" => (k.clone(), "postgres://postgres@127.0.0.1:1/postgres".into()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        let offline = self.cold_start(&self.binary("entry-api"), &unreachable, &[]).await;
        report.add(Figure {
            name: "cold start: entry-api, Redis/SQS/PostgreSQL unreachable".into(),
            value: offline,
            unit: "ms",
            limit: Some(entry),
            limit_name: "entry-api with every service reachable".into(),
            target: "the same figure: init touches no service (within 1 ms or 20%)".into(),
            met: Some((offline - entry).abs() <= 1.0f64.max(0.2 * entry)),
        });
        for f in ["admin-api", "writer", "scheduler", "notifier"] {
            let v = self.cold_start(&self.binary(f), &self.env, &[]).await;
            report.add(Figure {
                name: format!("cold start: {f}"),
                value: v,
                unit: "ms",
                limit: Some(hello),
                limit_name: "hello-world lambda_runtime".into(),
                target: "reported (the targets are entry-api's)".into(),
                met: None,
            });
        }
    }
}
