//! The writer's rows per second from SQS batches, against a raw multi-row
//! INSERT.

use super::*;

impl Workloads {
    pub async fn writer(&self, report: &mut Report) {
        let rows = self.runs(60_000, 6_000);
        let url = var("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        for batch in [10usize, 100] {
            let schema = format!("bench_{}_{batch}", std::process::id());
            let db = Database::new(&url, Some(schema.clone()), Duration::from_secs(3)).unwrap();
            db.migrate().await.unwrap();
            let writer = EntryWriter::new(db);
            let raw = RawInsert::new(&url, &schema, batch).await;
            let mut events = (0..rows / batch).map(|b| sqs_batch("w", b * batch, batch));
            // Interleaved in slices of 10 batches, so both see the same server
            // and disk conditions (commit latency varies a lot on this machine).
            let (mut writer_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
            for slice in 0..rows / batch / 10 {
                let slice_events: Vec<SqsEvent> = events.by_ref().take(10).collect();
                let started = Instant::now();
                for e in slice_events {
                    let r = writer.handle(e).await.unwrap();
                    assert!(r.batch_item_failures.is_empty());
                }
                writer_time += started.elapsed();
                let started = Instant::now();
                for b in slice * 10..(slice + 1) * 10 {
                    raw.insert(b * batch).await;
                }
                raw_time += started.elapsed();
            }
            let (w, r) = (rows as f64 / writer_time.as_secs_f64(), rows as f64 / raw_time.as_secs_f64());
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
            report.add(Figure {
                name: format!("writer rows/s, SQS batches of {batch}"),
                value: w,
                unit: "rows/s",
                limit: Some(r),
                limit_name: format!("raw multi-row INSERT of {batch} rows, one connection"),
                target: ">= 0.8x raw".into(),
                met: Some(w >= 0.8 * r),
            });
        }
    }
}

fn sqs_batch(event: &str, first: usize, n: usize) -> SqsEvent {
    let records: Vec<serde_json::Value> = (first..first + n)
        .map(|i| {
            let entry = Entry {
                event_id: EventId::parse(event).unwrap(),
                fan_id: FanId::parse(&format!("fan-{i}")).unwrap(),
                position: i as i64 + 1,
                note: None,
                accepted_at: Utc::now(),
            };
            json!({ "messageId": format!("m-{i}"), "receiptHandle": "r", "body": EntryMessage::new(&entry).to_body(),
                    "eventSource": "aws:sqs", "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {} })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// A plain multi-row INSERT of the same rows over one connection: the
/// writer's limit.
struct RawInsert {
    client: tokio_postgres::Client,
    statement: tokio_postgres::Statement,
    batch: usize,
}

impl RawInsert {
    async fn new(url: &str, schema: &str, batch: usize) -> Self {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE TABLE {schema}.raw (LIKE {schema}.entries INCLUDING ALL)"))
            .await
            .unwrap();
        let values: Vec<String> = (0..batch)
            .map(|i| format!("(${}, ${}, ${}, ${}, ${})", 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4, 5 * i + 5))
            .collect();
        let sql = format!(
            "INSERT INTO {schema}.raw (event_id, fan_id, position, note, accepted_at) VALUES {}",
            values.join(", ")
        );
        let statement = client.prepare(&sql).await.unwrap();
        Self { client, statement, batch }
    }

    async fn insert(&self, first: usize) {
        let now = Utc::now();
        let fans: Vec<String> = (first..first + self.batch).map(|i| format!("fan-{i}")).collect();
        let positions: Vec<i64> = (first..first + self.batch).map(|i| i as i64 + 1).collect();
        let note: Option<String> = None;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(self.batch * 5);
        for i in 0..self.batch {
            params.extend([&"w" as &(dyn tokio_postgres::types::ToSql + Sync), &fans[i], &positions[i], &note, &now]);
        }
        self.client.execute(&self.statement, &params).await.unwrap();
    }
}
