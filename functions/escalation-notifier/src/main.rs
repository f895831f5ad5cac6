//! The escalation notifier: the escalation queues' consumer.

use lambda_runtime::{run, service_fn};
use switchboard_app::aws::{Role, from_environment};
use switchboard_lambda::{Error, handlers, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = from_environment(Role::Notifier).await?;
    let notifier = aws.app.notifier.clone();
    run(service_fn(|event| handlers::escalations(&notifier, event))).await
}
