//! The accept path and the sold-out path through the harness, CPU per entry,
//! and the provisioned concurrency 10,000 rps needs.

use super::*;

impl Workloads {
    pub(super) fn post(event: &str, fan: &str) -> String {
        http_event("POST", &format!("/events/{event}/entries"), fan)
    }

    pub async fn accept_path(&mut self, report: &mut Report) {
        let n = self.runs(3000, 300);
        let harness = Harness::start().await;
        let (child, _) = harness.spawn(&mut self.command(&self.binary("entry-api"), &self.env));
        let pid = child.id().unwrap();
        for i in 0..200 {
            harness.invoke(Self::post(OPEN, &format!("warm-{i}"))).await;
        }
        // The bare round trips the accept path cannot avoid, same endpoints,
        // same run: the gate's admission call, made through the gate's own
        // adapter as the function makes it (the one calling convention).
        let gate = fanrush::adapters::redis_gate::EntryGate::new(
            &self.redis_url,
            &self.prefix,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        )
        .expect("a redis url");
        let (open, full) = (EventId::parse(OPEN).unwrap(), EventId::parse(FULL).unwrap());
        let body = EntryMessage::new(&Entry {
            event_id: EventId::parse(OPEN).unwrap(),
            fan_id: FanId::parse("bare-fan-000000").unwrap(),
            position: 1_000_000,
            note: None,
            accepted_at: Utc::now(),
        })
        .to_body();
        // One admission call for `fan`, exactly as the function makes it.
        let admit = |event: &EventId, fan: String| {
            let gate = &gate;
            let event = event.clone();
            async move {
                let fan = FanId::parse(&fan).expect("a valid fan id");
                gate.admit(&event, &fan, &None, Utc::now(), "tok").await.expect("the gate answers")
            }
        };
        // A bare call answered anything else (`state_lost` from a missing
        // fence) would be a cheaper path than the function's: refuse it.
        use fanrush::adapters::redis_gate::Admission;
        let expect = |a: Admission, reserved: bool| {
            assert!(matches!((&a, reserved), (Admission::Reserved(_), true) | (Admission::SoldOut, false)), "{a:?}")
        };
        for i in 0..200 {
            expect(admit(&open, format!("bare-warm-{i}")).await, true);
            self.sqs.send_message().queue_url(&self.queue_url).message_body(&body).send().await.unwrap();
        }

        // Interleaved in blocks of 100, so the function and the bare calls see
        // the same conditions (the endpoint's queue grows as the run goes on).
        let (mut accept, mut sold_out, mut bare, mut bare_redis) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cpu = 0.0;
        for block in 0..n / 100 {
            let cpu_before = cpu_ms(pid);
            for i in block * 100..(block + 1) * 100 {
                let a = harness.invoke(Self::post(OPEN, &format!("fan-{i}"))).await;
                assert!(a.body.contains("\"statusCode\":202"), "unexpected answer: {}", a.body);
                accept.push(a.elapsed.as_secs_f64() * 1e3);
            }
            cpu += cpu_ms(pid) - cpu_before;
            for i in block * 100..(block + 1) * 100 {
                let a = harness.invoke(Self::post(FULL, &format!("late-{i}"))).await;
                assert!(a.body.contains("\"statusCode\":409"), "unexpected answer: {}", a.body);
                sold_out.push(a.elapsed.as_secs_f64() * 1e3);
            }
            for i in block * 100..(block + 1) * 100 {
                let started = Instant::now();
                let reply = admit(&open, format!("bare-{i}")).await;
                self.sqs.send_message().queue_url(&self.queue_url).message_body(&body).send().await.unwrap();
                bare.push(started.elapsed().as_secs_f64() * 1e3);
                expect(reply, true);
                let started = Instant::now();
                let reply = admit(&full, format!("bare-late-{i}")).await;
                bare_redis.push(started.elapsed().as_secs_f64() * 1e3);
                expect(reply, false);
            }
        }
        let cpu_per_request = cpu / accept.len() as f64;
        drop(child);
        let (p50, p99) = (percentile(&mut accept, 50.0), percentile(&mut accept, 99.0));
        let (b50, b99) = (percentile(&mut bare, 50.0), percentile(&mut bare, 99.0));
        self.accept = Some((p50, p99, b50, b99));
        report.add(Figure {
            name: "accept path p50 (handler, through the harness)".into(),
            value: p50,
            unit: "ms",
            limit: Some(b50),
            limit_name: "bare admission call (the gate's adapter) + SendMessage p50".into(),
            target: "<= 1.3x the bare round trips".into(),
            met: Some(p50 <= 1.3 * b50),
        });
        report.add(Figure {
            name: "accept path p99".into(),
            value: p99,
            unit: "ms",
            limit: Some(b99),
            limit_name: "bare admission call (the gate's adapter) + SendMessage p99".into(),
            target: "reported".into(),
            met: None,
        });
        let s50 = percentile(&mut sold_out, 50.0);
        let r50 = percentile(&mut bare_redis, 50.0);
        report.add(Figure {
            name: "sold-out path p50 (Redis only)".into(),
            value: s50,
            unit: "ms",
            limit: Some(r50),
            limit_name: "one bare admission call (the gate's adapter) p50".into(),
            target: "reported".into(),
            met: None,
        });
        report.add(Figure {
            name: "CPU time per accepted entry".into(),
            value: cpu_per_request,
            unit: "ms",
            limit: Some(p50),
            limit_name: "accept path p50 (wall)".into(),
            target: "reported".into(),
            met: None,
        });
    }

    pub fn concurrency(&self, report: &mut Report) {
        let Some((_, p99, _, b99)) = self.accept else { return };
        // fanrush's own time (handler p99 less the local round trips) plus the
        // in-region round trips it cannot avoid.
        let own = (p99 - b99).max(0.0);
        let in_region_ms = own + ELASTICACHE_P99_MS * 2.0 + SQS_SEND_P99_MS;
        let sized = |ms: f64| {
            let params = fanrush::rules::scaling::ScalingParams {
                duration: Duration::from_secs_f64(ms / 1e3),
                ..Default::default()
            };
            params.sizing(10_000.0)
        };
        let (needed, bound) = sized(in_region_ms);
        let (seed, _) = sized(SEED_P99_MS);
        // Below 100 ms Lambda's 10 requests per second per environment binds,
        // not the duration: a faster handler cannot need fewer than rps / 10.
        report.add(Figure {
            name: format!(
                "provisioned concurrency per 10,000 rps (p99 {in_region_ms:.1} ms in-region, 1.2 headroom; bound by {})",
                bound.as_str()
            ),
            value: needed as f64,
            unit: "envs",
            limit: Some(seed as f64),
            limit_name: "the Weverse talk's Node.js stack, same formula: 10,000 rps x 150 ms x 1.2".into(),
            target: "below the talk's; at least rps / 10 x headroom".into(),
            met: Some(needed < seed),
        });
    }
}
