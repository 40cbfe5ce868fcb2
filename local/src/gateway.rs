//! `fanrush-local gateway`: a small stand-in for API Gateway's HTTP API in
//! front of `entry-api` and `admin-api`: `make run` serves the APIs through
//! it and `make test` checks the API contract against it. It turns each
//! HTTP request (hyper parses it) into the payload-2.0 event API Gateway
//! sends (a body that is not UTF-8 is base64-encoded, as API Gateway does),
//! runs the real function binaries under the Runtime API harness, and turns
//! their answers back into HTTP. `/events...` goes to `entry-api`,
//! `/admin...` and `/draws/...` to `admin-api`; `GET /` and the files beside it serve the fan
//! page (`web/`), as a static host would in AWS. No authorizer runs here:
//! start the functions with `AUTH_MODE=dev`. Loopback only.
//!
//! With `--invoke-api` it also runs `writer`, `scheduler` and `notifier`
//! and answers Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`)
//! for all five, as Lambda does (a function error is a 200 with
//! `X-Amz-Function-Error`): `make run` drives the writer and the schedule
//! through it (`fanrush-local bridge`), and `cargo lambda invoke` reaches any
//! function there. One emulator, the one the drill and the bench use.

use crate::http_server::{self, BodyError, Received};
use crate::pool::{FunctionSpec, Pool};
use crate::GatewayEvent;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The largest request body read (API Gateway's own limit is 10 MB).
const MAX_BODY: usize = 1 << 20;

/// The functions get this process's environment (REDIS_URL, AUTH_MODE, ...).
#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The port on 127.0.0.1.
    #[arg(long, default_value_t = 9400)]
    port: u16,
    /// Where the function binaries are.
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Where their logs go.
    #[arg(long, default_value = ".local")]
    log_dir: PathBuf,
    /// entry-api execution environments (one process each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    entry_environments: u64,
    /// The fan page's files, served at / (none when the directory is absent).
    #[arg(long, default_value = "web")]
    web_dir: PathBuf,
    /// Also run writer, scheduler and notifier, and answer the Lambda
    /// Invoke API for every function.
    #[arg(long)]
    invoke_api: bool,
    /// writer execution environments, with --invoke-api (its MaximumConcurrency).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    writer_environments: u64,
}

