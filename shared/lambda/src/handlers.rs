//! The queue consumers' handlers, each a thin call into the pipeline. (HTTP
//! events go to the router, through `lambda_http`.)

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use switchboard_aws::message_body;
use switchboard_domain::BoxError;
use switchboard_pipeline::JobError;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::worker::ConversationWorker;
use tracing::error;

/// The inbound FIFO queue → the conversation worker. Retryable failures are
/// reported so that SQS redelivers them (and holds the rest of their group);
/// unreadable jobs are reported too, so that after `maxReceiveCount` they sit
/// in the dead-letter queue, where the alarm sees them.
pub async fn inbound(
    worker: &ConversationWorker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(
        switchboard_aws::process_sqs_batch(event.payload, |message| async move {
            let body = message_body(&message).map_err(BoxError::from)?;
            worker
                .handle(&body)
                .await
                .map(|_| ())
                .map_err(|failure| BoxError::from(log_permanent(failure)))
        })
        .await,
    )
}

/// The escalation queues → the agents.
pub async fn escalations(
    notifier: &EscalationNotifier,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(
        switchboard_aws::process_sqs_batch(event.payload, |message| async move {
            let body = message_body(&message).map_err(BoxError::from)?;
            notifier
                .handle(&body)
                .await
                .map(|_| ())
                .map_err(|failure| BoxError::from(log_permanent(failure)))
        })
        .await,
    )
}

fn log_permanent(failure: JobError) -> JobError {
    if !failure.is_retryable() {
        let error = switchboard_domain::error_chain(&failure);
        error!(
            error,
            "job cannot be processed; it goes to the dead-letter queue"
        );
    }
    failure
}
