//! Playing the drill's faults ([`crate::scenarios::Fault`]) on its stack.
//! Every fault is injected from outside the code under test: through the drill's fault proxies
//! (between the functions and Redis, SQS and PostgreSQL), by commands to the
//! drill's private Redis, by restarting its private PostgreSQL, by
//! killing a writer process, through the secrets extensions' stand-ins, or
//! as an operator would (admin-api, a database trigger, `fanrush redrive`).

use crate::options::Options;
use crate::scenarios::Fault;
use crate::stack::{DrillEvent, Stack, PREFIX};
use fanrush_local::services::PrivateRedis;
use fanrush_local::{local_aws, Fault as ProxyFault, FaultProxy, GatewayEvent};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How slow a slow SQS path is, each way: a send still answers inside the
/// entry function's 1 s SQS attempt timeout.
const SLOW_PATH: Duration = Duration::from_millis(200);

/// Plays one fault against the scenario's events (most against the first).
/// An error is a problem of the scenario (the fault could not be played, or
/// what it checks on the way did not hold).
pub async fn play(stack: &Stack, fault: Fault, events: &[DrillEvent], o: &Options) -> Result<String, String> {
    let event = events.first().map(|e| e.id.as_str()).ok_or("the scenario has no event")?;
    let outcome = match fault {
        Fault::RedisClientsKilled => {
            stack.redis.lock().await.kill_clients().await.map(|n| format!("Redis: {n} client connections killed"))
        }
        Fault::RedisRestart => stack
            .redis
            .lock()
            .await
            .restart_with_data()
            .await
            .map(|d| format!("Redis restarted with its data (down {:.2} s)", d.as_secs_f64())),
        Fault::RedisFlush => {
            stack.redis.lock().await.flush().await.map(|_| "Redis lost its data (FLUSHALL)".to_owned())
        }
        Fault::SqsUnreachable(d) => {
            stack.proxies.set_sqs(ProxyFault::Refuse);
            tokio::time::sleep(d).await;
            stack.proxies.set_sqs(ProxyFault::None);
            Ok(format!("SQS unreachable for {:.1} s", d.as_secs_f64()))
        }
        Fault::SqsAnswersLost(d) => {
            stack.proxies.set_sqs(ProxyFault::DropResponses);
            tokio::time::sleep(d).await;
            stack.proxies.set_sqs(ProxyFault::None);
            Ok(format!("SQS answers lost for {:.1} s (requests arrived)", d.as_secs_f64()))
        }
        Fault::PostgresRestart => {
            // Slow the database for a second first, so a backlog builds
            // and the restart lands while the writers are draining it.
            stack.proxies.postgres.set(ProxyFault::Delay(Duration::from_millis(100)));
            tokio::time::sleep(Duration::from_secs(1)).await;
            let backlog = stack.queue_depth(&stack.queue_url).await.unwrap_or(-1);
            let busy = stack.writers.iter().filter(|w| w.busy()).count();
            let mut pg = stack.postgres.lock().await;
            let restarted = match pg.as_mut() {
                Some(pg) => pg.restart().await.map(|d| {
                    format!(
                        "PostgreSQL restarted with {backlog} entries queued and {busy} writer batches in flight (down {:.2} s)",
                        d.as_secs_f64()
                    )
                }),
                None => Err("PostgreSQL is gone".into()),
            };
            stack.proxies.postgres.set(ProxyFault::None);
            restarted
        }
        Fault::WriterKilled => Ok(kill_a_writer(stack).await),
        Fault::RedisFailover(lag) => failover(stack, lag).await,
        Fault::ClusterFailover(lag) => cluster_failover(stack, events, lag).await,
        Fault::ClusterReshard => cluster_reshard(stack, &events[0]).await,
        Fault::RedisStaleSnapshot(lag) => {
            let snapshot = stack.root.join("stale.rdb");
            let redis = stack.redis.lock().await;
            match redis.snapshot(&snapshot).await {
                Ok(()) => {
                    drop(redis);
                    tokio::time::sleep(lag).await;
                    let mut redis = stack.redis.lock().await;
                    redis.restart_from_snapshot(&snapshot).await.map(|d| {
                        format!(
                            "Redis restarted from a snapshot {:.1} s old (down {:.2} s)",
                            lag.as_secs_f64(),
                            d.as_secs_f64()
                        )
                    })
                }
                Err(e) => Err(e),
            }
        }
        Fault::SqsSplit(d) => {
            for (i, path) in stack.proxies.sqs_paths.iter().enumerate() {
                path.set(if i % 2 == 0 { ProxyFault::Delay(SLOW_PATH) } else { ProxyFault::Refuse });
            }
            tokio::time::sleep(d).await;
            stack.proxies.set_sqs(ProxyFault::None);
            Ok(format!(
                "SQS split for {:.1} s: even environments' paths slow ({} ms each way), odd ones refused",
                d.as_secs_f64(),
                SLOW_PATH.as_millis()
            ))
        }
        Fault::EventDeletedThenRecreated => delete_and_recreate(stack, event, o.capacity).await,
        Fault::PoisonThenRedrive => poison_then_redrive(stack, event, o).await,
        Fault::TicketKeyRotated(behind) => {
            stack.ticket_keys.rotate();
            tokio::time::sleep(behind).await;
            stack.ticket_keys.catch_up();
            Ok(format!(
                "ticket key rotated: half the extensions served the old key from their cache for {:.1} s",
                behind.as_secs_f64()
            ))
        }
        Fault::SecretsExtensionDown(d) => {
            stack.ticket_keys.set_down(true);
            tokio::time::sleep(d).await;
            stack.ticket_keys.set_down(false);
            Ok(format!("secrets extension down (500) for {:.1} s", d.as_secs_f64()))
        }
        Fault::SqsUnknownThenRefused(d) => {
            stack.proxies.set_sqs(ProxyFault::DropResponses);
            tokio::time::sleep(d).await;
            stack.proxies.set_sqs(ProxyFault::Refuse);
            tokio::time::sleep(d).await;
            stack.proxies.set_sqs(ProxyFault::None);
            Ok(format!("SQS answers lost for {0:.1} s, then SQS refused for {0:.1} s", d.as_secs_f64()))
        }
    };
    outcome.map_err(|e| format!("{fault:?} failed: {e}"))
}

