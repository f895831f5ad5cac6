//! Ingress for the social channels (`/webhooks/{channel}`).

use switchboard_app::aws::{Role, from_environment};
use switchboard_lambda::{Error, init_tracing, serve_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    switchboard_lambda::metrics::init("ingress-social")?;
    let aws = from_environment(Role::Ingress).await?;
    serve_http(aws.router(false)?).await
}
