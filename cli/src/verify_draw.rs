//! `fanrush verify-draw`: checks an event's pre-queue draw from outside,
//! with nothing but what fanrush published (docs/line.md, "Checking the
//! draw"): the commitment matches the revealed seed, the fans listed hash
//! to the digest the draw was sealed with before the opening, the whole
//! order is recomputed from the seed, the digest and the published fans,
//! and a fan's place or receipt is checked against it.
//!
//! Everything can come from the API (`--api`) or from files saved earlier
//! (`--reveal`, `--keys`, `--commitment`), so a check still runs after the
//! event's records are gone, or against a copy someone else kept. It stops
//! at the first discrepancy, names it, and exits 1.

use fanrush::adapters::https::HttpsClient;
use fanrush::rules::line::draw::{fan_ref, hex, Reveal, RevealRow};
use fanrush::rules::line::receipt::{PublishedKey, Receipt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct VerifyDrawArgs {
    /// The event whose draw to check.
    #[arg(long)]
    event: String,
    /// The fan API's base URL (GET /events/{id}, /draws/{id}, /receipt-keys).
    #[arg(long)]
    api: Option<String>,
    /// The commitment the event published before its pre-queue (64 hex
    /// digits), as noted then; else the one the API shows now.
    #[arg(long)]
    commitment: Option<String>,
    /// The digest the event showed once its draw was sealed, before the
    /// opening (40 hex digits), as noted then; else the one the API shows
    /// now, if any.
    #[arg(long)]
    digest: Option<String>,
    /// A reveal saved earlier (JSON: eventId, commitment, seed, digest, fans), instead of the API's.
    #[arg(long)]
    reveal: Option<PathBuf>,
    /// Writes the reveal read from the API to this file, for a later check.
    #[arg(long)]
    save_reveal: Option<PathBuf>,
    /// Receipt keys saved earlier (JSON: {"keys": [...]}), instead of the API's.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// A fan id: prints its index in the draw, and checks that a receipt given is its own.
    #[arg(long)]
    fan: Option<String>,
    /// A receipt (the JSON object a fan's answer carries): checks its
    /// signature and its place in the draw.
    #[arg(long)]
    receipt: Option<PathBuf>,
}

/// A page of `GET /draws/{eventId}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrawPage {
    event_id: String,
    commitment: String,
    seed: String,
    digest: String,
    fans: Vec<RevealRow>,
    next: Option<u64>,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<PublishedKey>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(a: VerifyDrawArgs) -> Result<(), String> {
    let http = HttpsClient::new();
    let api = a.api.as_deref().map(|u| u.trim_end_matches('/').to_owned());
    let get = |path: String| {
        let (http, api) = (&http, api.clone());
        async move {
            let Some(api) = api else { return Err(format!("{path}: give --api, or the file")) };
            let text = http.get_text(&format!("{api}{path}"), TIMEOUT).await.map_err(|e| format!("GET {path}: {e}"))?;
            serde_json::from_str::<Value>(&text).map_err(|e| format!("GET {path}: not JSON: {e}"))
        }
    };
    let view = match (&a.commitment, &a.digest, &a.api) {
        (Some(_), Some(_), _) | (_, _, None) => Value::Null,
        _ => get(format!("/events/{}", a.event)).await?,
    };
    let committed = match &a.commitment {
        Some(c) => c.clone(),
        None => view["drawCommitment"]
            .as_str()
            .ok_or_else(|| format!("event {} shows no draw commitment (no pre-queue?)", a.event))?
            .to_owned(),
    };
    let sealed = a.digest.clone().or_else(|| view["drawDigest"].as_str().map(str::to_owned));
    let reveal: Reveal = match &a.reveal {
        Some(path) => read_json(path)?,
        None => {
            let mut pages: Vec<DrawPage> = Vec::new();
            let mut from = 0;
            loop {
                let page: DrawPage = serde_json::from_value(get(format!("/draws/{}?from={from}", a.event)).await?)
                    .map_err(|e| format!("a page of the draw is malformed: {e}"))?;
                let next = page.next;
                pages.push(page);
                match next {
                    Some(n) if n > from => from = n,
                    Some(_) => return Err("the draw's pages do not move on".into()),
                    None => break,
                }
            }
            let first = &pages[0];
            let (event_id, commitment, seed) = (first.event_id.clone(), first.commitment.clone(), first.seed.clone());
            let digest = first.digest.clone();
            if pages.iter().any(|p| p.seed != seed || p.commitment != commitment || p.digest != digest) {
                return Err("the draw's pages disagree on the seed, the commitment or the digest".into());
            }
            let fans = pages.into_iter().flat_map(|p| p.fans).collect();
            Reveal { event_id, commitment, seed, digest, fans }
        }
    };
    if let Some(path) = &a.save_reveal {
        let text = serde_json::to_string(&reveal).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    reveal.check(&a.event, &committed, sealed.as_deref()).map_err(|d| format!("the draw does not check: {d}"))?;
    let mut report = json!({
        "event": a.event,
        "commitment": committed,
        "digest": reveal.digest,
        "digestAsSealed": if sealed.is_some() { "matches" } else { "not given: checked against the fans listed only" },
        "prequeued": reveal.fans.len(),
        "order": "recomputed from the seed and the digest: it matches",
    });
    let seed = reveal.seed.as_bytes();
    let own = a.fan.as_deref().map(|f| hex(&fan_ref(seed, &a.event, f)));
    if let Some(fan) = &own {
        report["fan"] = match reveal.fans.iter().find(|r| &r.fan == fan) {
            Some(row) => json!({ "reference": fan, "index": row.index, "of": reveal.fans.len() }),
            None => json!({ "reference": fan, "index": null, "note": "not in the draw: joined after it closed" }),
        };
    }
    if let Some(path) = &a.receipt {
        let receipt: Receipt = read_json(path)?;
        let keys: KeySet = match &a.keys {
            Some(path) => read_json(path)?,
            None => serde_json::from_value(get("/receipt-keys".into()).await?).map_err(|e| e.to_string())?,
        };
        receipt.verify(&keys.keys).map_err(|e| format!("the receipt does not check: {e}"))?;
        let c = &receipt.claims;
        if c.event_id != a.event {
            return Err(format!("the receipt is for event {}, not {}", c.event_id, a.event));
        }
        if let Some(fan) = &own {
            if &c.fan != fan {
                return Err(format!("the receipt is for fan reference {}, not this fan's {fan}", c.fan));
            }
        }
        let row = c.draw_key.as_ref().and_then(|k| reveal.fans.iter().find(|r| &r.key == k));
        if let Some(row) = row {
            if row.fan != c.fan {
                return Err(format!("the receipt's draw key is fan {}'s in the draw, not {}'s", row.fan, c.fan));
            }
        }
        // A fan in the draw holds its key there, whatever its receipt says.
        if let Some(drawn) = reveal.fans.iter().find(|r| r.fan == c.fan) {
            if c.draw_key.as_deref().is_some_and(|k| k != drawn.key) {
                return Err(format!("the receipt's draw key is not fan {}'s key in the draw, {}", c.fan, drawn.key));
            }
        }
        report["receipt"] = json!({
            "keyId": receipt.key_id,
            "signature": "valid",
            "position": c.position,
            "drawIndex": row.map(|r| r.index),
        });
    }
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
