//! Switchboard on AWS Lambda: the HTTP router served through `lambda_http`
//! (API Gateway HTTP API v2 and Function URLs), and the SQS event handlers,
//! both over the parts [`switchboard_app::aws`] builds.
//!
//! Each function's `main.rs` is three steps: [`init_tracing`] and
//! [`metrics::init`] (CloudWatch embedded metrics on stdout), build the parts
//! with `switchboard_app::aws::from_environment`, and serve: [`serve_http`]
//! for the ingress functions, `lambda_runtime::run` with a handler of
//! [`handlers`] for the queue consumers.

pub mod authorizer;
pub mod handlers;
pub mod metrics;

pub use lambda_http::Error;

/// JSON logs to stdout for CloudWatch, levels from `RUST_LOG` (default info):
/// `level` or `target=level` pairs, comma-separated (`Targets`, without the
/// span and field filters of `EnvFilter`, whose regex engine would take a
/// few hundred KiB of every function's binary).
pub fn init_tracing() {
    init_tracing_to(std::io::stdout);
}

/// [`init_tracing`] writing elsewhere (tests read the lines back). Each line
/// lists the spans it was logged in, with their fields: the `message` and
/// `ticket` spans carry the `correlation_id`.
pub fn init_tracing_to<W>(writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(json.with_filter(filter))
        .init();
}

/// Serves the router to API Gateway (HTTP API, payload v2) or a Function URL.
/// `lambda_http` decodes base64 bodies to their exact bytes.
pub async fn serve_http(router: axum::Router) -> Result<(), Error> {
    lambda_http::run(flushing_metrics(router)).await
}

/// The router, writing the metrics each request recorded once it is answered.
fn flushing_metrics(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::map_response(
        |response: axum::response::Response| async move {
            metrics::flush();
            response
        },
    ))
}

/// One invocation as `lambda_http` runs it: the event JSON (API Gateway HTTP
/// API v2, or a Function URL) to the router and back to the response JSON.
/// [`serve_http`] does this for every event; tests and tools call it directly.
pub async fn invoke(
    router: axum::Router,
    event: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    use lambda_http::Service;
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event)?;
    let mut adapter = lambda_http::Adapter::from(flushing_metrics(router));
    let event = lambda_http::LambdaEvent::new(request, lambda_http::Context::default());
    let response = adapter.call(event).await?;
    Ok(serde_json::to_value(response)?)
}