/// One shard's failover on the cluster, as ElastiCache plays it with
/// asynchronous replication ([`fanrush_local::cluster::PrivateRedisCluster::fail_over_lagging`]):
/// the shard of the second event, or of the next one whose primary is not
/// the node the functions' configuration endpoint names (a client that
/// reconnects starts there, as it would from ElastiCache's endpoint, which
/// never names a dead node).
async fn cluster_failover(stack: &Stack, events: &[DrillEvent], lag: Duration) -> Result<String, String> {
    let cluster = stack.cluster.as_ref().ok_or("not a cluster stack")?;
    let mut cluster = cluster.lock().await;
    let shards = cluster.shards().await?;
    for e in events.iter().skip(1) {
        let slot = cluster.slot(&format!("{{{}}}", e.tag)).await?;
        let Some(shard) = shards.iter().find(|s| s.serves(slot)) else { continue };
        if shard.primary == cluster.url_port() {
            continue;
        }
        stack.failed_over.lock().unwrap().push(e.id.clone());
        let replica = cluster.fail_over_lagging(shard.primary, lag).await?;
        return Ok(format!(
            "shard of {} failed over: replication cut {:.1} s before its primary (port {}) died; replica {replica} took over",
            e.id,
            lag.as_secs_f64(),
            shard.primary
        ));
    }
    Err("no event's shard could be failed over".into())
}

/// The slot of `event` moves to the next shard mid-spike, keys and all,
/// as an online resharding moves it. Its state arrives on a server with
/// another `run_id`, so the fence refuses it until the restore.
async fn cluster_reshard(stack: &Stack, event: &DrillEvent) -> Result<String, String> {
    let cluster = stack.cluster.as_ref().ok_or("not a cluster stack")?;
    let cluster = cluster.lock().await;
    let slot = cluster.slot(&format!("{{{}}}", event.tag)).await?;
    let shards = cluster.shards().await?;
    let from = shards.iter().position(|s| s.serves(slot)).ok_or("no shard serves the event's slot")?;
    let to = shards[(from + 1) % shards.len()].primary;
    let started = Instant::now();
    let moved = cluster.migrate_slot(slot, to).await?;
    stack.failed_over.lock().unwrap().push(event.id.clone());
    Ok(format!(
        "slot {slot} of {} ({moved} keys) migrated from port {} to {to} in {:.2} s",
        event.id,
        shards[from].primary,
        started.elapsed().as_secs_f64()
    ))
}

