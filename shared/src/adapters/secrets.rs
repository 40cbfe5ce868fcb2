//! Secrets the functions need: the Redis AUTH token, the database password
//! and the Slack webhook URL. In AWS they come from Secrets Manager through
//! the Parameters and Secrets Lambda Extension, read at first use (never in
//! init, never from template text); locally a plain value may stand in.
//! A [`Secret`] never prints: its `Debug` is redacted and it has no
//! `Display`, so it cannot reach a log line by accident; its memory is
//! zeroed when it is dropped (secrecy).

use crate::adapters::https::HttpsClient;
use bytes::Bytes;
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

/// A secret value: secrecy's `SecretString` (zeroed when dropped, redacted
/// in `Debug`, no `Display`), compared by value only so that settings can
/// be.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value, for the one call that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret could not be read. Never holds the secret.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("secret {secret_id:?} could not be read: {reason}")]
pub struct SecretError {
    pub secret_id: String,
    pub reason: String,
}

/// The extension's port is set but is not a port: init stops rather than
/// ask another port.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT is invalid: {0:?} is not a port")]
pub struct MalformedPort(pub String);

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Not configured.
    None,
    /// A value given directly (local runs and tests only).
    Plain(Secret),
    /// A Secrets Manager secret read through the extension on `port`.
    Extension { secret_id: String, port: u16 },
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Extension { secret_id, port } => write!(f, "Extension({secret_id}, port {port})"),
        }
    }
}

impl SecretSource {
    /// `secret_id_var` (a Secrets Manager id or ARN, read through the
    /// extension on `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, 2773) wins over
    /// `plain_var` (the value itself, for local runs); neither means none.
    pub fn from_env(secret_id_var: &str, plain_var: &str) -> Result<Self, MalformedPort> {
        Self::from_vars(secret_id_var, plain_var, &|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any set of variables.
    pub fn from_vars(
        secret_id_var: &str,
        plain_var: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, MalformedPort> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        Ok(if let Some(secret_id) = var(secret_id_var) {
            Self::extension(secret_id, env)?
        } else if let Some(value) = var(plain_var) {
            Self::Plain(Secret::new(value))
        } else {
            Self::None
        })
    }

    /// The secret `secret_id`, read through the extension on the port the
    /// variables name (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, 2773).
    pub fn extension(secret_id: String, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, MalformedPort> {
        let port = match env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").filter(|v| !v.is_empty()) {
            None => 2773,
            Some(p) => p.parse().map_err(|_| MalformedPort(p))?,
        };
        Ok(Self::Extension { secret_id, port })
    }

    /// Whether Lambda init may read it: the Parameters and Secrets extension
    /// can only be called during the INVOKE phase (Systems Manager User
    /// Guide, "Using Parameter Store parameters in AWS Lambda functions").
    pub fn readable_in_init(&self) -> bool {
        !matches!(self, Self::Extension { .. })
    }

    /// Reads the secret (`None` when not configured).
    pub async fn resolve(&self) -> Result<Option<Secret>, SecretError> {
        self.resolve_stage(Stage::Current, Cache::Use).await
    }

    /// Reads the secret's version before the last rotation (Secrets
    /// Manager's `AWSPREVIOUS`); `None` when there is none (never rotated)
    /// or the source has no versions.
    pub async fn resolve_previous(&self) -> Result<Option<Secret>, SecretError> {
        self.resolve_previous_with(Cache::Use).await
    }

    /// Like [`SecretSource::resolve`] and [`SecretSource::resolve_previous`]
    /// together, past the extension's cache when `cache` says so.
    pub async fn resolve_both(&self, cache: Cache) -> Result<(Option<Secret>, Option<Secret>), SecretError> {
        Ok((self.resolve_stage(Stage::Current, cache).await?, self.resolve_previous_with(cache).await?))
    }

    /// A rotated key as signing and checking need it: this source's
    /// current version, and the one before it (`AWSPREVIOUS`, or locally
    /// `previous` given directly, which wins). `None` when no current one
    /// is configured, or it is empty.
    pub async fn resolve_rotated(
        &self,
        previous: &SecretSource,
        cache: Cache,
    ) -> Result<Option<(Secret, Option<Secret>)>, SecretError> {
        let (current, before) = self.resolve_both(cache).await?;
        let Some(current) = current.filter(|c| !c.expose().is_empty()) else { return Ok(None) };
        Ok(Some((current, previous.resolve().await?.or(before))))
    }

    async fn resolve_previous_with(&self, cache: Cache) -> Result<Option<Secret>, SecretError> {
        match self {
            Self::Extension { .. } => self.resolve_stage(Stage::Previous, cache).await,
            _ => Ok(None),
        }
    }

    async fn resolve_stage(&self, stage: Stage, cache: Cache) -> Result<Option<Secret>, SecretError> {
        match self {
            Self::None => Ok(None),
            Self::Plain(s) => Ok(Some(s.clone())),
            Self::Extension { secret_id, port } => match read_secret_stage(secret_id, *port, stage, cache).await {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(Missing::NoSuchVersion) => Ok(None),
                Err(Missing::Failed(reason)) => Err(SecretError { secret_id: secret_id.clone(), reason }),
            },
        }
    }
}

/// Whether a read may be answered from the extension's cache (up to its
/// TTL old, 300 s by default) or must reach Secrets Manager now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Use,
    /// `refreshNow=true`: the extension calls `GetSecretValue` and answers
    /// an error rather than its cached value when that fails (Systems
    /// Manager User Guide, "Forcing a refresh with refreshNow").
    Bypass,
}

/// A secret's version, by its Secrets Manager staging label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Current,
    Previous,
}

