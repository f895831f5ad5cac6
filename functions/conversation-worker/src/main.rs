//! The conversation worker: the inbound FIFO queue's consumer.

use lambda_runtime::{Error, run, service_fn};
use switchboard_aws::WarmUp;
use switchboard_lambda::{FunctionConfig, handlers, init_tracing, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = FunctionConfig::from_env()?;
    let warm = WarmUp {
        dynamodb_table: Some(&config.resources.sessions_table),
        sqs_queue_url: Some(&config.resources.escalation_standard_queue_url),
    };
    let aws = wiring::connect(config.clone(), warm).await?;
    let worker = wiring::conversation_worker(&aws).await?;
    run(service_fn(|event| handlers::inbound(&worker, event))).await
}
