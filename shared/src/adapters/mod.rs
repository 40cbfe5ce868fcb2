//! One adapter per real system fanrush talks to. Each depends on the rules
//! and, where it needs one, on another adapter (secrets, HTTPS, the SDK
//! configuration); none knows the use cases or the configuration.
//!
//! | module | system | main type |
//! |---|---|---|
//! | [`redis_gate`] | Redis (ElastiCache): the admission gate, its Lua scripts, the lazy connection | `EntryGate` |
//! | [`sqs_queue`] | SQS: the entry queue and its DLQ | `EntryQueue`, `DeadLetterQueue` |
//! | [`postgres_store`] | PostgreSQL: the calendar and the entries | `Database` |
//! | [`lambda_control`] | the Lambda control plane: provisioned concurrency | `ProvisionedConcurrency` |
//! | [`slack`] | a Slack incoming webhook | `SlackNotifier`, `Notice` |
//! | [`secrets`] | Secrets Manager through the Lambda extension | `SecretSource`, `Secret` |
//! | [`https`] | plain HTTPS calls (Slack, the iCalendar feed, the extension) | `HttpsClient` |
//! | [`aws_sdk`] | the AWS SDK's shared configuration and the SQS client | `aws_config`, `sqs_client` |
//! | [`admin_client`] | the deployed admin API, called by operators with SigV4 | `AdminClient` |

pub mod admin_client;
pub mod aws_sdk;
pub mod https;
pub mod lambda_control;
pub mod postgres_store;
pub mod redis_gate;
pub mod secrets;
pub mod slack;
pub mod sqs_queue;
