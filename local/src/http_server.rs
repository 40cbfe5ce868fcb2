//! The one HTTP/1.1 server loop of the local stand-ins (the gateway, the
//! Runtime API harness, the recording server): hyper on a loopback
//! listener, one task per connection, keep-alive as hyper does it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A request with its body read.
pub struct Received {
    pub parts: http::request::Parts,
    pub body: Bytes,
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit: answer 413.
    TooLarge,
    /// The connection failed mid-body.
    Broken,
}

/// Serves `listener` until it fails: every request goes to `handle` with its
/// body read (up to `max_body` bytes; over it, `handle` gets the error).
pub async fn serve<H, F>(listener: TcpListener, max_body: usize, handle: H) -> std::io::Result<()>
where
    H: Fn(Result<Received, BodyError>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handle = Arc::new(handle);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let handle = handle.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let received = match Limited::new(body, max_body).collect().await {
                        Ok(body) => Ok(Received { parts, body: body.to_bytes() }),
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
                        Err(_) => Err(BodyError::Broken),
                    };
                    Ok::<_, std::convert::Infallible>(handle(received).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// A response with `status`, `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body.into())).unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::from_static(br#"{"message":"Internal Server Error"}"#)));
        *fallback.status_mut() = http::StatusCode::BAD_GATEWAY;
        fallback
    })
}
