//! Ingress for the instant-messaging channels (`/webhooks/{channel}`) and the agents' API (`/api/...`).

use lambda_runtime::{Error, run, service_fn};
use switchboard_aws::WarmUp;
use switchboard_lambda::{FunctionConfig, handlers, init_tracing, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = FunctionConfig::from_env()?;
    let warm = WarmUp {
        dynamodb_table: Some(&config.resources.idempotency_table),
        sqs_queue_url: Some(&config.resources.inbound_queue_url),
    };
    let aws = wiring::connect(config.clone(), warm).await?;
    let api = wiring::http_api(&aws, true)?;
    run(service_fn(|event| handlers::http(&api, event))).await
}
