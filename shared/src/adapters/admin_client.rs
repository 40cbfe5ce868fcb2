//! The admin API as an operator's tools call it (`fanrush events`,
//! `fanrush entries`): HTTP(S) requests signed with SigV4 for
//! `execute-api` by the AWS SDK's own signer (`aws-sigv4`), with the
//! credentials and Region of the standard AWS chain, as API Gateway's IAM
//! authorization requires. Against `make run` (dev mode) the same signed
//! requests go through: the local stand-in does not check them.

use crate::adapters::aws_sdk::aws_config;
use crate::adapters::https::HttpsClient;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::Full;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// How long one call may take, a page of 10,000 entries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum AdminClientError {
    #[error("the API URL must be http(s)://host[:port][/stage], got {0:?}")]
    BadUrl(String),
    #[error(
        "no AWS credentials to sign with ({0}); configure the AWS chain, or pass --unsigned for a local dev-mode API"
    )]
    NoCredentials(String),
    #[error("no AWS Region to sign for: set AWS_REGION (the Region the API is in)")]
    NoRegion,
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("the admin API did not answer: {0}")]
    Unreachable(String),
    /// The API's own refusal, `{"error": code, "message": ...}`.
    #[error("the admin API answered {status} {code}: {message}")]
    Refused { status: u16, code: String, message: String },
}

/// An answer of the admin API: 2xx.
#[derive(Debug, Clone)]
pub struct AdminAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// The admin API at a base URL (the stack's `FanApiUrl` output, or `make
/// run`'s), signing as the AWS chain says, or not at all.
pub struct AdminClient {
    base: String,
    web: HttpsClient,
    signer: Option<Signer>,
}

struct Signer {
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
}

impl AdminClient {
    /// A client on `base`; `sign` takes the credentials and Region from the
    /// standard chain (environment, profile, SSO, container or instance
    /// role), as the AWS SDKs do.
    pub async fn new(base: &str, sign: bool) -> Result<Self, AdminClientError> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed: http::Uri = base.parse().map_err(|_| AdminClientError::BadUrl(base.clone()))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(AdminClientError::BadUrl(base));
        }
        let signer = if sign {
            let config = aws_config().await;
            let credentials =
                config.credentials_provider().ok_or_else(|| AdminClientError::NoCredentials("no provider".into()))?;
            let region = config.region().ok_or(AdminClientError::NoRegion)?.to_string();
            Some(Signer { credentials, region })
        } else {
            None
        };
        Ok(Self { base, web: HttpsClient::new(), signer })
    }

    /// One call: `path` starts with `/admin/`, and may carry a query.
    pub async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<AdminAnswer, AdminClientError> {
        let uri = format!("{}{path}", self.base);
        let body = Bytes::from(body.unwrap_or_default());
        let mut request = http::Request::builder().method(method).uri(&uri);
        if !body.is_empty() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let mut request = request.body(Full::new(body.clone())).map_err(|_| AdminClientError::BadUrl(uri.clone()))?;
        if let Some(signer) = &self.signer {
            signer.sign(&mut request, &body).await?;
        }
        let answer = self.web.send(request, CALL_TIMEOUT).await.map_err(AdminClientError::Unreachable)?;
        if answer.status.is_success() {
            return Ok(AdminAnswer { status: answer.status.as_u16(), headers: answer.headers, body: answer.body });
        }
        let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let text = |k: &str| error[k].as_str().map(str::to_owned);
        Err(AdminClientError::Refused {
            status: answer.status.as_u16(),
            code: text("error").unwrap_or_else(|| "unknown".into()),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).chars().take(200).collect()),
        })
    }
}

impl Signer {
    /// Adds SigV4's headers (`authorization`, `x-amz-date`, and the session
    /// token when the credentials carry one) for `execute-api`.
    async fn sign(&self, request: &mut http::Request<Full<Bytes>>, body: &[u8]) -> Result<(), AdminClientError> {
        let credentials =
            self.credentials.provide_credentials().await.map_err(|e| AdminClientError::NoCredentials(e.to_string()))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AdminClientError::Signing(e.to_string()))?
            .into();
        let headers: Vec<(&str, &str)> =
            request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
        let uri = request.uri().to_string();
        let signable =
            SignableRequest::new(request.method().as_str(), &uri, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| AdminClientError::Signing(e.to_string()))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| AdminClientError::Signing(e.to_string()))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}
