//! Where the tables and queues are, and the SDK clients that reach them.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use serde::{Deserialize, Serialize};
use switchboard_domain::QueueName;

use crate::error::AwsError;

/// Names of the tables and URLs of the queues, as the SAM template passes them
/// to every function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsResources {
    pub sessions_table: String,
    pub customers_table: String,
    pub idempotency_table: String,
    pub feedback_table: String,
    pub gaps_table: String,
    pub kb_table: String,
    pub inbound_queue_url: String,
    pub escalation_priority_queue_url: String,
    pub escalation_standard_queue_url: String,
    /// Where each queue's consumer puts a message that failed for good.
    pub inbound_dead_letter_queue_url: String,
    pub escalation_priority_dead_letter_queue_url: String,
    pub escalation_standard_dead_letter_queue_url: String,
    /// The S3 bucket for bodies too large for an SQS message.
    pub payload_bucket: String,
}

impl AwsResources {
    /// The environment variable behind each field, in field order.
    pub const ENV_VARS: [&'static str; 13] = [
        "SWITCHBOARD_SESSIONS_TABLE",
        "SWITCHBOARD_CUSTOMERS_TABLE",
        "SWITCHBOARD_IDEMPOTENCY_TABLE",
        "SWITCHBOARD_FEEDBACK_TABLE",
        "SWITCHBOARD_GAPS_TABLE",
        "SWITCHBOARD_KB_TABLE",
        "SWITCHBOARD_INBOUND_QUEUE_URL",
        "SWITCHBOARD_ESCALATION_PRIORITY_QUEUE_URL",
        "SWITCHBOARD_ESCALATION_STANDARD_QUEUE_URL",
        "SWITCHBOARD_INBOUND_DLQ_URL",
        "SWITCHBOARD_ESCALATION_PRIORITY_DLQ_URL",
        "SWITCHBOARD_ESCALATION_STANDARD_DLQ_URL",
        "SWITCHBOARD_PAYLOAD_BUCKET",
    ];

