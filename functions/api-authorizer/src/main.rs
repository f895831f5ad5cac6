//! The agents' API authorizer: API Gateway asks it about each `/api/...`
//! request (cached briefly per Authorization header).

use lambda_runtime::{run, service_fn};
use switchboard_lambda::handlers;
use switchboard_lambda::{Error, authorizer, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let tokens = authorizer::from_environment().await?;
    run(service_fn(|event| handlers::authorize(&tokens, event))).await
}
