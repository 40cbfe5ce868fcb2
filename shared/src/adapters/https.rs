//! A small HTTPS client for the few plain web calls fanrush makes (the Slack
//! webhook, an iCalendar feed, the operator's calls of the admin API). Built on first use, so TLS roots are not
//! loaded in Lambda init; every call has a timeout.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::sync::OnceCell;

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A lazily built HTTPS (and plain HTTP, for loopback) client.
#[derive(Default)]
pub struct HttpsClient {
    client: OnceCell<HyperClient>,
}

/// A response's status, headers and body.
pub struct HttpsResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpsClient {
    pub fn new() -> Self {
        Self::default()
    }

    async fn client(&self) -> Result<&HyperClient, String> {
        self.client
            .get_or_try_init(|| async {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                    .map_err(|e| format!("no TLS roots: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok::<_, String>(Client::builder(TokioExecutor::new()).build(https))
            })
            .await
    }

    /// Sends `request` and reads the whole response within `timeout`. Errors
    /// never quote the URL (it may be a secret).
    pub async fn send(&self, request: http::Request<Full<Bytes>>, timeout: Duration) -> Result<HttpsResponse, String> {
        let client = self.client().await?;
        let call = async {
            let response = client.request(request).await.map_err(|e| format!("unreachable ({})", kind(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|_| "the body broke off".to_owned())?.to_bytes();
            Ok(HttpsResponse { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(timeout, call).await.map_err(|_| "no answer in time".to_owned())?
    }

    /// GETs a text document.
    pub async fn get_text(&self, url: &str, timeout: Duration) -> Result<String, String> {
        let request = http::Request::get(url).body(Full::new(Bytes::new())).map_err(|_| "malformed URL".to_owned())?;
        let r = self.send(request, timeout).await?;
        if !r.status.is_success() {
            return Err(format!("answered {}", r.status));
        }
        String::from_utf8(r.body.to_vec()).map_err(|_| "not UTF-8".to_owned())
    }

    /// POSTs a JSON document; `Ok` on a 2xx.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value, timeout: Duration) -> Result<(), String> {
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| "malformed URL".to_owned())?;
        let r = self.send(request, timeout).await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", r.status))
        }
    }
}

/// What went wrong, without the URL hyper's messages may carry.
fn kind(e: &hyper_util::client::legacy::Error) -> &'static str {
    if e.is_connect() {
        "connect failed"
    } else {
        "request failed"
    }
}
