//! The AWS side of a local stack: an SDK configuration and a function
//! environment pointed at a loopback endpoint (fauxqs), with the fixed
//! credentials such endpoints want (not secrets) and instance metadata off;
//! and the entry queue with its DLQ, which the template creates in AWS.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use fanrush::adapters::sqs_queue::QueueError;

/// The SDK configuration for clients of the local `endpoint`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "fanrush-local"))
        .load()
        .await
}

/// The variables that point a function's AWS SDK at the local `endpoint`.
pub fn function_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Creates (or finds) a queue and its dead-letter queue with a redrive policy;
/// returns `(queue_url, dlq_url)`. Used by `fanrush-local setup`, the tests,
/// the drill and the bench; in AWS the template creates both.
pub async fn provision(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_s: u32,
) -> Result<(String, String), QueueError> {
    let api = |e: &dyn std::fmt::Display| QueueError::Api(e.to_string());
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| QueueError::Api("CreateQueue returned no URL".into()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Api("the DLQ has no ARN".into()))?;
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() });
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| QueueError::Api("CreateQueue returned no URL".into()))?;
    Ok((queue_url, dlq_url))
}
