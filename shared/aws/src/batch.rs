//! Lambda functions fed by SQS: partial batch responses
//! (`FunctionResponseTypes: [ReportBatchItemFailures]`), and [`SqsConsumer`],
//! which gives SQS the rules the local queue runner follows
//! (`switchboard_domain::jobs`):
//!
//! * each record's lease ends with the invocation (or the visibility timeout,
//!   if sooner), so claims taken for it lapse before SQS can redeliver it;
//! * a transient failure hides the record for the retry policy's backoff
//!   (`ChangeMessageVisibility`), so `maxReceiveCount` deliveries span an
//!   outage of about an hour and a half instead of a quarter of an hour;
//! * a permanent failure goes to the dead-letter queue at once.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use futures::StreamExt;
use switchboard_domain::{
    BoxError, Clock, JobFailure, JobLease, QueueName, RetryPolicy, SystemClock,
};

use crate::config::AwsResources;
use crate::error::{AwsError, error_chain};
use crate::sqs::{ENCODING_ATTRIBUTE, is_fifo_url, message_body};

/// Whether the record came from a FIFO queue: its source ARN ends in `.fifo`
/// or it carries a `MessageGroupId` attribute.
pub fn is_fifo_record(message: &SqsMessage) -> bool {
    message
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with(".fifo"))
        || message.attributes.contains_key("MessageGroupId")
}

/// The record's FIFO message group, if it has one.
pub fn message_group(message: &SqsMessage) -> Option<&str> {
    message.attributes.get("MessageGroupId").map(String::as_str)
}

/// How many times SQS has delivered the record (1 on the first delivery).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Runs `handler` on each record of the batch, in order, and reports the
/// records to retry.
///
/// A handler returns `Ok(())` when the record is done (including records it
/// decided to drop for good) and `Err` when the record should be delivered
/// again. On a FIFO queue, once a record of a message group fails, the later
/// records of that group in this batch are reported failed without being
/// handled, so the group's order holds; other groups go on.
///
/// A failed record without a message id cannot be named, so it is reported
/// with an empty identifier, which makes Lambda retry the whole batch.
/// Errors are logged with their cause chain; record bodies never are.
pub async fn process_sqs_batch<F, Fut, E>(event: SqsEvent, mut handler: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let mut response = SqsBatchResponse::default();
    let mut stopped_groups: HashSet<String> = HashSet::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let group = is_fifo_record(&message)
            .then(|| message_group(&message).unwrap_or_default().to_owned());
        if let Some(group) = group.as_deref().filter(|g| stopped_groups.contains(*g)) {
            tracing::info!(message_id = %id, group, "skipped: an earlier record of its group failed");
            response.add_failure(id);
            continue;
        }
        let receive_count = receive_count(&message);
        if let Err(error) = handler(message).await {
            let error: BoxError = error.into();
            tracing::warn!(
                message_id = %id,
                group = group.as_deref().unwrap_or_default(),
                receive_count,
                error = %error_chain(error.as_ref()),
                "record failed; it will be retried"
            );
            if let Some(group) = group {
                stopped_groups.insert(group);
            }
            response.add_failure(id);
        }
    }
    response
}

/// How the consumer functions treat their queues. The template gives the
/// queues the same visibility timeout and `maxReceiveCount` as it gives the
/// functions (`SWITCHBOARD_WORKERS__VISIBILITY_SECS`, `__MAX_ATTEMPTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    pub visibility: Duration,
    /// `max_attempts` is the queue's `maxReceiveCount`.
    pub retry: RetryPolicy,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(u64::from(Self::DEFAULT_VISIBILITY_SECS)),
            retry: RetryPolicy {
                max_attempts: Self::DEFAULT_MAX_RECEIVES,
                ..RetryPolicy::default()
            },
        }
    }
}

impl ConsumerSettings {
    /// Six times the consumers' 30 s timeout, as AWS recommends for SQS event sources.
    pub const DEFAULT_VISIBILITY_SECS: u32 = 180;
    /// With the default backoff: about an hour and a half of retries.
    pub const DEFAULT_MAX_RECEIVES: u32 = 14;
}

/// Message attributes a record dead-lettered by [`SqsConsumer`] carries:
/// what failed, and the error (never message content).
pub const CAUSE_ATTRIBUTE: &str = "switchboard-cause";
pub const ERROR_ATTRIBUTE: &str = "switchboard-error";

#[derive(Debug, Clone)]
struct ConsumedQueue {
    /// The queue's name, the last part of its ARN and URL.
    name: String,
    /// What the metrics call it: `inbound`, `escalation_priority`, ...; the
    /// physical name where the queue was given by URL only.
    kind: String,
    url: String,
    dead_letter_url: String,
}

