//! S3: the payload port (bodies too large for an SQS message, one object
//! each), and reading the raw mail Amazon SES's S3 action stores.
//!
//! Payloads: The bucket (template.yaml) is private and encrypted, and a lifecycle
//! rule deletes objects after 20 days, longer than a message can stay in a
//! queue and its dead-letter queue; so `expires_at_ms` needs no per-object
//! setting.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use switchboard_domain::{ObjectReader, PayloadStore, StoreError};

use crate::error::AwsError;

#[derive(Debug, Clone)]
pub struct S3PayloadStore {
    client: Client,
    bucket: String,
}

impl S3PayloadStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl PayloadStore for S3PayloadStore {
    async fn put(&self, key: &str, payload: &[u8], _expires_at_ms: i64) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(payload.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::s3("PutObject", &self.bucket, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                return match error.into_service_error() {
                    GetObjectError::NoSuchKey(_) => Ok(None),
                    other => Err(AwsError::s3("GetObject", &self.bucket, other).into()),
                };
            }
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| AwsError::s3("GetObject", &self.bucket, e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

/// Reads objects of any bucket the role may read (SES's raw mail).
#[derive(Debug, Clone)]
pub struct S3ObjectReader {
    client: Client,
}

impl S3ObjectReader {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ObjectReader for S3ObjectReader {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                return match error.into_service_error() {
                    GetObjectError::NoSuchKey(_) => Ok(None),
                    other => Err(AwsError::s3("GetObject", bucket, other).into()),
                };
            }
        };
        let length = output.content_length().unwrap_or_default();
        if usize::try_from(length).map_or(true, |length| length > max_bytes) {
            return Err(StoreError::Corrupt {
                key: format!("s3://{bucket}/…"),
                source: format!("object of {length} bytes exceeds {max_bytes}").into(),
            });
        }
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

/// Report pages in a private bucket; the link opens the object in the S3
/// console, so reading a report takes an AWS sign-in allowed to read it.
#[derive(Debug, Clone)]
pub struct S3ReportArchive {
    client: Client,
    bucket: String,
}

impl S3ReportArchive {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl switchboard_domain::ReportArchive for S3ReportArchive {
    async fn publish(&self, name: &str, html: &str) -> Result<String, StoreError> {
        let key = format!("reports/{name}");
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("text/html; charset=utf-8")
            .body(ByteStream::from(html.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::s3("PutObject", &self.bucket, e))?;
        let region = self
            .client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        Ok(format!(
            "https://console.aws.amazon.com/s3/object/{}?region={region}&prefix={key}",
            self.bucket
        ))
    }
}
