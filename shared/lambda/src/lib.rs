//! Switchboard on AWS Lambda: the events API Gateway and SQS deliver, turned
//! into calls on the same pipeline the local server runs, and the wiring of
//! DynamoDB, SQS, Secrets Manager and SMTP from the environment.
//!
//! Each function's `main.rs` is three steps: `init_tracing()`, build its
//! dependencies once with a function of [`wiring`], and run the matching
//! handler of [`handlers`] for every event.

pub mod config;
pub mod handlers;
pub mod http;
pub mod wiring;

pub use config::FunctionConfig;

/// JSON logs to stdout for CloudWatch, level from `RUST_LOG` (default info).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line
        .init();
}
