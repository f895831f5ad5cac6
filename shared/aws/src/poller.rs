//! A stand-in for Lambda's SQS event source mapping, for local runs and
//! tests: receives a batch, hands it over as the `SqsEvent` Lambda would
//! build, and deletes what the partial batch response does not name.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use crate::error::AwsError;
use crate::setup::QueueRef;

#[derive(Debug, Clone)]
pub struct EventSourcePoller {
    sqs: aws_sdk_sqs::Client,
    queue: QueueRef,
    region: String,
    /// Records per event, 1 to 10.
    pub batch_size: i32,
    /// Seconds a received batch stays invisible; `None` keeps the queue's.
    pub visibility_timeout_s: Option<i32>,
    /// Make failed records visible again at once (visibility 0, in batch
    /// order) instead of letting their visibility timeout run out as Lambda
    /// does. Quicker local runs; also keeps a FIFO group in order on moto,
    /// which redelivers a group's timed-out messages out of order.
    pub retry_failed_at_once: bool,
}

impl EventSourcePoller {
    pub fn new(sqs: aws_sdk_sqs::Client, queue: QueueRef) -> Self {
        let region = queue
            .arn
            .split(':')
            .nth(3)
            .unwrap_or("us-east-1")
            .to_owned();
        Self {
            sqs,
            queue,
            region,
            batch_size: 10,
            visibility_timeout_s: None,
            retry_failed_at_once: false,
        }
    }

    /// Receives up to `batch_size` messages (waiting up to `wait_s` seconds)
    /// as an event; `None` if none came.
    pub async fn receive(&self, wait_s: i32) -> Result<Option<SqsEvent>, AwsError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .set_visibility_timeout(self.visibility_timeout_s)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| AwsError::sqs("ReceiveMessage", &self.queue.url, e))?;
        let records: Vec<SqsMessage> = output.messages().iter().map(|m| self.record(m)).collect();
        if records.is_empty() {
            return Ok(None);
        }
        let mut event = SqsEvent::default();
        event.records = records;
        Ok(Some(event))
    }

    fn record(&self, message: &aws_sdk_sqs::types::Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id().map(str::to_owned);
        record.receipt_handle = message.receipt_handle().map(str::to_owned);
        record.body = message.body().map(str::to_owned);
        record.md5_of_body = message.md5_of_body().map(str::to_owned);
        record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
        if let Some(attributes) = message.attributes() {
            record.attributes = attributes
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
        }
        if let Some(attributes) = message.message_attributes() {
            for (name, value) in attributes {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = value.string_value().map(str::to_owned);
                attribute.data_type = Some(value.data_type().to_owned());
                record.message_attributes.insert(name.clone(), attribute);
            }
        }
        record.event_source_arn = Some(self.queue.arn.clone());
        record.event_source = Some("aws:sqs".to_owned());
        record.aws_region = Some(self.region.clone());
        record
    }

    /// Deletes the records of `event` that `response` does not report failed,
    /// as Lambda does; an empty identifier fails the whole batch.
    pub async fn settle(
        &self,
        event: &SqsEvent,
        response: &SqsBatchResponse,
    ) -> Result<usize, AwsError> {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        if failed.contains(&"") {
            return Ok(0);
        }
        if self.retry_failed_at_once {
            for record in &event.records {
                let (Some(id), Some(handle)) = (
                    record.message_id.as_deref(),
                    record.receipt_handle.as_deref(),
                ) else {
                    continue;
                };
                if failed.contains(&id) {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&self.queue.url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::sqs("ChangeMessageVisibility", &self.queue.url, e)
                        })?;
                }
            }
        }
        let entries = event
            .records
            .iter()
            .filter(|r| {
                r.message_id
                    .as_deref()
                    .is_some_and(|id| !failed.contains(&id))
            })
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .set_receipt_handle(r.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if entries.is_empty() {
            return Ok(0);
        }
        let count = entries.len();
        let output = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AwsError::sqs("DeleteMessageBatch", &self.queue.url, e))?;
        Ok(count - output.failed().len())
    }
}
