//! [`HttpCapture`]: a tiny HTTP/1.1 server on loopback (hyper) that records
//! every request (method, path, headers, body) and answers a chosen status
//! and body. It stands in for a Slack webhook or the secrets extension in
//! tests.

use crate::http_server::{self, Received};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The largest body recorded.
const MAX_BODY: usize = 1 << 20;

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
}

/// A recording HTTP server.
pub struct HttpCapture {
    port: u16,
    requests: Arc<Mutex<Vec<Captured>>>,
    answer: Arc<Mutex<Answer>>,
    task: JoinHandle<()>,
}

impl HttpCapture {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer { status: 200, body: "ok".into() }));
        let (r, a) = (requests.clone(), answer.clone());
        let task = tokio::spawn(async move {
            let _ = http_server::serve(listener, MAX_BODY, move |received| {
                let answer = record(received, &r, &a);
                async move { http_server::response(answer.status, &[("content-type", "application/json")], answer.body) }
            })
            .await;
        });
        Ok(Self { port, requests, answer, task })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server answers from now on.
    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = Answer { status, body: body.into() };
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records one request and picks the answer.
fn record(
    received: Result<Received, http_server::BodyError>,
    requests: &Mutex<Vec<Captured>>,
    answer: &Mutex<Answer>,
) -> Answer {
    if let Ok(r) = received {
        let headers = r
            .parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let path = r.parts.uri.path_and_query().map_or_else(|| r.parts.uri.path().to_owned(), |p| p.to_string());
        requests.lock().unwrap().push(Captured {
            method: r.parts.method.to_string(),
            path,
            headers,
            body: String::from_utf8_lossy(&r.body).into_owned(),
        });
    }
    answer.lock().unwrap().clone()
}