/// Handles the records of an SQS event with leases, backoff and dead letters.
#[derive(Debug, Clone)]
pub struct SqsConsumer {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<ConsumedQueue>,
    settings: ConsumerSettings,
    /// Records of a standard queue handled at once (FIFO records go one by one).
    pub concurrency: usize,
}

fn last_segment(arn_or_url: &str) -> &str {
    arn_or_url
        .trim_end_matches('/')
        .rsplit([':', '/'])
        .next()
        .unwrap_or_default()
}

impl SqsConsumer {
    /// A consumer of `queues` of the stack described by `resources`.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        resources: &AwsResources,
        queues: &[QueueName],
        settings: ConsumerSettings,
    ) -> Self {
        let queues = queues
            .iter()
            .map(|queue| {
                let url = resources.queue_url(*queue).to_owned();
                ConsumedQueue {
                    name: last_segment(&url).to_owned(),
                    kind: queue.as_str().to_owned(),
                    dead_letter_url: resources.dead_letter_queue_url(*queue).to_owned(),
                    url,
                }
            })
            .collect();
        Self {
            sqs,
            queues,
            settings,
            concurrency: 10,
        }
    }

    /// A consumer of explicit `(queue URL, dead-letter queue URL)` pairs.
    pub fn with_queues(
        sqs: aws_sdk_sqs::Client,
        queues: impl IntoIterator<Item = (String, String)>,
        settings: ConsumerSettings,
    ) -> Self {
        let queues = queues
            .into_iter()
            .map(|(url, dead_letter_url)| ConsumedQueue {
                name: last_segment(&url).to_owned(),
                kind: last_segment(&url).to_owned(),
                url,
                dead_letter_url,
            })
            .collect();
        Self {
            sqs,
            queues,
            settings,
            concurrency: 10,
        }
    }

    fn queue_of(&self, record: &SqsMessage) -> Option<&ConsumedQueue> {
        let name = last_segment(record.event_source_arn.as_deref()?);
        self.queues.iter().find(|q| q.name == name)
    }

    /// Runs `handler` on every record and reports the ones SQS must deliver
    /// again. `deadline_ms` is the invocation's deadline (unix ms; 0 when
    /// unknown). FIFO records go in order, and a failure holds the rest of
    /// its group; records of a standard queue run side by side.
    pub async fn process<F, Fut, E>(
        &self,
        event: SqsEvent,
        deadline_ms: i64,
        handler: F,
    ) -> SqsBatchResponse
    where
        F: Fn(Vec<u8>, JobLease) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: JobFailure,
    {
        let invoked_at_ms = SystemClock.now_ms();
        // The records were received (and their visibility timeout started)
        // before the invocation; the template keeps the visibility timeout
        // well above the function timeout, so the deadline is what ends the lease.
        let visibility_end = invoked_at_ms.saturating_add(
            i64::try_from(self.settings.visibility.as_millis()).unwrap_or(i64::MAX),
        );
        let lease_end = if deadline_ms > 0 {
            deadline_ms.min(visibility_end)
        } else {
            visibility_end
        };
        let handle = |record: SqsMessage| {
            let handler = &handler;
            async move {
                let id = record.message_id.clone().unwrap_or_default();
                let ok = self.handle_record(&record, lease_end, handler).await;
                (id, ok)
            }
        };
        let fifo = event.records.iter().any(is_fifo_record);
        let mut response = SqsBatchResponse::default();
        if fifo {
            let mut stopped_groups: HashSet<String> = HashSet::new();
            for record in event.records {
                let group = message_group(&record).unwrap_or_default().to_owned();
                if stopped_groups.contains(&group) {
                    tracing::info!(message_id = ?record.message_id, group, "skipped: an earlier record of its group failed");
                    response.add_failure(record.message_id.clone().unwrap_or_default());
                    continue;
                }
                let (id, ok) = handle(record).await;
                if !ok {
                    stopped_groups.insert(group);
                    response.add_failure(id);
                }
            }
        } else {
            let outcomes: Vec<(String, bool)> = futures::stream::iter(event.records)
                .map(handle)
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            for (id, ok) in outcomes {
                if !ok {
                    response.add_failure(id);
                }
            }
        }
        response
    }

    /// Whether the record is settled (done, or moved to the dead letters).
    async fn handle_record<F, Fut, E>(
        &self,
        record: &SqsMessage,
        lease_end: i64,
        handler: &F,
    ) -> bool
    where
        F: Fn(Vec<u8>, JobLease) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: JobFailure,
    {
        let id = record.message_id.as_deref().unwrap_or_default();
        let attempt = receive_count(record);
        let body = match message_body(record) {
            Ok(body) => body,
            Err(error) => {
                return self
                    .dead_letter(record, "unreadable", &error_chain(&error))
                    .await;
            }
        };
        let now_ms = SystemClock.now_ms();
        let lease = JobLease {
            attempt,
            started_at_ms: now_ms,
            until_ms: lease_end.max(now_ms),
        };
        let Err(failure) = handler(body, lease).await else {
            return true;
        };
        let cause = failure.cause_key();
        let error = error_chain(&failure);
        if failure.is_permanent() {
            return self.dead_letter(record, &cause, &error).await;
        }
        let retry = self.settings.retry;
        let delay_ms = retry.delay_ms(attempt, &failure);
        if retry.retries_after(attempt) {
            tracing::warn!(
                message_id = id,
                attempt,
                delay_ms,
                cause,
                error,
                "record failed; it will be retried"
            );
        } else {
            tracing::error!(
                message_id = id,
                attempt,
                cause,
                error,
                alarm = "dead_letter",
                "record failed its last attempt; SQS moves it to the dead-letter queue"
            );
        }
        self.hide_for(record, delay_ms).await;
        false
    }

    /// Keeps a failed record from being delivered again before `delay_ms`.
    /// Without it, it comes back after the queue's visibility timeout.
    async fn hide_for(&self, record: &SqsMessage, delay_ms: i64) {
        let (Some(queue), Some(handle)) = (self.queue_of(record), record.receipt_handle.as_deref())
        else {
            return;
        };
        // SQS accepts up to 12 hours.
        let seconds = (delay_ms / 1000).clamp(0, 12 * 60 * 60) as i32;
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        if let Err(error) = result {
            let error = AwsError::sqs("ChangeMessageVisibility", &queue.url, error);
            tracing::warn!(error = %error_chain(&error), "could not delay the retry; it comes back after the visibility timeout");
        }
    }

    /// Copies the record to its queue's dead-letter queue (same body and
    /// encoding, plus cause and error); whether that worked, in which case
    /// the record is done here.
    async fn dead_letter(&self, record: &SqsMessage, cause: &str, error: &str) -> bool {
        let id = record.message_id.as_deref().unwrap_or_default();
        let Some(queue) = self.queue_of(record) else {
            tracing::error!(
                message_id = id,
                "record from an unknown queue cannot be dead-lettered; it will be retried"
            );
            return false;
        };
        match self.send_to_dead_letters(queue, record, cause, error).await {
            Ok(()) => {
                switchboard_domain::telemetry::dead_lettered(&queue.kind);
                tracing::error!(
                    message_id = id,
                    cause,
                    error,
                    alarm = "dead_letter",
                    permanent = true,
                    "record failed for good; moved to the dead-letter queue"
                );
                true
            }
            Err(failure) => {
                tracing::error!(message_id = id, error = %error_chain(&failure), "could not dead-letter the record; it will be retried");
                false
            }
        }
    }

    async fn send_to_dead_letters(
        &self,
        queue: &ConsumedQueue,
        record: &SqsMessage,
        cause: &str,
        error: &str,
    ) -> Result<(), AwsError> {
        let url = &queue.dead_letter_url;
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| AwsError::sqs("SendMessage", url, e))
        };
        let body = record
            .body
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| " ".into());
        let error: String = error.chars().take(1024).collect();
        let mut request = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes(
                CAUSE_ATTRIBUTE,
                attribute(if cause.is_empty() { "other" } else { cause })?,
            )
            .message_attributes(
                ERROR_ATTRIBUTE,
                attribute(if error.is_empty() { "unknown" } else { &error })?,
            );
        if let Some(encoding) = record
            .message_attributes
            .get(ENCODING_ATTRIBUTE)
            .and_then(|a| a.string_value.as_deref())
        {
            request = request.message_attributes(ENCODING_ATTRIBUTE, attribute(encoding)?);
        }
        if is_fifo_url(url) {
            request = request
                .message_group_id(message_group(record).unwrap_or("dead-letters"))
                .message_deduplication_id(record.message_id.as_deref().unwrap_or("unknown"));
        }
        request
            .send()
            .await
            .map_err(|e| AwsError::sqs("SendMessage", url, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn record(id: &str, group: Option<&str>, source: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(format!("body-{id}"));
        message.event_source_arn = Some(source.to_owned());
        if let Some(group) = group {
            message
                .attributes
                .insert("MessageGroupId".into(), group.into());
        }
        message
    }

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    const FIFO: &str = "arn:aws:sqs:eu-west-1:1:inbound.fifo";
    const STANDARD: &str = "arn:aws:sqs:eu-west-1:1:escalation";

    #[tokio::test]
    async fn only_failed_records_are_reported_on_a_standard_queue() {
        let seen = Mutex::new(Vec::new());
        let batch = event(vec![
            record("a", None, STANDARD),
            record("b", None, STANDARD),
            record("c", None, STANDARD),
        ]);
        let response = process_sqs_batch(batch, |m| {
            let id = m.message_id.clone().unwrap();
            seen.lock().unwrap().push(id.clone());
            async move { if id == "b" { Err("poisoned") } else { Ok(()) } }
        })
        .await;
        assert_eq!(failures(&response), ["b"]);
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_fifo_failure_stops_the_rest_of_its_group_only() {
        let seen = Mutex::new(Vec::new());
        let batch = event(vec![
            record("g1-1", Some("g1"), FIFO),
            record("g2-1", Some("g2"), FIFO),
            record("g1-2", Some("g1"), FIFO),
            record("g2-2", Some("g2"), FIFO),
            record("g1-3", Some("g1"), FIFO),
        ]);
        let response = process_sqs_batch(batch, |m| {
            let id = m.message_id.clone().unwrap();
            seen.lock().unwrap().push(id.clone());
            async move { if id == "g1-2" { Err("boom") } else { Ok(()) } }
        })
        .await;
        assert_eq!(failures(&response), ["g1-2", "g1-3"]);
        assert_eq!(
            *seen.lock().unwrap(),
            ["g1-1", "g2-1", "g1-2", "g2-2"],
            "g1-3 must not be handled"
        );
    }

    #[tokio::test]
    async fn group_attribute_alone_marks_fifo_and_missing_ids_fail_the_batch() {
        let mut first = record("x", Some("g"), STANDARD);
        first.message_id = None;
        let batch = event(vec![first, record("y", Some("g"), STANDARD)]);
        let response = process_sqs_batch(batch, |_| async { Err::<(), _>("down") }).await;
        assert_eq!(failures(&response), ["", "y"]);
    }

    #[test]
    fn fifo_detection_and_receive_count() {
        assert!(is_fifo_record(&record("a", None, FIFO)));
        assert!(!is_fifo_record(&record("a", None, STANDARD)));
        let mut message = record("a", None, STANDARD);
        assert_eq!(receive_count(&message), 1);
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&message), 4);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("failed")]
    struct Failed;

    impl JobFailure for Failed {
        fn is_permanent(&self) -> bool {
            false
        }
        fn cause_key(&self) -> String {
            "send:telegram".into()
        }
    }

    /// A consumer whose SQS calls fail at once (nothing listens there).
    fn offline_consumer(arn_name: &str) -> SqsConsumer {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "a", "b", None, None, "test",
            ))
            .build();
        SqsConsumer::with_queues(
            aws_sdk_sqs::Client::from_conf(config),
            [(
                format!("http://127.0.0.1:1/1/{arn_name}"),
                format!("http://127.0.0.1:1/1/{arn_name}-dlq"),
            )],
            ConsumerSettings::default(),
        )
    }

    #[tokio::test]
    async fn records_of_a_standard_queue_are_handled_side_by_side() {
        let consumer = offline_consumer("escalation");
        let batch = event(
            (0..4)
                .map(|i| record(&format!("t{i}"), None, STANDARD))
                .collect(),
        );
        // Each handler waits until all four are under way: one at a time never finishes.
        let barrier = tokio::sync::Barrier::new(4);
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            consumer.process(batch, 0, |_, _| async {
                barrier.wait().await;
                Ok::<(), Failed>(())
            }),
        )
        .await
        .expect("handled concurrently");
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn a_fifo_failure_holds_back_its_group_in_the_consumer_too() {
        let consumer = offline_consumer("inbound.fifo");
        let seen = Mutex::new(Vec::new());
        let batch = event(vec![
            record("a1", Some("a"), FIFO),
            record("b1", Some("b"), FIFO),
            record("a2", Some("a"), FIFO),
        ]);
        let response = consumer
            .process(batch, 0, |body, _| {
                let body = String::from_utf8(body).unwrap();
                seen.lock().unwrap().push(body.clone());
                async move {
                    if body == "body-a1" {
                        Err(Failed)
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert_eq!(failures(&response), ["a1", "a2"]);
        assert_eq!(*seen.lock().unwrap(), ["body-a1", "body-b1"]);
    }

    #[test]
    fn queues_are_matched_by_name_from_arn_and_url() {
        assert_eq!(
            last_segment("arn:aws:sqs:eu-west-1:1:inbound.fifo"),
            "inbound.fifo"
        );
        assert_eq!(
            last_segment("https://sqs.eu-west-1.amazonaws.com/1/inbound.fifo"),
            "inbound.fifo"
        );
        assert_eq!(last_segment("http://127.0.0.1:5000/123456789012/q/"), "q");
    }
}