    /// Reads every name from the environment; all are required. The error
    /// names every missing variable at once.
    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AwsResources::from_env`], with any lookup (tests, config files).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let mut values = Vec::with_capacity(Self::ENV_VARS.len());
        let mut missing = Vec::new();
        for name in Self::ENV_VARS {
            match lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            {
                Some(value) => values.push(value),
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            return Err(AwsError::Config(format!(
                "missing environment variables: {}",
                missing.join(", ")
            )));
        }
        let mut values = values.into_iter();
        let mut next = || values.next().unwrap_or_default();
        Ok(Self {
            sessions_table: next(),
            customers_table: next(),
            idempotency_table: next(),
            feedback_table: next(),
            gaps_table: next(),
            kb_table: next(),
            inbound_queue_url: next(),
            escalation_priority_queue_url: next(),
            escalation_standard_queue_url: next(),
            inbound_dead_letter_queue_url: next(),
            escalation_priority_dead_letter_queue_url: next(),
            escalation_standard_dead_letter_queue_url: next(),
            payload_bucket: next(),
        })
    }

    /// `(variable, value)` pairs, e.g. to hand the names to a child process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let values = [
            &self.sessions_table,
            &self.customers_table,
            &self.idempotency_table,
            &self.feedback_table,
            &self.gaps_table,
            &self.kb_table,
            &self.inbound_queue_url,
            &self.escalation_priority_queue_url,
            &self.escalation_standard_queue_url,
            &self.inbound_dead_letter_queue_url,
            &self.escalation_priority_dead_letter_queue_url,
            &self.escalation_standard_dead_letter_queue_url,
            &self.payload_bucket,
        ];
        Self::ENV_VARS
            .iter()
            .zip(values)
            .map(|(name, value)| (*name, value.clone()))
            .collect()
    }

    pub fn queue_url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Inbound => &self.inbound_queue_url,
            QueueName::EscalationPriority => &self.escalation_priority_queue_url,
            QueueName::EscalationStandard => &self.escalation_standard_queue_url,
        }
    }

    pub fn dead_letter_queue_url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Inbound => &self.inbound_dead_letter_queue_url,
            QueueName::EscalationPriority => &self.escalation_priority_dead_letter_queue_url,
            QueueName::EscalationStandard => &self.escalation_standard_dead_letter_queue_url,
        }
    }
}

/// The SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SQS` /
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` when set), with the latest behaviour
/// defaults. Call once during a function's init.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An SDK configuration for a local stand-in (DynamoDB Local, moto): fixed
/// region and dummy credentials, every service at `endpoint`.
pub async fn local_config(endpoint: &str) -> SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "switchboard-local");
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// The SDK clients the functions share. Cheap to clone (they are handles).
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub s3: aws_sdk_s3::Client,
}

/// An S3 client; with an endpoint of its own (a local stand-in) it addresses
/// buckets by path, as such servers expect.
fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            s3: s3_client(config),
        }
    }

    /// Clients for local stand-ins where DynamoDB and the other services live
    /// at different endpoints (DynamoDB Local and moto).
    pub async fn local(dynamodb_endpoint: &str, other_endpoint: &str) -> Self {
        let dynamodb = local_config(dynamodb_endpoint).await;
        let other = local_config(other_endpoint).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&dynamodb),
            sqs: aws_sdk_sqs::Client::new(&other),
            secrets: aws_sdk_secretsmanager::Client::new(&other),
            s3: s3_client(&other),
        }
    }
}

/// What [`warm_up`] should touch: the services a function will call.
#[derive(Debug, Clone, Copy, Default)]
pub struct WarmUp<'a> {
    /// A table the function may describe (`dynamodb:DescribeTable`).
    pub dynamodb_table: Option<&'a str>,
    /// A queue the function may read attributes of (`sqs:GetQueueAttributes`).
    pub sqs_queue_url: Option<&'a str>,
}

/// Opens the first (TLS) connection to each service the function uses during
/// init, with one cheap call each, so that the first message does not pay for
/// it. The connection stays in the client's pool. Failures are logged and
/// otherwise ignored: the real call will report them. Bounded by `timeout`.
pub async fn warm_up(clients: &Clients, targets: WarmUp<'_>, timeout: Duration) {
    let dynamodb = async {
        if let Some(table) = targets.dynamodb_table {
            let result = clients
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await;
            if let Err(error) = result {
                tracing::debug!(table, error = %crate::error_chain(&error), "DynamoDB warm-up call failed");
            }
        }
    };
    let sqs = async {
        if let Some(url) = targets.sqs_queue_url {
            let result = clients
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await;
            if let Err(error) = result {
                tracing::debug!(queue = url, error = %crate::error_chain(&error), "SQS warm-up call failed");
            }
        }
    };
    if tokio::time::timeout(timeout, futures::future::join(dynamodb, sqs))
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "AWS warm-up timed out"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_names_every_missing_variable() {
        let error = AwsResources::from_lookup(|name| {
            (name != "SWITCHBOARD_GAPS_TABLE" && name != "SWITCHBOARD_INBOUND_QUEUE_URL")
                .then(|| format!("v-{name}"))
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("SWITCHBOARD_GAPS_TABLE"), "{error}");
        assert!(error.contains("SWITCHBOARD_INBOUND_QUEUE_URL"), "{error}");
        assert!(!error.contains("SWITCHBOARD_KB_TABLE"), "{error}");
    }

    #[test]
    fn from_lookup_maps_each_variable_to_its_field() {
        let resources = AwsResources::from_lookup(|name| Some(format!("v-{name}"))).unwrap();
        assert_eq!(resources.sessions_table, "v-SWITCHBOARD_SESSIONS_TABLE");
        assert_eq!(resources.kb_table, "v-SWITCHBOARD_KB_TABLE");
        assert_eq!(
            resources.queue_url(QueueName::Inbound),
            "v-SWITCHBOARD_INBOUND_QUEUE_URL"
        );
        assert_eq!(
            resources.queue_url(QueueName::EscalationPriority),
            "v-SWITCHBOARD_ESCALATION_PRIORITY_QUEUE_URL"
        );
        assert_eq!(
            resources.queue_url(QueueName::EscalationStandard),
            "v-SWITCHBOARD_ESCALATION_STANDARD_QUEUE_URL"
        );
        let round_trip = AwsResources::from_lookup(|name| {
            resources
                .to_env()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        })
        .unwrap();
        assert_eq!(round_trip, resources);
    }
}
