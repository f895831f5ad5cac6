//! The escalation notifier: the escalation queues' consumer, and the weekly
//! report on its EventBridge schedule (it sends mail already, so the report
//! needs no function of its own).

use lambda_runtime::{run, service_fn};
use switchboard_app::aws::{Role, from_environment};
use switchboard_domain::QueueName;
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("escalation-notifier")?;
    let aws = from_environment(Role::Notifier).await?.with_mail()?;
    let weekly = aws.weekly_report();
    let notifier = Consumer {
        stage: aws.notifier()?,
        sqs: aws.sqs_consumer(&[QueueName::EscalationPriority, QueueName::EscalationStandard]),
    };
    run(service_fn(|event| {
        handlers::notifier_events(&notifier, weekly.as_ref(), event)
    }))
    .await
}
