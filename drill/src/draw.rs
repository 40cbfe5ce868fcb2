//! After an opening at a line: its pre-queue draw checked as an auditor
//! would, with `fanrush verify-draw` on what the APIs published during the
//! run (the commitment read before anyone joined, the digest the event
//! shows since its draw was sealed, the reveal page by page, the receipt
//! keys, one pre-queued fan's receipt from `GET /entries/me`). It must
//! pass, and it must fail on a copy of the reveal with two fans swapped.

use crate::spike::parse;
use crate::stack::Stack;
use fanrush_local::GatewayEvent;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the drill waits for the scheduler to reveal the draw (it does
/// so a few seconds after the opening: `DRAW_REVEAL_AFTER_SECONDS`).
const REVEAL_WAIT: Duration = Duration::from_secs(60);

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawCheck {
    /// Fans in the revealed draw.
    pub prequeued: usize,
    /// The checked fan's index in it.
    pub fan_index: Option<u64>,
}

/// The commitment the event shows now (read before anyone joins).
pub async fn commitment(stack: &Stack, event: &str) -> Result<String, String> {
    let view = get(stack, &format!("/events/{event}"), "GET /events/{eventId}", event, None, false).await?;
    view["drawCommitment"].as_str().map(str::to_owned).ok_or_else(|| format!("no draw commitment in {view}"))
}

/// Checks the event's draw with `fanrush verify-draw`, as `fan` (a
/// pre-queued fan that was admitted).
pub async fn check(stack: &Stack, event: &str, committed: &str, fan: &str, dir: &Path) -> Result<DrawCheck, String> {
    let reveal = reveal(stack, event).await?;
    let view = get(stack, &format!("/events/{event}"), "GET /events/{eventId}", event, None, false).await?;
    let sealed = view["drawDigest"].as_str().ok_or_else(|| format!("no sealed draw digest in {view}"))?.to_owned();
    let keys = get(stack, "/receipt-keys", "GET /receipt-keys", event, None, false).await?;
    let mine =
        get(stack, &format!("/events/{event}/entries/me"), "GET /events/{eventId}/entries/me", event, Some(fan), false)
            .await?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let write = |name: &str, value: &Value| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let (reveal_file, keys_file) = (write("reveal.json", &reveal)?, write("keys.json", &keys)?);
    let receipt_file = write("receipt.json", &mine["receipt"])?;
    let verify = |reveal: &Path| {
        let mut command = std::process::Command::new(stack.bin_dir.join("fanrush"));
        command.args(["verify-draw", "--event", event, "--commitment", committed, "--digest", &sealed, "--fan", fan]);
        command.arg("--reveal").arg(reveal).arg("--keys").arg(&keys_file).arg("--receipt").arg(&receipt_file);
        command.output().map_err(|e| format!("could not run fanrush verify-draw: {e}"))
    };
    let honest = verify(&reveal_file)?;
    if !honest.status.success() {
        return Err(format!(
            "fanrush verify-draw failed on the run's draw: {}",
            String::from_utf8_lossy(&honest.stderr)
        ));
    }
    let report: Value = serde_json::from_slice(&honest.stdout).map_err(|e| format!("verify-draw's report: {e}"))?;
    let mut swapped = reveal.clone();
    let fans = swapped["fans"].as_array_mut().ok_or("the reveal has no fans")?;
    if fans.len() >= 2 {
        let (a, b) = (fans[0]["fan"].clone(), fans[1]["fan"].clone());
        (fans[0]["fan"], fans[1]["fan"]) = (b, a);
        let tampered = verify(&write("reveal-swapped.json", &swapped)?)?;
        if tampered.status.success() {
            return Err("fanrush verify-draw passed a reveal with two fans swapped".into());
        }
    }
    Ok(DrawCheck {
        prequeued: reveal["fans"].as_array().map_or(0, Vec::len),
        fan_index: report["receipt"]["drawIndex"].as_u64(),
    })
}

/// The whole reveal, page by page, once the scheduler published it.
async fn reveal(stack: &Stack, event: &str) -> Result<Value, String> {
    let waited = Instant::now();
    let mut fans = Vec::new();
    let mut first: Option<Value> = None;
    let mut from = 0;
    loop {
        let page = get(stack, &format!("/draws/{event}?from={from}"), "GET /draws/{eventId}", event, None, true).await;
        let page = match page {
            Ok(p) => p,
            Err(e) if e.contains("draw_not_revealed") && waited.elapsed() < REVEAL_WAIT => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        fans.extend(page["fans"].as_array().cloned().unwrap_or_default());
        let next = page["next"].as_u64();
        first.get_or_insert(page);
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    let first = first.expect("a page");
    Ok(json!({ "eventId": event, "commitment": first["commitment"], "seed": first["seed"], "digest": first["digest"],
               "fans": fans }))
}

/// One GET through entry-api (or admin-api), as API Gateway sends it.
async fn get(
    stack: &Stack,
    path: &str,
    route: &str,
    event: &str,
    fan: Option<&str>,
    admin: bool,
) -> Result<Value, String> {
    let mut request = GatewayEvent::new("GET", path).from_api("drill").route(route, &[("eventId", event)]);
    if let Some(fan) = fan {
        request = request.fan(fan);
    }
    let request = request.to_json();
    let answer = if admin {
        stack.admin.invoke(&request, Duration::from_secs(10)).await
    } else {
        stack.entry.invoke(&request, Duration::from_secs(10)).await
    };
    let answer = answer.map_err(|e| format!("{route}: no answer: {e:?}"))?;
    let (status, _, body) = parse(&answer.body);
    if status != 200 {
        return Err(format!("{route}: {status} {body}"));
    }
    Ok(body)
}
