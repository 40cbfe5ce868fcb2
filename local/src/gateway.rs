//! `fanrush-local gateway`: a small stand-in for API Gateway's HTTP API in
//! front of `entry-api` and `admin-api`: `make run` serves the APIs through
//! it and `make test` checks the API contract against it. It turns each HTTP request into the payload-2.0 event API
//! Gateway sends (a body that is not UTF-8 is base64-encoded, as API Gateway
//! does), runs the real function binaries under the Runtime API harness, and
//! turns their answers back into HTTP. `/events...` goes to `entry-api`,
//! `/admin...` to `admin-api`. No authorizer runs here: start the functions
//! with `AUTH_MODE=dev`. Loopback only.

use crate::pool::{FunctionSpec, Pool};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
}

pub async fn serve(args: GatewayArgs) -> Result<(), String> {
    let (port, bin_dir, logs, environments) = (args.port, args.bin_dir, args.log_dir, args.entry_environments as usize);
    // The functions get this process's environment (REDIS_URL, AUTH_MODE, ...).
    let env: Vec<(String, String)> = std::env::vars().collect();
    let spec =
        |name: &'static str| FunctionSpec { name, binary: bin_dir.join(name), env: env.clone(), log: logs.join(name) };
    let fan = Arc::new(Pool::start(&spec("entry-api"), environments).await?);
    let admin = Arc::new(Pool::start(&spec("admin-api"), 1).await?);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    eprintln!("gateway: http://127.0.0.1:{port} (/events -> entry-api, /admin -> admin-api)");
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let (fan, admin) = (fan.clone(), admin.clone());
        tokio::spawn(async move { connection(stream, &fan, &admin).await });
    }
}

/// One keep-alive connection: requests in, responses out, until it closes.
async fn connection(stream: TcpStream, fan: &Pool, admin: &Pool) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let request = match read_request(&mut reader).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let _ = write.write_all(&http_response(status, &[], br#"{"message":"Bad Request"}"#)).await;
                return;
            }
        };
        let pool = if request.path.starts_with("/admin") { admin } else { fan };
        let out = match pool.invoke(&event(&request), Duration::from_secs(30)).await {
            Ok(answer) if !answer.error => from_lambda(&answer.body),
            _ => http_response(502, &[], br#"{"message":"Internal Server Error"}"#),
        };
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

struct HttpRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<Option<HttpRequest>, u16> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().ok_or(400u16)?.to_owned(), parts.next().ok_or(400u16)?.to_owned());
    let (path, query) = target.split_once('?').map_or((target.clone(), String::new()), |(p, q)| (p.into(), q.into()));
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut raw = Vec::new();
        if reader.read_until(b'\n', &mut raw).await.unwrap_or(0) == 0 {
            return Err(400);
        }
        let header = String::from_utf8_lossy(&raw).trim_end().to_owned();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                length = v.parse().map_err(|_| 400u16)?;
            }
            if k == "transfer-encoding" {
                return Err(411);
            }
            headers.push((k, v));
        }
    }
    if length > MAX_BODY {
        return Err(413);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.map_err(|_| 400u16)?;
    Ok(Some(HttpRequest { method, path, query, headers, body }))
}

/// The payload-2.0 event API Gateway's HTTP API sends for `r`.
fn event(r: &HttpRequest) -> Value {
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        // API Gateway joins repeated headers with commas.
        let joined = match headers.get(k).and_then(Value::as_str) {
            Some(prev) => format!("{prev},{v}"),
            None => v.clone(),
        };
        headers.insert(k.clone(), Value::String(joined));
    }
    let (body, encoded) = match std::str::from_utf8(&r.body) {
        _ if r.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(&r.body)), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": r.path,
        "rawQueryString": r.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "127.0.0.1", "domainPrefix": "local",
            "http": { "method": r.method, "path": r.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "" },
            "requestId": "local", "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "isBase64Encoded": encoded,
        "body": body
    })
}

/// The function's payload-2.0 response as HTTP.
fn from_lambda(raw: &str) -> Vec<u8> {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return http_response(502, &[], br#"{"message":"Internal Server Error"}"#);
    };
    let status = v["statusCode"].as_u64().unwrap_or(502) as u16;
    let headers: Vec<(String, String)> = v["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    http_response(status, &headers, &body)
}

fn http_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    let mut has_type = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        has_type |= k.eq_ignore_ascii_case("content-type");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_type && !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
