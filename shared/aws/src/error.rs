//! Errors of the AWS adapters, and their mapping into the domain's errors.
//!
//! SDK errors are kept as the `source` so that the whole cause chain (service
//! error code, HTTP status, connection trouble) reaches whoever logs it. No
//! message body, item content or secret value is ever put into an error.

use switchboard_domain::{BoxError, QueueError, QueueName, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// A DynamoDB call failed.
    #[error("DynamoDB {operation} on table {table} failed")]
    DynamoDb {
        operation: &'static str,
        table: String,
        #[source]
        source: BoxError,
    },
    /// An SQS call failed.
    #[error("SQS {operation} on {queue} failed")]
    Sqs {
        operation: &'static str,
        queue: String,
        #[source]
        source: BoxError,
    },
    /// An S3 call failed.
    #[error("S3 {operation} in bucket {bucket} failed")]
    S3 {
        operation: &'static str,
        bucket: String,
        #[source]
        source: BoxError,
    },
    /// A Secrets Manager call failed.
    #[error("Secrets Manager {operation} failed")]
    SecretsManager {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A batch call kept leaving work unprocessed (throttling).
    #[error("DynamoDB {operation} on table {table} left {pending} requests unprocessed")]
    Unprocessed {
        operation: &'static str,
        table: String,
        pending: usize,
    },
    /// A stored item does not have the shape this crate writes.
    #[error("item {key} in table {table} is malformed: {detail}")]
    Malformed {
        table: String,
        key: String,
        detail: String,
    },
    /// A required setting is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
}

impl AwsError {
    pub(crate) fn dynamo(
        operation: &'static str,
        table: &str,
        source: impl Into<BoxError>,
    ) -> Self {
        AwsError::DynamoDb {
            operation,
            table: table.to_owned(),
            source: source.into(),
        }
    }

    pub(crate) fn s3(operation: &'static str, bucket: &str, source: impl Into<BoxError>) -> Self {
        AwsError::S3 {
            operation,
            bucket: bucket.to_owned(),
            source: source.into(),
        }
    }

    pub(crate) fn sqs(operation: &'static str, queue: &str, source: impl Into<BoxError>) -> Self {
        AwsError::Sqs {
            operation,
            queue: queue.to_owned(),
            source: source.into(),
        }
    }
}

impl From<AwsError> for StoreError {
    fn from(error: AwsError) -> Self {
        match error {
            AwsError::Malformed { ref key, .. } => StoreError::Corrupt {
                key: key.clone(),
                source: Box::new(error),
            },
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

pub(crate) fn queue_error(queue: QueueName, error: AwsError) -> QueueError {
    QueueError {
        queue,
        source: Box::new(error),
    }
}

pub use switchboard_domain::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Cause;

    #[test]
    fn domain_errors_keep_the_cause_chain() {
        let store: StoreError = AwsError::dynamo("PutItem", "sessions", Cause).into();
        assert!(matches!(store, StoreError::Unavailable(_)));
        assert_eq!(
            error_chain(&store),
            "store unavailable: DynamoDB PutItem on table sessions failed: connection refused"
        );
        let corrupt: StoreError = AwsError::Malformed {
            table: "t".into(),
            key: "k".into(),
            detail: "attribute version is missing".into(),
        }
        .into();
        assert!(matches!(corrupt, StoreError::Corrupt { ref key, .. } if key == "k"));
        let queue = queue_error(QueueName::Inbound, AwsError::sqs("SendMessage", "q", Cause));
        assert_eq!(
            error_chain(&queue),
            "queue Inbound unavailable: SQS SendMessage on q failed: connection refused"
        );
    }
}
