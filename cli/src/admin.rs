//! `fanrush events` and `fanrush entries`: the admin API from an operator's
//! shell, signed with SigV4 from the standard AWS chain (`--unsigned` for a
//! local dev-mode API). `events` defines, reads, lists and deletes events;
//! `entries` follows the pages of an event's entries to the last and writes
//! them to stdout as they come, so a million entries take flat memory.

use fanrush::adapters::admin_client::AdminClient;
use fanrush::rules::domain::EventId;
use std::io::Write;
use std::path::PathBuf;

/// Where the admin API is and how to call it.
#[derive(clap::Args)]
pub struct Api {
    /// The API's base URL: the stack's `FanApiUrl` output, or
    /// http://127.0.0.1:8080 for `make run`.
    #[arg(long, value_name = "URL")]
    api: String,
    /// Send the calls unsigned (a local API in dev mode takes them; a
    /// deployed one refuses them with 403).
    #[arg(long)]
    unsigned: bool,
}

impl Api {
    async fn client(&self) -> Result<AdminClient, String> {
        AdminClient::new(&self.api, !self.unsigned).await.map_err(|e| e.to_string())
    }
}

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    action: EventsAction,
}

#[derive(clap::Subcommand)]
enum EventsAction {
    /// Every event of the calendar (JSON).
    List(Api),
    /// One event with its counts (JSON).
    Get {
        #[command(flatten)]
        api: Api,
        #[arg(long)]
        event: String,
    },
    /// Defines or updates an event from a JSON file ("-" for stdin), as
    /// `PUT /admin/events/{eventId}` takes it.
    Put {
        #[command(flatten)]
        api: Api,
        #[arg(long)]
        event: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Deletes an event (its entries stay; its id is retired).
    Delete {
        #[command(flatten)]
        api: Api,
        #[arg(long)]
        event: String,
    },
}

#[derive(clap::Args)]
pub struct EntriesArgs {
    #[command(flatten)]
    api: Api,
    #[arg(long)]
    event: String,
    /// `jsonl` (one JSON object a line) or `csv`.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    format: String,
    /// Entries per page (1 to 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    page_size: i64,
}

/// An event id as the API takes it, refused here with the API's own rule.
fn event_id(id: &str) -> Result<String, String> {
    EventId::parse(id).map(|e| e.as_str().to_owned()).map_err(|e| format!("--event: {e}"))
}

pub async fn events(args: EventsArgs) -> Result<(), String> {
    let (api, method, path, body) = match args.action {
        EventsAction::List(api) => (api, "GET", "/admin/events".to_owned(), None),
        EventsAction::Get { api, event } => (api, "GET", format!("/admin/events/{}", event_id(&event)?), None),
        EventsAction::Put { api, event, file } => {
            let body = if file.as_os_str() == "-" {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).map_err(|e| format!("stdin: {e}"))?;
                text
            } else {
                std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| format!("{}: not JSON ({e})", file.display()))?;
            (api, "PUT", format!("/admin/events/{}", event_id(&event)?), Some(body))
        }
        EventsAction::Delete { api, event } => (api, "DELETE", format!("/admin/events/{}", event_id(&event)?), None),
    };
    let answer = api.client().await?.call(method, &path, body).await.map_err(|e| e.to_string())?;
    if answer.body.is_empty() {
        println!("{}", serde_json::json!({ "status": answer.status }));
    } else {
        println!("{}", String::from_utf8_lossy(&answer.body).trim_end());
    }
    Ok(())
}

pub async fn entries(args: EntriesArgs) -> Result<(), String> {
    let event = event_id(&args.event)?;
    let client = args.api.client().await?;
    let mut out = std::io::stdout().lock();
    let (mut after, mut first) = (Some(0i64), true);
    while let Some(cursor) = after {
        let path =
            format!("/admin/events/{event}/entries?after={cursor}&limit={}&format={}", args.page_size, args.format);
        let answer = client.call("GET", &path, None).await.map_err(|e| e.to_string())?;
        let mut body: &[u8] = &answer.body;
        // Every CSV page opens with the header row: write it once.
        if args.format == "csv" && !first {
            body = body.iter().position(|b| *b == b'\n').map_or(&[][..], |i| &body[i + 1..]);
        }
        out.write_all(body).map_err(|e| format!("stdout: {e}"))?;
        first = false;
        after = match answer.headers.get("x-fanrush-next-after").map(|v| v.to_str().map(str::parse::<i64>)) {
            None => None,
            Some(Ok(Ok(next))) if next > cursor => Some(next),
            Some(_) => return Err(format!("the API named a bad next cursor after {cursor}")),
        };
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}
