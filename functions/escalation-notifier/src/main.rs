//! The escalation notifier: the escalation queues' consumer.

use lambda_runtime::{Error, run, service_fn};
use switchboard_aws::WarmUp;
use switchboard_lambda::{FunctionConfig, handlers, init_tracing, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = FunctionConfig::from_env()?;
    let warm = WarmUp {
        dynamodb_table: Some(&config.resources.idempotency_table),
        sqs_queue_url: None,
    };
    let aws = wiring::connect(config.clone(), warm).await?;
    let notifier = wiring::escalation_notifier(&aws)?;
    run(service_fn(|event| handlers::escalations(&notifier, event))).await
}
