//! The queue consumers' handlers, each a thin call into the pipeline. (HTTP
//! events go to the router, through `lambda_http`.)

use std::borrow::Borrow;
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use switchboard_aws::SqsConsumer;
use switchboard_domain::{JobFailure, JobLease};
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::outbound::OutboundSender;
use switchboard_pipeline::worker::ConversationWorker;

/// A queue's consumer: the pipeline stage (owned or shared), and how its SQS
/// records are settled (leases, backoff, dead letters).
pub struct Consumer<S> {
    pub stage: S,
    pub sqs: SqsConsumer,
}

impl<S> Consumer<S> {
    /// Runs `handle` on the stage for every record of the batch, within the
    /// invocation's deadline, then flushes the invocation's metrics.
    async fn consume<'a, T, E, F, Fut>(
        &'a self,
        event: LambdaEvent<SqsEvent>,
        handle: F,
    ) -> Result<SqsBatchResponse, Error>
    where
        F: Fn(&'a S, Vec<u8>, JobLease) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: JobFailure,
    {
        let deadline = deadline_ms(&event);
        let response = self
            .sqs
            .process(event.payload, deadline, |body, lease| {
                let handled = handle(&self.stage, body, lease);
                async move { handled.await.map(|_| ()) }
            })
            .await;
        crate::metrics::flush();
        Ok(response)
    }
}

/// The invocation's deadline in unix ms (0 when the runtime gave none).
fn deadline_ms<T>(event: &LambdaEvent<T>) -> i64 {
    i64::try_from(event.context.deadline).unwrap_or(i64::MAX)
}

/// The inbound FIFO queue → the conversation worker. Retryable failures are
/// reported so that SQS redelivers them after a backoff (and holds the rest
/// of their group); permanent ones go to the dead-letter queue at once.
pub async fn inbound<W: Borrow<ConversationWorker>>(
    worker: &Consumer<W>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    worker
        .consume(event, async |stage, body, lease| {
            stage.borrow().handle(&body, &lease).await
        })
        .await
}

/// The timers queue → reassurances and service-level breaches.
pub async fn timers<W: Borrow<ConversationWorker>>(
    worker: &Consumer<W>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    worker
        .consume(event, async |stage, body, lease| {
            stage.borrow().handle_timer(&body, &lease).await
        })
        .await
}

/// The conversation worker's function consumes the inbound queue and the
/// timers queue (an event source mapping each; a batch comes from one):
/// the batch goes to the handler of the queue it came from.
pub async fn conversation<W: Borrow<ConversationWorker>>(
    worker: &Consumer<W>,
    timers_queue_url: &str,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let queue_name = |arn_or_url: &str| {
        arn_or_url
            .trim_end_matches('/')
            .rsplit([':', '/'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let from_timers = event
        .payload
        .records
        .first()
        .and_then(|record| record.event_source_arn.as_deref())
        .is_some_and(|arn| {
            !timers_queue_url.is_empty() && queue_name(arn) == queue_name(timers_queue_url)
        });
    if from_timers {
        timers(worker, event).await
    } else {
        inbound(worker, event).await
    }
}

/// The escalation queues → the agents.
pub async fn escalations<N: Borrow<EscalationNotifier>>(
    notifier: &Consumer<N>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    notifier
        .consume(event, async |stage, body, lease| {
            stage.borrow().handle(&body, &lease).await
        })
        .await
}

/// Every invocation of the escalation notifier: its queues' batches, and
/// the weekly report's EventBridge schedule (`"detail-type": "Scheduled
/// Event"`), which `weekly` handles.
pub async fn notifier_events<N: Borrow<EscalationNotifier>>(
    notifier: &Consumer<N>,
    weekly: Option<&switchboard_pipeline::weekly::WeeklyReport>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let (payload, context) = event.into_parts();
    if is_schedule(&payload) {
        let weekly =
            weekly.ok_or("the weekly report has no bucket (SWITCHBOARD_AWS__REPORTS_BUCKET)")?;
        let link = weekly
            .run()
            .await
            .map_err(|e| Error::from(switchboard_domain::error_chain(&e)))?;
        crate::metrics::flush();
        return Ok(serde_json::json!({ "report": link }));
    }
    let batch: SqsEvent = serde_json::from_value(payload)?;
    let response = escalations(notifier, LambdaEvent::new(batch, context)).await?;
    Ok(serde_json::to_value(response)?)
}

/// An EventBridge scheduled event (rather than an SQS batch).
fn is_schedule(payload: &serde_json::Value) -> bool {
    payload["source"] == "aws.events" && payload["detail-type"] == "Scheduled Event"
}

/// The agents' API authorizer: one simple response per request.
pub async fn authorize(
    gate: &crate::authorizer::Gate,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    gate.refresh_if_stale(crate::authorizer::TOKENS_FRESH_FOR)
        .await;
    Ok(crate::authorizer::decide(gate.tokens(), &event.payload))
}

/// The outbound queue → the customers' channels.
pub async fn outbound<S: Borrow<OutboundSender>>(
    sender: &Consumer<S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    sender
        .consume(event, async |stage, body, lease| {
            stage.borrow().handle(&body, &lease).await
        })
        .await
}
