//! The conversation worker: the inbound FIFO queue's consumer, and the timers
//! queue's (reassurances and service-level breaches).

use lambda_runtime::{run, service_fn};
use switchboard_app::aws::{Role, from_environment};
use switchboard_domain::QueueName;
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("conversation-worker")?;
    let aws = from_environment(Role::Worker).await?;
    let worker = Consumer {
        stage: aws.worker().await?,
        sqs: aws.sqs_consumer(&[QueueName::Inbound, QueueName::Timers]),
    };
    let timers_queue_url = aws.resources.timers_queue_url.clone();
    run(service_fn(|event| {
        handlers::conversation(&worker, &timers_queue_url, event)
    }))
    .await
}
