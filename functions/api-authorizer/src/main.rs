//! The agents' API authorizer: API Gateway asks it about each `/api/...`
//! request (cached briefly per Authorization header), with the tokens of the
//! channel secret, read again every minute.

use lambda_runtime::{run, service_fn};
use switchboard_lambda::handlers;
use switchboard_lambda::{Error, authorizer, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let gate = authorizer::from_environment().await?;
    run(service_fn(|event| handlers::authorize(&gate, event))).await
}
