//! Where the tables and queues are, and the SDK clients that reach them.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use serde::{Deserialize, Serialize};
use switchboard_domain::QueueName;

/// Names of the tables and URLs of the queues, as the SAM template passes
/// them to every function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsResources {
    pub sessions_table: String,
    pub customers_table: String,
    pub idempotency_table: String,
    pub feedback_table: String,
    pub gaps_table: String,
    pub kb_table: String,
    pub credentials_table: String,
    pub inbound_queue_url: String,
    pub escalation_priority_queue_url: String,
    pub escalation_standard_queue_url: String,
    /// Delayed jobs (reassurance and service-level timers): a standard queue.
    #[serde(default)]
    pub timers_queue_url: String,
    /// Every reply on its way to a customer.
    pub outbound_queue_url: String,
    /// Where each queue's consumer puts a message that failed for good.
    pub inbound_dead_letter_queue_url: String,
    pub escalation_priority_dead_letter_queue_url: String,
    pub escalation_standard_dead_letter_queue_url: String,
    #[serde(default)]
    pub timers_dead_letter_queue_url: String,
    pub outbound_dead_letter_queue_url: String,
    /// The S3 bucket for bodies too large for an SQS message.
    pub payload_bucket: String,
    /// The S3 bucket the weekly report pages go to.
    #[serde(default)]
    pub reports_bucket: String,
}

impl AwsResources {
    pub fn queue_url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Inbound => &self.inbound_queue_url,
            QueueName::EscalationPriority => &self.escalation_priority_queue_url,
            QueueName::EscalationStandard => &self.escalation_standard_queue_url,
            QueueName::Timers => &self.timers_queue_url,
            QueueName::Outbound => &self.outbound_queue_url,
        }
    }

    pub fn dead_letter_queue_url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Inbound => &self.inbound_dead_letter_queue_url,
            QueueName::EscalationPriority => &self.escalation_priority_dead_letter_queue_url,
            QueueName::EscalationStandard => &self.escalation_standard_dead_letter_queue_url,
            QueueName::Timers => &self.timers_dead_letter_queue_url,
            QueueName::Outbound => &self.outbound_dead_letter_queue_url,
        }
    }
}

/// The SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SQS` /
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` when set), with the latest behaviour
/// defaults. Call once during a function's init.
pub async fn aws_config() -> SdkConfig {
    loader().load().await
}

/// The SDK configuration inside a Lambda function, from the variables Lambda
/// sets: the region (`AWS_REGION`) and the function role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and
/// `AWS_ENDPOINT_URL` when set. Unlike [`aws_config`] it reads no profile
/// files and has no SSO, web identity, ECS or IMDS provider, which a function
/// never uses: leaving them out keeps ~300 KiB (an STS client among them) out
/// of every function's binary. The clients add their defaults (retries,
/// timeouts, sleep, identity cache) as they do under [`aws_config`].
pub fn lambda_config() -> SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_sdk_dynamodb::config::SharedCredentialsProvider;
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|region| !region.is_empty())
        .map(aws_config::Region::new);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https_client())
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .region(region);
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// The SDK's HTTPS client on rustls with ring, the TLS stack the rest of the
/// product uses.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK's defaults, with [`https_client`].
fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// An SDK configuration for a local stand-in (DynamoDB Local, moto): fixed
/// region and dummy credentials, every service at `endpoint`.
pub async fn local_config(endpoint: &str) -> SdkConfig {
    local_config_as("test", endpoint).await
}

/// [`local_config`] signing as `access_key_id`: the tests' recording proxy
/// attributes each call to the function whose logical id signs it.
pub async fn local_config_as(access_key_id: &str, endpoint: &str) -> SdkConfig {
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        access_key_id,
        "test",
        None,
        None,
        "switchboard-local",
    );
    loader()
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

    /// Clients of one function, identified by its template logical id, through
    /// one endpoint for every service (the tests' recording proxy).
    pub async fn local_as(function_logical_id: &str, endpoint: &str) -> Self {
        Self::new(&local_config_as(function_logical_id, endpoint).await)
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
