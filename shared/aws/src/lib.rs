//! Switchboard on AWS: the store ports on DynamoDB, the queue port on SQS,
//! channel secrets from Secrets Manager, and the partial-batch helper for
//! Lambda functions fed by SQS.
//!
//! Build the SDK configuration and [`Clients`] once during a function's init,
//! call [`warm_up`] there too, then construct the adapters from
//! [`AwsResources`] (from the function's configuration). Nothing here leaks AWS types into the domain:
//! every adapter implements a port of `switchboard-domain` and maps its errors
//! into the domain's `StoreError` / `QueueError` with the SDK error as source.

pub mod batch;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod poller;
pub mod s3;
pub mod secrets;
pub mod setup;
pub mod sqs;

pub use aws_lambda_events;
pub use batch::{
    ConsumerSettings, SqsConsumer, is_fifo_record, message_group, process_sqs_batch, receive_count,
};
pub use config::{AwsResources, Clients, WarmUp, aws_config, lambda_config, local_config, warm_up};
pub use dynamo::{
    DynamoCounterStore, DynamoCredentialStore, DynamoCustomerData, DynamoCustomerStore,
    DynamoFeedbackStore, DynamoGapLog, DynamoIdempotencyStore, DynamoKnowledgeBase,
    DynamoReportRecords, DynamoSessionStore, Retention, TTL_ATTRIBUTE,
};
pub use error::{AwsError, error_chain};
pub use poller::EventSourcePoller;
pub use s3::S3ObjectReader;
pub use s3::{S3PayloadStore, S3ReportArchive};
pub use secrets::{load_json_secret, secret_field};
pub use setup::{
    QueueOptions, QueueRef, create_bucket, create_queue_with_dlq, create_tables_and_queues,
};
pub use sqs::{BodyError, SqsQueueProducer, fifo_id, is_fifo_url, message_body};

/// Every store adapter on the tables of `resources`, sharing one client.
#[derive(Debug, Clone)]
pub struct DynamoStores {
    pub sessions: DynamoSessionStore,
    pub customers: DynamoCustomerStore,
    pub idempotency: DynamoIdempotencyStore,
    pub feedback: DynamoFeedbackStore,
    pub gaps: DynamoGapLog,
    pub kb: DynamoKnowledgeBase,
    pub credentials: DynamoCredentialStore,
    pub counters: DynamoCounterStore,
}

/// The payload store on the stack's bucket.
pub fn payload_store(clients: &Clients, resources: &AwsResources) -> S3PayloadStore {
    S3PayloadStore::new(clients.s3.clone(), &resources.payload_bucket)
}

impl DynamoStores {
    pub fn new(client: &aws_sdk_dynamodb::Client, resources: &AwsResources) -> Self {
        Self {
            sessions: DynamoSessionStore::new(client.clone(), &resources.sessions_table),
            customers: DynamoCustomerStore::new(client.clone(), &resources.customers_table),
            idempotency: DynamoIdempotencyStore::new(client.clone(), &resources.idempotency_table),
            feedback: DynamoFeedbackStore::new(client.clone(), &resources.feedback_table),
            gaps: DynamoGapLog::new(client.clone(), &resources.gaps_table),
            kb: DynamoKnowledgeBase::new(client.clone(), &resources.kb_table),
            credentials: DynamoCredentialStore::new(client.clone(), &resources.credentials_table),
            counters: DynamoCounterStore::new(client.clone(), &resources.idempotency_table),
        }
    }
}
