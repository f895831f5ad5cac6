//! Partial batch responses for Lambda functions fed by SQS
//! (`FunctionResponseTypes: [ReportBatchItemFailures]`).

use std::collections::HashSet;
use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use switchboard_domain::BoxError;

use crate::error::error_chain;

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
}
