//! The outbound sender: the outbound queue's consumer, sending every reply
//! (the bot's and the agents') on the customer's channel.

use lambda_runtime::{run, service_fn};
use switchboard_app::aws::{Role, from_environment};
use switchboard_domain::QueueName;
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("outbound-sender")?;
    let aws = from_environment(Role::Outbound).await?.with_mail()?;
    let sender = Consumer {
        stage: aws.outbound()?,
        sqs: aws.sqs_consumer(&[QueueName::Outbound]),
    };
    run(service_fn(|event| handlers::outbound(&sender, event))).await
}