/// A failover as ElastiCache plays it with asynchronous replication: a
/// replica of the drill's Redis (through a link proxy) stops receiving
/// writes for `lag` while the primary keeps acknowledging them; then the
/// primary dies, the replica is promoted, the endpoint (the functions'
/// proxy) moves to it and every client connection is cut. The replica
/// then stands in as the drill's Redis.
async fn failover(stack: &Stack, lag: Duration) -> Result<String, String> {
    let redis = stack.redis.lock().await;
    let dir = stack.root.join(format!("replica-{}", Instant::now().duration_since(stack.started).as_millis()));
    let replica = PrivateRedis::start(dir).await?;
    let link = FaultProxy::start(redis.addr()).await.map_err(|e| e.to_string())?;
    replica.replicate_from(link.addr()).await?;
    link.set(ProxyFault::Blackhole);
    link.reset_all();
    drop(redis);
    tokio::time::sleep(lag).await;
    let mut redis = stack.redis.lock().await;
    redis.kill().await;
    replica.promote().await?;
    stack.proxies.redis.set_upstream(replica.addr());
    stack.proxies.redis.reset_all();
    *redis = replica;
    Ok(format!("Redis failover: replication cut {:.1} s before the primary died; replica promoted", lag.as_secs_f64()))
}

/// Slows PostgreSQL's answers so a batch is surely in flight, then
/// SIGKILLs the writer holding it.
async fn kill_a_writer(stack: &Stack) -> String {
    stack.proxies.postgres.set(ProxyFault::Delay(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut victim = None;
    while Instant::now() < deadline && victim.is_none() {
        victim = stack.writers.iter().find(|w| w.busy());
        if victim.is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if victim.is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mid_batch = victim.unwrap_or(&stack.writers[0]).kill_and_replace().await;
    stack.proxies.postgres.set(ProxyFault::None);
    if mid_batch {
        "writer SIGKILLed mid-batch".to_owned()
    } else {
        "writer SIGKILLed while idle (no batch in flight within 5 s)".to_owned()
    }
}

/// DELETE through admin-api, then a PUT of the same definition: the id
/// is retired, so the PUT must be refused and the entries stay theirs.
async fn delete_and_recreate(stack: &Stack, event: &str, capacity: i64) -> Result<String, String> {
    let (status, body) = admin(stack, "DELETE", event, None).await?;
    if status != 204 {
        return Err(format!("DELETE answered {status} {body}"));
    }
    let definition = Stack::event(event, capacity)?.to_json();
    let (status, body) = admin(stack, "PUT", event, Some(definition)).await?;
    if status != 409 || body["error"] != "event_id_retired" {
        return Err(format!("the PUT of the deleted id answered {status} {body}; it must be 409 event_id_retired"));
    }
    Ok("event deleted through admin-api; the PUT of its id again answered 409 event_id_retired".into())
}

/// One admin-api call as API Gateway sends it, IAM-signed by an operator.
async fn admin(stack: &Stack, method: &str, event: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    let mut request = GatewayEvent::new(method, &format!("/admin/events/{event}"))
        .from_api("drill")
        .route(&format!("{method} /admin/events/{{eventId}}"), &[("eventId", event)])
        .request_id("drill-admin")
        .header("content-type", "application/json")
        .header("host", "drill.local")
        .operator("arn:aws:iam::000000000000:user/drill-operator");
    if let Some(body) = body {
        request = request.body(body.to_string().as_bytes());
    }
    let request = request.to_json();
    let answer =
        stack.admin.invoke(&request, Duration::from_secs(30)).await.map_err(|e| format!("admin-api: {e:?}"))?;
    let response: Value = serde_json::from_str(&answer.body).map_err(|e| format!("admin-api answered {e}"))?;
    let status = response["statusCode"].as_u64().unwrap_or(0) as u16;
    let body = response["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Ok((status, body))
}

/// PostgreSQL refuses one fan in ten of `event` until SQS dead-letters
/// their entries; while they sit in the DLQ the sweep runs and Redis
/// loses its data, and the restored gate must count them as taken. Then
/// the cause is fixed and `fanrush redrive` replays them (twice: the
/// second run finds nothing).
async fn poison_then_redrive(stack: &Stack, event: &str, o: &Options) -> Result<String, String> {
    let pg = postgres_client(stack).await?;
    pg.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION drill_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.event_id = '{event}' AND NEW.fan_id LIKE '%7' THEN
             RAISE EXCEPTION 'drill: this fan''s entry is refused until the cause is fixed';
           END IF;
           RETURN NEW;
         END $$;
         DROP TRIGGER IF EXISTS drill_poison ON entries;
         CREATE TRIGGER drill_poison BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION drill_poison();"
    ))
    .await
    .map_err(|e| format!("installing the trigger: {e}"))?;
    let fixed = async {
        pg.batch_execute("DROP TRIGGER IF EXISTS drill_poison ON entries")
            .await
            .map_err(|e| format!("dropping the trigger: {e}"))
    };

    // Every poisoned entry is received maxReceiveCount times, then moved.
    tokio::time::sleep(o.shape().duration).await;
    let started = Instant::now();
    let dead = match wait_dead_lettered(stack, Duration::from_secs(180)).await {
        Ok(n) => n,
        Err(e) => {
            fixed.await?;
            return Err(e);
        }
    };
    let waited = started.elapsed();
    // The sweep runs every tick; give it a few with the entries in the DLQ.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let restore = match dead_lettered_fans(stack, event).await {
        Ok(fans) => flush_and_check_restore(stack, event, fans).await,
        Err(e) => Err(e),
    };
    fixed.await?;
    restore?;
    let first = redrive(stack).await?;
    let second = redrive(stack).await?;
    if first["moved"] != dead || second["moved"] != 0 {
        return Err(format!("redrive moved {} then {}; {dead} were dead-lettered", first["moved"], second["moved"]));
    }
    Ok(format!(
        "PostgreSQL refused one fan in ten: {dead} entries dead-lettered ({:.0} s after the arrivals), \
         Redis flushed meanwhile and restored counting them as taken; cause fixed, `fanrush redrive` moved {dead}, \
         then 0",
        waited.as_secs_f64()
    ))
}

async fn postgres_client(stack: &Stack) -> Result<tokio_postgres::Client, String> {
    let url = stack.postgres.lock().await.as_ref().map(|pg| pg.url()).ok_or("PostgreSQL is gone")?;
    let (client, connection) =
        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.map_err(|e| format!("PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Waits until the queue is empty and the DLQ holds the same non-zero
/// number of messages twice in a row; returns that number.
async fn wait_dead_lettered(stack: &Stack, limit: Duration) -> Result<i64, String> {
    let started = Instant::now();
    let mut last = -1;
    while started.elapsed() < limit {
        let queued = stack.queue_depth(&stack.queue_url).await?;
        let dead = stack.queue_depth(&stack.dlq_url).await?;
        if queued == 0 && dead > 0 && dead == last {
            return Ok(dead);
        }
        last = if queued == 0 { dead } else { -1 };
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("the poisoned entries were not all dead-lettered within {limit:?}"))
}

/// How many of the event's fans the DLQ holds an entry of: fewer than its
/// messages when a fan's send was taken over by its retry (two messages
/// for one entry). Read as the restore reads it, retried while another
/// reader (the scheduler's sweep) has the messages out of sight.
async fn dead_lettered_fans(stack: &Stack, event: &str) -> Result<i64, String> {
    use fanrush::adapters::sqs_queue::{EntryQueue, SendPolicy};
    let policy = SendPolicy { attempts: 1, backoff: Duration::ZERO };
    let dlq = EntryQueue::new(stack.sqs.clone(), stack.queue_url.clone(), policy).dead_letters(stack.dlq_url.clone());
    let mut last = String::new();
    for _ in 0..20 {
        match dlq.peek().await {
            Ok(dead) => return Ok(dead.entries.iter().filter(|e| e.event_id.as_str() == event).count() as i64),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("the DLQ could not be read: {last}"))
}

/// Flushes Redis, waits for the scheduler's restore, and checks the
/// rebuilt gate counts each dead-lettered fan's entry as taken, once.
async fn flush_and_check_restore(stack: &Stack, event: &str, dead: i64) -> Result<(), String> {
    stack.redis.lock().await.flush().await?;
    let id = fanrush::rules::domain::EventId::parse(event).map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let taken =
            match stack.redis.lock().await.command(&["HGET", &format!("{PREFIX}:ev:{{{event}}}"), "taken"]).await {
                Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).parse::<i64>().unwrap_or(-1),
                _ => continue,
            };
        let rows = stack.db.entries(&id).await.map_err(|e| e.to_string())?.len() as i64;
        if taken != rows + dead {
            return Err(format!("the restored gate counts {taken} taken; {rows} rows + {dead} dead-lettered fans"));
        }
        return Ok(());
    }
    Err("the gate was not restored within 60 s of the flush".into())
}

/// `fanrush redrive`, as an operator runs it; its JSON summary.
async fn redrive(stack: &Stack) -> Result<Value, String> {
    let out = tokio::process::Command::new(stack.bin_dir.join("fanrush"))
        .args(["redrive", "--queue-url", &stack.queue_url, "--dlq-url", &stack.dlq_url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(local_aws::function_env(&crate::stack::endpoint()))
        .output()
        .await
        .map_err(|e| format!("fanrush redrive: {e}"))?;
    if !out.status.success() {
        return Err(format!("fanrush redrive failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("fanrush redrive printed {e}"))
}
