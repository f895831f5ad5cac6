//! Ingress for inbound email (`/webhooks/{channel}` for the email providers).

use switchboard_app::aws::{Role, from_environment};
use switchboard_lambda::{Error, init_tracing, serve_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("ingress-email")?;
    let aws = from_environment(Role::Ingress).await?;
    serve_http(aws.router(false)?).await
}
