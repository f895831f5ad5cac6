//! Ingress for the instant-messaging channels (`/webhooks/{channel}`) and the agents' API (`/api/...`).

use switchboard_app::aws::{Role, from_environment};
use switchboard_lambda::{Error, init_tracing, serve_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("ingress-im")?;
    let aws = from_environment(Role::Ingress).await?;
    serve_http(aws.router(true)?).await
}
