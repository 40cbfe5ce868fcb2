//! The Weverse talk's Node.js stack (`bench/peer`) beside entry-api, under the
//! same harness.

use super::*;

impl Workloads {
    pub async fn peer(&self, report: &mut Report) {
        let peer = self.root.join("bench/peer/bootstrap.mjs");
        let node = PathBuf::from(var("NODE", "/usr/bin/node"));
        // The gate's own function library, as its adapter loads it, and the
        // names of the two functions the accept path calls.
        use fanrush::adapters::redis_gate::{admit_function, confirm_function, gate_library};
        let scripts = std::env::temp_dir().join(format!("fanrush-bench-peer-{}", std::process::id()));
        std::fs::create_dir_all(&scripts).expect("a scratch directory");
        let library = scripts.join("gate.lua");
        std::fs::write(&library, gate_library()).expect("write the library for the peer");
        let mut peer_env = self.env.clone();
        peer_env.extend([
            ("GATE_LIBRARY".into(), library.display().to_string()),
            ("ADMIT_FUNCTION".into(), admit_function()),
            ("CONFIRM_FUNCTION".into(), confirm_function()),
        ]);
        let args = [peer.to_str().unwrap()];
        let node_cold = self.cold_start(&node, &peer_env, &args).await;
        let rust_cold = self.cold_start(&self.binary("entry-api"), &self.env, &[]).await;
        report.add(Figure {
            name: "cold start: entry-api vs Node.js peer".into(),
            value: rust_cold,
            unit: "ms",
            limit: Some(node_cold),
            limit_name: "Node.js 20 + ioredis + @aws-sdk/client-sqs, same harness".into(),
            target: "ratio < 1".into(),
            met: Some(rust_cold < node_cold),
        });
        let n = self.runs(3000, 300);
        let harness = Harness::start().await;
        let mut command = self.command(&node, &peer_env);
        command.args(args);
        let (child, _) = harness.spawn(&mut command);
        let pid = child.id().unwrap();
        for i in 0..200 {
            harness.invoke(Self::post(OPEN, &format!("node-warm-{i}"))).await;
        }
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let a = harness.invoke(Self::post(OPEN, &format!("node-fan-{i}"))).await;
            assert!(a.body.contains("\"statusCode\":202") && !a.error, "peer answered: {}", a.body);
            samples.push(a.elapsed.as_secs_f64() * 1e3);
        }
        let node_rss = rss_mb(pid);
        drop(child);
        let (p50, p99, _, _) = self.accept.unwrap_or_default();
        for (name, rust, node) in [
            ("accept path p50: entry-api vs Node.js peer", p50, percentile(&mut samples, 50.0)),
            ("accept path p99: entry-api vs Node.js peer", p99, percentile(&mut samples, 99.0)),
        ] {
            report.add(Figure {
                name: name.into(),
                value: rust,
                unit: "ms",
                limit: Some(node),
                limit_name: "Node.js peer, same Redis, SQS endpoint and harness".into(),
                target: "ratio < 1".into(),
                met: Some(rust < node),
            });
        }
        let rust_rss = self
            .rss_curve(&self.binary("entry-api"), &self.env, &[], &[n + 200], |i| {
                Self::post(OPEN, &format!("rss-fan-{i}"))
            })
            .await[0];
        report.add(Figure {
            name: format!("RSS after {} accepted entries: entry-api vs Node.js peer", n + 200),
            value: rust_rss,
            unit: "MB",
            limit: Some(node_rss),
            limit_name: "Node.js peer after the same entries".into(),
            target: "ratio < 1".into(),
            met: Some(rust_rss < node_rss),
        });
    }
}
