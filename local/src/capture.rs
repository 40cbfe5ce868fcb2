//! [`HttpCapture`]: a tiny HTTP/1.1 server on loopback (hyper) that records
//! every request (method, path, headers, body) and answers a chosen status
//! and body, or one chosen by what the request's path and query hold. It
//! stands in for a Slack webhook or the secrets extension in tests.

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

/// The default answer, and answers for paths holding given texts (the
/// first rule whose every text the path holds wins).
struct Answers {
    default: Answer,
    rules: Vec<(Vec<String>, Answer)>,
}

/// A recording HTTP server.
pub struct HttpCapture {
    port: u16,
    requests: Arc<Mutex<Vec<Captured>>>,
    answer: Arc<Mutex<Answers>>,
    task: JoinHandle<()>,
}

impl HttpCapture {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let default = Answer { status: 200, body: "ok".into() };
        let answer = Arc::new(Mutex::new(Answers { default, rules: Vec::new() }));
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

    /// What the server answers from now on (to paths no rule matches).
    pub fn answer(&self, status: u16, body: &str) {
        self.answer.lock().unwrap().default = Answer { status, body: body.into() };
    }

    /// From now on, a request whose path and query hold every one of
    /// `texts` gets this answer; rules set earlier are tried first, and a
    /// rule with the same texts is replaced.
    pub fn answer_when(&self, texts: &[&str], status: u16, body: &str) {
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        let mut answers = self.answer.lock().unwrap();
        let answer = Answer { status, body: body.into() };
        match answers.rules.iter_mut().find(|(t, _)| *t == texts) {
            Some(rule) => rule.1 = answer,
            None => answers.rules.push((texts, answer)),
        }
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
    answers: &Mutex<Answers>,
) -> Answer {
    let mut path = String::new();
    if let Ok(r) = received {
        let headers = r
            .parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        path = r.parts.uri.path_and_query().map_or_else(|| r.parts.uri.path().to_owned(), |p| p.to_string());
        requests.lock().unwrap().push(Captured {
            method: r.parts.method.to_string(),
            path: path.clone(),
            headers,
            body: String::from_utf8_lossy(&r.body).into_owned(),
        });
    }
    let answers = answers.lock().unwrap();
    let rule = answers.rules.iter().find(|(texts, _)| texts.iter().all(|t| path.contains(t.as_str())));
    rule.map_or(&answers.default, |(_, a)| a).clone()
}
