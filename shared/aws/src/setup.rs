//! Creates the tables and queues of `template.yaml` (same keys, index, TTL
//! attribute, dead-letter queues) for tests and local set-ups. Idempotent:
//! what exists already is kept.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::config::{AwsResources, Clients};
use crate::dynamo::TTL_ATTRIBUTE;
use crate::error::AwsError;

/// One key attribute: name and whether it is a number (else a string).
type KeyAttr = (&'static str, ScalarAttributeType);

/// The layout of one table, as in `template.yaml`.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
    pub indexes: Vec<IndexSpec>,
}

/// A global secondary index.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash: KeyAttr,
    pub range: KeyAttr,
    /// The attributes projected besides the keys; empty: all of them.
    pub includes: &'static [&'static str],
}

fn string(name: &'static str) -> KeyAttr {
    (name, ScalarAttributeType::S)
}

pub fn sessions_table() -> TableSpec {
    TableSpec {
        hash: string("conversation"),
        range: None,
        indexes: vec![
            // The agents' list reads the summary, never the transcript.
            IndexSpec {
                name: crate::dynamo::waiting_index(),
                hash: string("waiting"),
                range: ("waiting_since_ms", ScalarAttributeType::N),
                includes: &["summary"],
            },
            // A customer's conversations, by their brief.
            IndexSpec {
                name: crate::dynamo::customer_index(),
                hash: string("customer"),
                range: ("updated_at_ms", ScalarAttributeType::N),
                includes: &["brief"],
            },
        ],
    }
}
pub fn customers_table() -> TableSpec {
    TableSpec {
        hash: string("customer"),
        range: None,
        indexes: Vec::new(),
    }
}
pub fn idempotency_table() -> TableSpec {
    TableSpec {
        hash: string("id"),
        range: None,
        indexes: Vec::new(),
    }
}
pub fn feedback_table() -> TableSpec {
    TableSpec {
        hash: string("conversation"),
        range: Some(string("feedback_id")),
        indexes: Vec::new(),
    }
}
pub fn gaps_table() -> TableSpec {
    TableSpec {
        hash: string("question_key"),
        range: None,
        indexes: vec![IndexSpec {
            name: crate::dynamo::gaps_index(),
            hash: string("kind"),
            range: ("count", ScalarAttributeType::N),
            includes: &[],
        }],
    }
}
pub fn credentials_table() -> TableSpec {
    TableSpec {
        hash: string("credential"),
        range: None,
        indexes: Vec::new(),
    }
}
pub fn kb_table() -> TableSpec {
    TableSpec {
        hash: string("kb"),
        range: Some(string("entry")),
        indexes: Vec::new(),
    }
}

fn build_error(table: &str) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> AwsError + '_ {
    move |e| AwsError::dynamo("CreateTable", table, e)
}

fn key(name: &str, key_type: KeyType, table: &str) -> Result<KeySchemaElement, AwsError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_error(table))
}

/// Creates `table` with `spec` (on demand) and turns on TTL on `expires_at`.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    spec: &TableSpec,
) -> Result<(), AwsError> {
    let mut attributes = vec![spec.hash.clone()];
    attributes.extend(spec.range.clone());
    for index in &spec.indexes {
        attributes.push(index.hash.clone());
        attributes.push(index.range.clone());
    }
    attributes.sort_by_key(|(name, _)| *name);
    attributes.dedup_by_key(|(name, _)| *name);

    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(build_error(table))?,
        );
    }
    request = request.key_schema(key(spec.hash.0, KeyType::Hash, table)?);
    if let Some((range, _)) = &spec.range {
        request = request.key_schema(key(range, KeyType::Range, table)?);
    }
    for index in &spec.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash.0, KeyType::Hash, table)?)
                .key_schema(key(index.range.0, KeyType::Range, table)?)
                .projection(if index.includes.is_empty() {
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build()
                } else {
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            index.includes.iter().map(|a| (*a).to_owned()).collect(),
                        ))
                        .build()
                })
                .build()
                .map_err(build_error(table))?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(error) => return Err(AwsError::dynamo("CreateTable", table, error)),
    }
    wait_until_active(client, table).await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| AwsError::dynamo("UpdateTimeToLive", table, e))?,
        )
        .send()
        .await
        .map(|_| ())
        .or_else(|error| {
            // Turning TTL on twice is refused; that is fine.
            let message = error
                .as_service_error()
                .and_then(|e| e.meta().message())
                .unwrap_or_default();
            if message.contains("already enabled") {
                Ok(())
            } else {
                Err(AwsError::dynamo("UpdateTimeToLive", table, error))
            }
        })
}

async fn wait_until_active(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), AwsError> {
    for _ in 0..120 {
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("DescribeTable", table, e))?;
        if output.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(AwsError::Config(format!(
        "table {table} did not become active within a minute"
    )))
}

/// The template's `MaximumMessageSize` (256 KiB): ten of them fit the 6 MB
/// payload of a Lambda invocation. Larger bodies travel through the payload bucket.
pub const MAX_MESSAGE_SIZE: u32 = 256 * 1024;

