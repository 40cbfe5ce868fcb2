//! The HTTP APIs, written once for every transport lambda_http speaks (API
//! Gateway HTTP API, function URLs, `cargo lambda watch`).
//!
//! Every failure becomes an [`ApiError`] and is turned into a response in
//! exactly one place, [`ApiError::into_response`], with a stable
//! machine-readable `error` code and a human `message`.

pub mod admin;
pub mod bodies;
mod copies;
pub mod entries_page;
pub mod fan;
mod identity;
mod route;

pub use crate::usecases::entrance::TicketKeyring;
pub use admin::AdminApi;
pub use copies::EVENT_COPY_MAX_AGE;
pub use fan::{FanApi, TICKET_HEADER, WAITING};
pub use identity::AuthMode;

use crate::rules::domain::ValidationError;
use crate::usecases::entrance::Refusal;
use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A refusal with its status, code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The offending input field, for 400s about one field.
    pub field: Option<&'static str>,
    /// Seconds to wait, for 503s and 429s.
    pub retry_after: Option<u64>,
    /// Allowed methods, for 405s.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None, allow: None }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A dependency failed: ask the client to retry. Nothing the client was
    /// told is accepted depends on this answer.
    pub fn unavailable(retry_after: u64, message: impl Into<String>) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message) }
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("allowed: {allow}"))
        }
    }

    pub fn route_not_found() -> Self {
        Self::not_found("route_not_found", "no such route")
    }

    /// The one mapping from an error to a response.
    pub fn into_response(self) -> Response<Body> {
        let body = bodies::ErrorBody { error: self.code, message: &self.message, field: self.field };
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        Self {
            retry_after: r.retry_after().map(|d| d.as_millis().div_ceil(1000).max(1) as u64),
            ..Self::new(r.status(), r.code(), r.message())
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let message = e.to_string();
        match e {
            ValidationError::InvalidEventId => Self::new(StatusCode::BAD_REQUEST, "invalid_event_id", message),
            ValidationError::InvalidFanId => Self::new(StatusCode::BAD_REQUEST, "invalid_fan_id", message),
            ValidationError::BodyTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message),
            ValidationError::InvalidBody(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_body", message),
            ValidationError::InvalidField { field, .. } => {
                Self { field: Some(field), ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
            }
        }
    }
}

/// A JSON response that no cache keeps.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Every body is a plain struct of strings and numbers: it serializes.
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An empty 204.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
