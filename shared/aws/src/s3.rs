//! Reading objects from S3: the raw mail Amazon SES's S3 action stores.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use switchboard_domain::{ObjectReader, StoreError};

use crate::error::AwsError;

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