/// Settings of a queue and its dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    pub fifo: bool,
    pub visibility_timeout_s: u32,
    /// Deliveries before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// How long the dead-letter queue keeps messages (at most 14 days).
    pub dlq_retention_s: u32,
    /// Largest message body, as in the template.
    pub max_message_size: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            fifo: false,
            visibility_timeout_s: crate::batch::ConsumerSettings::DEFAULT_VISIBILITY_SECS,
            max_receive_count: crate::batch::ConsumerSettings::DEFAULT_MAX_RECEIVES,
            dlq_retention_s: 14 * 86_400,
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

/// The URL and ARN of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

/// Creates queue `name` (`.fifo` is appended for FIFO queues) with a
/// dead-letter queue `name-dlq` and a redrive policy. Returns (queue, dlq).
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    options: QueueOptions,
) -> Result<(QueueRef, QueueRef), AwsError> {
    let suffix = if options.fifo { ".fifo" } else { "" };
    let dlq = create_queue(
        sqs,
        &format!("{name}-dlq{suffix}"),
        options.fifo,
        &[
            (
                QueueAttributeName::MessageRetentionPeriod,
                options.dlq_retention_s.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                options.max_message_size.to_string(),
            ),
        ],
    )
    .await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq.arn,
        "maxReceiveCount": options.max_receive_count,
    })
    .to_string();
    let queue = create_queue(
        sqs,
        &format!("{name}{suffix}"),
        options.fifo,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                options.visibility_timeout_s.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
            (
                QueueAttributeName::MaximumMessageSize,
                options.max_message_size.to_string(),
            ),
        ],
    )
    .await?;
    Ok((queue, dlq))
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    fifo: bool,
    attributes: &[(QueueAttributeName, String)],
) -> Result<QueueRef, AwsError> {
    let mut request = sqs.create_queue().queue_name(name);
    if fifo {
        request = request
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    }
    for (attribute, value) in attributes {
        request = request.attributes(attribute.clone(), value);
    }
    let url = request
        .send()
        .await
        .map_err(|e| AwsError::sqs("CreateQueue", name, e))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::Config(format!("CreateQueue {name} returned no URL")))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::sqs("GetQueueAttributes", &url, e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| AwsError::Config(format!("queue {name} has no ARN")))?;
    Ok(QueueRef { url, arn })
}

/// Creates every table and queue of the template, named `{prefix}-sessions`,
/// `{prefix}-inbound.fifo` and so on, and returns where they are.
pub async fn create_tables_and_queues(
    clients: &Clients,
    prefix: &str,
) -> Result<AwsResources, AwsError> {
    let tables = [
        ("sessions", sessions_table()),
        ("customers", customers_table()),
        ("idempotency", idempotency_table()),
        ("feedback", feedback_table()),
        ("gaps", gaps_table()),
        ("kb", kb_table()),
        ("credentials", credentials_table()),
    ];
    for (suffix, spec) in &tables {
        create_table(&clients.dynamodb, &format!("{prefix}-{suffix}"), spec).await?;
    }
    let inbound = QueueOptions {
        fifo: true,
        ..QueueOptions::default()
    };
    let (inbound, inbound_dlq) =
        create_queue_with_dlq(&clients.sqs, &format!("{prefix}-inbound"), inbound).await?;
    let (priority, priority_dlq) = create_queue_with_dlq(
        &clients.sqs,
        &format!("{prefix}-escalation-priority"),
        QueueOptions::default(),
    )
    .await?;
    let (standard, standard_dlq) = create_queue_with_dlq(
        &clients.sqs,
        &format!("{prefix}-escalation-standard"),
        QueueOptions::default(),
    )
    .await?;
    let (timers, timers_dlq) = create_queue_with_dlq(
        &clients.sqs,
        &format!("{prefix}-timers"),
        QueueOptions::default(),
    )
    .await?;
    let (outbound, outbound_dlq) = create_queue_with_dlq(
        &clients.sqs,
        &format!("{prefix}-outbound"),
        QueueOptions::default(),
    )
    .await?;
    Ok(AwsResources {
        sessions_table: format!("{prefix}-sessions"),
        customers_table: format!("{prefix}-customers"),
        idempotency_table: format!("{prefix}-idempotency"),
        feedback_table: format!("{prefix}-feedback"),
        gaps_table: format!("{prefix}-gaps"),
        kb_table: format!("{prefix}-kb"),
        credentials_table: format!("{prefix}-credentials"),
        inbound_queue_url: inbound.url,
        escalation_priority_queue_url: priority.url,
        escalation_standard_queue_url: standard.url,
        outbound_queue_url: outbound.url,
        inbound_dead_letter_queue_url: inbound_dlq.url,
        escalation_priority_dead_letter_queue_url: priority_dlq.url,
        escalation_standard_dead_letter_queue_url: standard_dlq.url,
        timers_queue_url: timers.url,
        timers_dead_letter_queue_url: timers_dlq.url,
        outbound_dead_letter_queue_url: outbound_dlq.url,
        payload_bucket: create_bucket(&clients.s3, &format!("{prefix}-payloads")).await?,
        reports_bucket: create_bucket(&clients.s3, &format!("{prefix}-reports")).await?,
    })
}

/// Creates the payload bucket (names are lower case); one that exists already is kept.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<String, AwsError> {
    let name = name.to_ascii_lowercase();
    match s3.create_bucket().bucket(&name).send().await {
        Ok(_) => Ok(name),
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) =>
        {
            Ok(name)
        }
        Err(error) => Err(AwsError::s3("CreateBucket", &name, error)),
    }
}