struct Routes {
    fan: Pool,
    admin: Pool,
    /// writer, scheduler and notifier, with --invoke-api.
    others: Vec<(&'static str, Pool)>,
    /// Whether the Invoke API answers (--invoke-api).
    invoke_api: bool,
    web: PathBuf,
}

impl Routes {
    fn function(&self, name: &str) -> Option<&Pool> {
        match name {
            "entry-api" => Some(&self.fan),
            "admin-api" => Some(&self.admin),
            _ => self.others.iter().find(|(n, _)| *n == name).map(|(_, pool)| pool),
        }
    }
}

const INVOKE_PREFIX: &str = "/2015-03-31/functions/";

pub async fn serve(args: GatewayArgs) -> Result<(), String> {
    let (port, bin_dir, logs, environments) = (args.port, args.bin_dir, args.log_dir, args.entry_environments as usize);
    let env: Vec<(String, String)> = std::env::vars().collect();
    let spec =
        |name: &'static str| FunctionSpec { name, binary: bin_dir.join(name), env: env.clone(), log: logs.join(name) };
    let fan = Pool::start(&spec("entry-api"), environments).await?;
    let admin = Pool::start(&spec("admin-api"), 1).await?;
    let mut others = Vec::new();
    if args.invoke_api {
        for (name, size) in [("writer", args.writer_environments as usize), ("scheduler", 1), ("notifier", 1)] {
            others.push((name, Pool::start(&spec(name), size).await?));
        }
    }
    let routes = Arc::new(Routes { fan, admin, others, invoke_api: args.invoke_api, web: args.web_dir });
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    eprintln!(
        "gateway: http://127.0.0.1:{port} (/ -> the fan page, /events -> entry-api, /admin and /draws -> admin-api)"
    );
    http_server::serve(listener, MAX_BODY, move |received| {
        let routes = routes.clone();
        async move { route(&routes, received).await }
    })
    .await
    .map_err(|e| e.to_string())
}

async fn route(routes: &Routes, received: Result<Received, BodyError>) -> Response<Full<Bytes>> {
    let r = match received {
        Ok(r) => r,
        Err(BodyError::TooLarge) => {
            return http_server::response(413, &[], r#"{"message":"Request Entity Too Large"}"#)
        }
        Err(BodyError::Broken) => return http_server::response(400, &[], r#"{"message":"Bad Request"}"#),
    };
    let path = r.parts.uri.path();
    if let Some(rest) = path.strip_prefix(INVOKE_PREFIX).filter(|_| routes.invoke_api) {
        return invoke(routes, &r, rest).await;
    }
    let pool = if path.starts_with("/admin") || path.starts_with("/draws/") {
        &routes.admin
    } else if path.starts_with("/events") {
        &routes.fan
    } else if let Some(page) = page(&routes.web, &r.parts.method, path).await {
        return page;
    } else {
        &routes.fan
    };
    match pool.invoke(&event(&r), Duration::from_secs(30)).await {
        Ok(answer) if !answer.error => from_lambda(&answer.body),
        _ => http_server::response(502, &[], r#"{"message":"Internal Server Error"}"#),
    }
}

/// Lambda's Invoke API for one function: the payload in, the function's
/// answer out (200 with `X-Amz-Function-Error` when the function failed).
async fn invoke(routes: &Routes, r: &Received, rest: &str) -> Response<Full<Bytes>> {
    let json = [("content-type", "application/json")];
    let name = rest.strip_suffix("/invocations").unwrap_or(rest);
    let Some(pool) = routes.function(name).filter(|_| r.parts.method == http::Method::POST) else {
        let message = serde_json::json!({ "Type": "User", "message": format!("Function not found: {name}") });
        return http_server::response(404, &json, message.to_string());
    };
    let payload: Value = if r.body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => {
                let message = serde_json::json!({ "Type": "User", "message": format!("Could not parse request body into json: {e}") });
                return http_server::response(400, &json, message.to_string());
            }
        }
    };
    match pool.invoke(&payload, Duration::from_secs(600)).await {
        Ok(answer) if answer.error => {
            http_server::response(200, &[json[0], ("x-amz-function-error", "Unhandled")], answer.body)
        }
        Ok(answer) => http_server::response(200, &json, answer.body),
        Err(e) => http_server::response(502, &json, serde_json::json!({ "message": format!("{e:?}") }).to_string()),
    }
}

/// A file of the fan page: `/` is `index.html`; only plain names of the
/// directory itself are served (no path walks out of it).
async fn page(dir: &Path, method: &http::Method, path: &str) -> Option<Response<Full<Bytes>>> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return None;
    }
    let name = if path == "/" { "index.html" } else { path.strip_prefix('/')? };
    let (stem, ext) = name.rsplit_once('.')?;
    let plain = !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let kind = match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => return None,
    };
    if !plain {
        return None;
    }
    let bytes = tokio::fs::read(dir.join(name)).await.ok()?;
    Some(http_server::response(200, &[("content-type", kind), ("cache-control", "no-cache")], bytes))
}

/// The payload-2.0 event API Gateway's HTTP API sends for `r`, received
/// now (the request context's `time` and `timeEpoch`).
fn event(r: &Received) -> Value {
    let path_and_query = r.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut event = GatewayEvent::new(r.parts.method.as_str(), path_and_query).received_at(chrono::Utc::now());
    for (name, value) in &r.parts.headers {
        event = event.header(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
    }
    event.body(&r.body).to_json()
}

/// The function's payload-2.0 response as HTTP.
fn from_lambda(raw: &str) -> Response<Full<Bytes>> {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return http_server::response(502, &[], r#"{"message":"Internal Server Error"}"#);
    };
    let status = v["statusCode"].as_u64().unwrap_or(502) as u16;
    let mut headers: Vec<(&str, &str)> = v["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
        .unwrap_or_default();
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding"));
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    if !body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("content-type", "application/json"));
    }
    http_server::response(status, &headers, body)
}
