//! One handler per kind of event, each a thin call into the pipeline.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use switchboard_aws::SqsConsumer;
use switchboard_channels::HttpReply;
use switchboard_pipeline::api::HttpApi;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::worker::ConversationWorker;

use crate::http::{to_request, to_response};

/// API Gateway → webhooks and the agents' API. Always answers: failures are
/// HTTP statuses the provider understands (5xx makes it retry).
pub async fn http(
    api: &HttpApi,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let reply = match to_request(&event.payload) {
        Ok((path, request)) => api.handle(&path, &request).await,
        Err(bad) => HttpReply::error(400, "bad_request", bad.to_string()),
    };
    Ok(to_response(reply))
}

/// A queue's consumer: the pipeline stage, and how its SQS records are
/// settled (leases, backoff, dead letters).
pub struct Consumer<S> {
    pub stage: S,
    pub sqs: SqsConsumer,
}

/// The invocation's deadline in unix ms (0 when the runtime gave none).
fn deadline_ms<T>(event: &LambdaEvent<T>) -> i64 {
    i64::try_from(event.context.deadline).unwrap_or(i64::MAX)
}

/// The inbound FIFO queue → the conversation worker. Retryable failures are
/// reported so that SQS redelivers them after a backoff (and holds the rest
/// of their group); permanent ones go to the dead-letter queue at once.
pub async fn inbound(
    worker: &Consumer<ConversationWorker>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline_ms(&event);
    Ok(worker
        .sqs
        .process(event.payload, deadline, |body, lease| async move {
            worker.stage.handle(&body, &lease).await.map(|_| ())
        })
        .await)
}

/// The escalation queues → the agents.
pub async fn escalations(
    notifier: &Consumer<EscalationNotifier>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline_ms(&event);
    Ok(notifier
        .sqs
        .process(event.payload, deadline, |body, lease| async move {
            notifier.stage.handle(&body, &lease).await.map(|_| ())
        })
        .await)
}