enum Missing {
    /// The extension answered that the version does not exist.
    NoSuchVersion,
    Failed(String),
}

/// Reads a secret's string through the Parameters and Secrets Lambda
/// Extension (plain HTTP on loopback, authenticated with the session token).
async fn read_secret_stage(secret_id: &str, port: u16, stage: Stage, cache: Cache) -> Result<String, Missing> {
    let token = std::env::var("AWS_SESSION_TOKEN").unwrap_or_default();
    let stage = match stage {
        Stage::Current => "",
        Stage::Previous => "&versionStage=AWSPREVIOUS",
    };
    let refresh = if cache == Cache::Bypass { "&refreshNow=true" } else { "" };
    let uri = format!("http://127.0.0.1:{port}/secretsmanager/get?secretId={}{stage}{refresh}", encode(secret_id));
    let request = http::Request::get(uri)
        .header("X-Aws-Parameters-Secrets-Token", token)
        .body(Full::new(Bytes::new()))
        .map_err(|e| Missing::Failed(e.to_string()))?;
    let response = HttpsClient::new()
        .send(request, Duration::from_secs(3))
        .await
        .map_err(|e| Missing::Failed(format!("the secrets extension: {e}")))?;
    // Secrets Manager's ResourceNotFoundException for a staging label no
    // version carries comes back as a 400 from the extension.
    if !stage.is_empty() && matches!(response.status.as_u16(), 400 | 404) {
        return Err(Missing::NoSuchVersion);
    }
    if !response.status.is_success() {
        return Err(Missing::Failed(format!("the secrets extension answered {}", response.status)));
    }
    let value: Value = serde_json::from_slice(&response.body)
        .map_err(|_| Missing::Failed("the secrets extension answered non-JSON".to_owned()))?;
    value["SecretString"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Missing::Failed("the secret has no SecretString".to_owned()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_port_is_a_port_or_init_stops() {
        let vars = |port: &'static str| {
            move |k: &str| match k {
                "ID" => Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db".to_owned()),
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" if !port.is_empty() => Some(port.to_owned()),
                _ => None,
            }
        };
        let port_of = |s: SecretSource| match s {
            SecretSource::Extension { port, .. } => port,
            other => panic!("{other:?}"),
        };
        assert_eq!(port_of(SecretSource::from_vars("ID", "PLAIN", &vars("")).unwrap()), 2773);
        assert_eq!(port_of(SecretSource::from_vars("ID", "PLAIN", &vars("2800")).unwrap()), 2800);
        let err = SecretSource::from_vars("ID", "PLAIN", &vars("27x3")).unwrap_err();
        assert!(err.to_string().contains("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") && err.to_string().contains("27x3"));
        assert!(SecretSource::from_vars("ID", "PLAIN", &vars("70000")).is_err(), "beyond u16");
        // Without a secret id the port is not read: a local run names the value itself.
        let plain =
            |k: &str| (k == "PLAIN").then(|| "local".to_owned()).or_else(|| vars("bad")(k).filter(|_| k != "ID"));
        assert_eq!(SecretSource::from_vars("ID", "PLAIN", &plain).unwrap(), SecretSource::Plain(Secret::new("local")));
    }

    #[test]
    fn secret_ids_are_percent_encoded_and_values_never_print() {
        assert_eq!(
            encode("arn:aws:secretsmanager:r:1:secret:a/b"),
            "arn%3Aaws%3Asecretsmanager%3Ar%3A1%3Asecret%3Aa%2Fb"
        );
        let shown = format!("{:?} {:?}", Secret::new("hunter2"), SecretSource::Plain(Secret::new("hunter2")));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
