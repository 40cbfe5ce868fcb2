//! The AWS SDK's shared configuration, and the SQS client the entry queue
//! uses. Region, credentials and `AWS_ENDPOINT_URL` (local endpoints) come
//! from the environment; credentials resolve lazily, on the first call.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::retry::RetryConfig;
use std::time::Duration;

/// Loads the AWS SDK configuration. Makes no network call.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An SQS client with short timeouts and SDK retries off:
/// [`crate::adapters::sqs_queue`] retries itself so it knows whether any
/// attempt may have landed.
pub fn sqs_client(sdk: &SdkConfig, attempt_timeout: Duration) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt_timeout.min(Duration::from_millis(500)))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}
