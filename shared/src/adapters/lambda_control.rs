//! The Lambda control plane: provisioned concurrency of `entry-api:live` and
//! the account's concurrency. The one adapter with no local server; it is
//! tested with `aws-smithy-mocks` at the SDK boundary. Throttled calls
//! (`TooManyRequestsException`) are retried by the SDK's standard retry.

use aws_sdk_lambda::error::{DisplayErrorContext, SdkError};
use aws_sdk_lambda::operation::get_provisioned_concurrency_config::GetProvisionedConcurrencyConfigError;
use aws_sdk_lambda::types::ProvisionedConcurrencyStatusEnum;
use aws_sdk_lambda::Client;
use thiserror::Error;
use tokio::sync::OnceCell;

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("lambda {operation} failed: {message}")]
    Api { operation: &'static str, message: String },
}

fn api<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> ControlError {
    move |e| ControlError::Api { operation, message: DisplayErrorContext(e).to_string() }
}

/// Where a provisioned-concurrency configuration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedState {
    pub requested: i64,
    pub allocated: i64,
    pub status: ProvisionedStatus,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionedStatus {
    Ready,
    InProgress,
    Failed,
}

impl ProvisionedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::InProgress => "IN_PROGRESS",
            Self::Failed => "FAILED",
        }
    }
}

impl ProvisionedState {
    /// Ready means READY with everything requested allocated.
    pub fn is_ready(&self) -> bool {
        self.status == ProvisionedStatus::Ready && self.allocated >= self.requested
    }
}

/// The account's concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    pub limit: i64,
    pub unreserved: i64,
}

/// Provisioned concurrency of one function alias.
pub struct ProvisionedConcurrency {
    client: OnceCell<Client>,
    function: String,
    qualifier: String,
}

impl ProvisionedConcurrency {
    pub fn new(client: Client, function: impl Into<String>, qualifier: impl Into<String>) -> Self {
        Self { client: OnceCell::new_with(Some(client)), function: function.into(), qualifier: qualifier.into() }
    }

    /// A client built on first use from the default SDK configuration
    /// (standard retries, which back off on `TooManyRequestsException`), so
    /// Lambda init loads no TLS roots or credential chain.
    pub fn lazy(function: impl Into<String>, qualifier: impl Into<String>) -> Self {
        Self { client: OnceCell::new(), function: function.into(), qualifier: qualifier.into() }
    }

    async fn client(&self) -> &Client {
        self.client.get_or_init(|| async { Client::new(&crate::adapters::aws_sdk::aws_config().await) }).await
    }

    /// The current configuration, `None` when there is none.
    pub async fn current(&self) -> Result<Option<ProvisionedState>, ControlError> {
        let out = self
            .client()
            .await
            .get_provisioned_concurrency_config()
            .function_name(&self.function)
            .qualifier(&self.qualifier)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetProvisionedConcurrencyConfigError::ProvisionedConcurrencyConfigNotFoundException(_))
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(api("GetProvisionedConcurrencyConfig")(e)),
        };
        let status = match out.status() {
            Some(ProvisionedConcurrencyStatusEnum::Ready) => ProvisionedStatus::Ready,
            Some(ProvisionedConcurrencyStatusEnum::Failed) => ProvisionedStatus::Failed,
            _ => ProvisionedStatus::InProgress,
        };
        Ok(Some(ProvisionedState {
            requested: out.requested_provisioned_concurrent_executions().unwrap_or(0).into(),
            allocated: out.allocated_provisioned_concurrent_executions().unwrap_or(0).into(),
            status,
            reason: out.status_reason().map(str::to_owned),
        }))
    }

    /// Requests `environments` provisioned environments.
    pub async fn set(&self, environments: i64) -> Result<(), ControlError> {
        let n = i32::try_from(environments).map_err(|_| ControlError::Api {
            operation: "PutProvisionedConcurrencyConfig",
            message: format!("{environments} is out of range"),
        })?;
        self.client()
            .await
            .put_provisioned_concurrency_config()
            .function_name(&self.function)
            .qualifier(&self.qualifier)
            .provisioned_concurrent_executions(n)
            .send()
            .await
            .map_err(api("PutProvisionedConcurrencyConfig"))?;
        Ok(())
    }

    /// Removes the configuration.
    pub async fn remove(&self) -> Result<(), ControlError> {
        self.client()
            .await
            .delete_provisioned_concurrency_config()
            .function_name(&self.function)
            .qualifier(&self.qualifier)
            .send()
            .await
            .map_err(api("DeleteProvisionedConcurrencyConfig"))?;
        Ok(())
    }

    /// The account's concurrency limit and unreserved pool.
    pub async fn account(&self) -> Result<AccountConcurrency, ControlError> {
        let out = self.client().await.get_account_settings().send().await.map_err(api("GetAccountSettings"))?;
        let limit = out.account_limit();
        let total = limit.map_or(0, |l| i64::from(l.concurrent_executions()));
        let unreserved = limit.and_then(|l| l.unreserved_concurrent_executions()).map_or(total, i64::from);
        Ok(AccountConcurrency { limit: total, unreserved })
    }
}
