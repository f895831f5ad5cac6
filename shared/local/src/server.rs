//! `switchboard serve`: every webhook route at the paths the deployed API
//! uses, the agents' API, and the workers, in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;
use switchboard_channels::{HttpReply, WebhookRequest};
use switchboard_domain::QueueName;
use switchboard_pipeline::ingress::{IngressError, MAX_BODY_BYTES};
use tokio::sync::watch;
use tracing::info;

use crate::app::App;
use crate::config::Config;
use crate::runner::{self, RunnerSettings};

type Shared = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/webhooks/{channel}", any(webhook))
        .route("/api/{*rest}", any(api))
        .route("/healthz", get(health));
    if app.config.is_development() {
        router = router
            .route("/dev/provider/{channel}/{*rest}", post(dev_provider))
            .route("/dev/provider/{channel}", post(dev_provider_root))
            .route("/dev/replies", get(dev_replies));
    }
    router.fallback(not_found).with_state(app)
}

/// Runs the server and the workers until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen.clone();
    let app = Arc::new(App::build(config).await?);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = spawn_workers(&app, stop_rx);
    info!(address = %listener.local_addr()?, development = app.config.is_development(), "switchboard listening");
    axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    // Let in-flight jobs finish; anything unfinished is redelivered on the next start.
    let _ = stop_tx.send(true);
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    }
    info!("switchboard stopped");
    Ok(())
}

fn spawn_workers(app: &Arc<App>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = RunnerSettings {
        max_attempts: app.config.workers.max_attempts.max(1),
        visibility: Duration::from_secs(app.config.workers.visibility_secs.max(1)),
        idle_poll: Duration::from_millis(500),
    };
    let mut handles = Vec::new();
    if app.config.workers.conversation {
        for _ in 0..app.config.workers.concurrency.max(1) {
            let worker = app.worker.clone();
            handles.push(tokio::spawn(runner::run(
                app.store.clone(),
                vec![QueueName::Inbound],
                settings,
                app.wake.clone(),
                stop.clone(),
                move |body| {
                    let worker = worker.clone();
                    async move { worker.handle(&body).await.map(|_| ()) }
                },
            )));
        }
    }
    if app.config.workers.notifier {
        let notifier = app.notifier.clone();
        handles.push(tokio::spawn(runner::run(
            app.store.clone(),
            vec![QueueName::EscalationPriority, QueueName::EscalationStandard],
            settings,
            app.wake.clone(),
            stop.clone(),
            move |body| {
                let notifier = notifier.clone();
                async move { notifier.handle(&body).await.map(|_| ()) }
            },
        )));
    }
    if app.config.knowledge_base.is_none() {
        let watch =
            crate::reload::watch_imports(app.store.clone(), app.worker.faq.clone(), stop.clone());
        handles.push(tokio::spawn(watch));
    }
    let store = app.store.clone();
    let mut purge_stop = stop;
    handles.push(tokio::spawn(async move {
        loop {
            let _ = store
                .purge_expired(switchboard_domain::Clock::now_ms(
                    &switchboard_domain::SystemClock,
                ))
                .await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                _ = purge_stop.changed() => break,
            }
        }
    }));
    handles
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn to_response(reply: HttpReply) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", reply.content_type);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(reply.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn error(status: u16, code: &str, reason: impl Into<String>) -> Response {
    to_response(HttpReply::error(status, code, reason))
}

async fn webhook(
    State(app): Shared,
    Path(channel): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Known channel first, so an unknown one is 404 whatever its body.
    if let Err(error) = app.ingress.check_channel(&channel) {
        return to_response(error.to_reply());
    }
    forward(&app, method, uri, headers, body).await
}

async fn api(
    State(app): Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(&app, method, uri, headers, body).await
}

/// Reads the body within the size limit and hands the request to the HTTP API.
async fn forward(app: &App, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = declared.filter(|len| *len > MAX_BODY_BYTES) {
        return to_response(IngressError::TooLarge(length).to_reply());
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => return to_response(IngressError::TooLarge(MAX_BODY_BYTES + 1).to_reply()),
    };
    let path_and_query = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let request = WebhookRequest {
        method: method.to_string(),
        url: format!("{}{}", app.config.public_url(), path_and_query),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    to_response(app.api.handle(uri.path(), &request).await)
}

async fn health(State(app): Shared) -> Response {
    match app.store.stats().await {
        Ok(queues) => Json(json!({ "ok": true, "queues": queues })).into_response(),
        Err(failure) => error(503, "unavailable", failure.to_string()),
    }
}

async fn not_found() -> Response {
    error(404, "not_found", "no such route")
}

/// The stand-in provider of development mode: records each reply.
async fn dev_provider(
    State(app): Shared,
    Path((channel, _rest)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    record_dev_reply(&app, &channel, &body)
}

async fn dev_provider_root(
    State(app): Shared,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    record_dev_reply(&app, &channel, &body)
}

fn record_dev_reply(app: &App, channel: &str, body: &[u8]) -> Response {
    use std::io::Write;
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or(json!(null));
    let line = json!({ "channel": channel, "payload": payload }).to_string();
    let path = app.config.data_dir.join("dev-replies.jsonl");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{line}"));
    match written {
        Ok(()) => Json(crate::dev::provider_success(channel)).into_response(),
        Err(failure) => error(500, "dev_provider", failure.to_string()),
    }
}

async fn dev_replies(State(app): Shared) -> Response {
    let path = app.config.data_dir.join("dev-replies.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let replies: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    Json(json!({ "replies": replies })).into_response()
}
