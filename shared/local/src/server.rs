//! `switchboard serve`: the router of webhooks and the agents' API (the one
//! the Lambda functions serve), the workers, and development mode's stand-in
//! provider, in one process on the embedded database.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use switchboard_app::Config;
use switchboard_app::local::{DevSecrets, Local};
use switchboard_channels::kit::reply;
use switchboard_channels::kit::signature::secret_eq;
use switchboard_domain::QueueName;
use switchboard_pipeline::http::respond;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runner::{self, RunnerSettings};

/// A client has this long to send a request's headers; an idle keep-alive
/// connection is closed after it too (hyper starts the timer whenever it
/// waits for a request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

type Shared = State<Arc<Local>>;

/// The router `serve` serves: the shared one, plus health and development mode.
pub fn router(local: Arc<Local>) -> Router {
    let mut router = Router::new().route("/healthz", get(health));
    if local.dev.is_some() {
        router = router
            .route("/dev/provider/{channel}/{*rest}", post(dev_provider))
            .route("/dev/provider/{channel}", post(dev_provider_root))
            .route("/dev/replies", get(dev_replies));
    }
    let local_routes = router.with_state(local.clone());
    local.app.router(true).merge(local_routes)
}

/// Runs the server and the workers until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen.clone();
    let local = Arc::new(Local::open(config).await?);
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = spawn_workers(&local, stop_rx).await?;
    let address = listener.local_addr()?;
    info!(address = %address, development = local.dev.is_some(), "switchboard listening");
    if std::io::stdout().is_terminal() {
        println!("{}", summary(&local, &address.to_string()));
    }
    serve_connections(listener, router(local.clone()), shutdown_signal()).await;
    // Let in-flight jobs finish; anything unfinished is redelivered on the next start.
    let _ = stop_tx.send(true);
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    }
    info!("switchboard stopped");
    Ok(())
}

/// Serves HTTP/1.1 connections with a header-read (and idle) timeout until
/// `shutdown`, then lets open requests finish for up to 10 s.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        warn!(error = %error, "could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// What a newcomer needs to know, for a terminal.
fn summary(local: &Local, address: &str) -> String {
    let config = &local.app.config;
    let base = format!("http://{address}");
    let names = local.app.channels.names().join(", ");
    let mut lines = vec![
        format!(
            "Switchboard is running{}.",
            if local.dev.is_some() {
                " in development mode"
            } else {
                ""
            }
        ),
        format!("  listening        {base}"),
        format!(
            "  webhooks         {}/webhooks/<channel>  ({names})",
            config.public_url()
        ),
    ];
    match &local.dev {
        Some(_) => {
            let secrets = DevSecrets::path(&config.data_dir);
            lines.push(format!(
                "  agents' API      {base}/api/...  token: \"admin_token\" in {}",
                secrets.display()
            ));
            lines.push(format!(
                "  chat replies     {base}/dev/replies  (also {})",
                config.data_dir.join("dev-replies.jsonl").display()
            ));
        }
        None => lines.push(format!(
            "  agents' API      {base}/api/...  token: [server] admin_token"
        )),
    }
    lines.push(match &config.email.smtp {
        Some(smtp) => format!("  email            SMTP {}", smtp.host),
        None => format!(
            "  email            {} (no SMTP configured)",
            config.data_dir.join("outbox").display()
        ),
    });
    if local.dev.is_some() {
        lines.push(
            "  try              switchboard simulate --channel telegram --text \"How long does shipping take?\""
                .into(),
        );
    }
    lines.join("\n")
}

async fn spawn_workers(
    local: &Arc<Local>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let config = &local.app.config;
    let settings = RunnerSettings {
        max_attempts: config.workers.max_attempts.max(1),
        visibility: Duration::from_secs(config.workers.visibility_secs.max(1)),
        idle_poll: Duration::from_millis(500),
    };
    let mut handles = Vec::new();
    if config.workers.conversation {
        let knowledge_base = local.knowledge_base().await?;
        info!(
            entries = knowledge_base.entries.len(),
            "knowledge base loaded"
        );
        let worker = Arc::new(local.app.worker(knowledge_base));
        for _ in 0..config.workers.concurrency.max(1) {
            let worker = worker.clone();
            handles.push(tokio::spawn(runner::run(
                local.store.clone(),
                vec![QueueName::Inbound],
                settings,
                local.wake.clone(),
                stop.clone(),
                move |body| {
                    let worker = worker.clone();
                    async move { worker.handle(&body).await.map(|_| ()) }
                },
            )));
        }
    }
    if config.workers.notifier {
        let notifier = local.app.notifier.clone();
        handles.push(tokio::spawn(runner::run(
            local.store.clone(),
            vec![QueueName::EscalationPriority, QueueName::EscalationStandard],
            settings,
            local.wake.clone(),
            stop.clone(),
            move |body| {
                let notifier = notifier.clone();
                async move { notifier.handle(&body).await.map(|_| ()) }
            },
        )));
    }
    let store = local.store.clone();
    let mut purge_stop = stop;
    handles.push(tokio::spawn(async move {
        loop {
            let now = switchboard_domain::Clock::now_ms(&switchboard_domain::SystemClock);
            let _ = store.purge_expired(now).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                _ = purge_stop.changed() => break,
            }
        }
    }));
    Ok(handles)
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

async fn health(State(local): Shared) -> Response {
    respond(match local.store.stats().await {
        Ok(queues) => reply::json(200, &json!({ "ok": true, "queues": queues })),
        Err(failure) => reply::error(503, "unavailable", failure.to_string()),
    })
}

/// The stand-in provider of development mode: records each reply.
async fn dev_provider(
    State(local): Shared,
    Path((channel, _rest)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    record_dev_reply(&local, &channel, &body)
}

async fn dev_provider_root(
    State(local): Shared,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    record_dev_reply(&local, &channel, &body)
}

fn record_dev_reply(local: &Local, channel: &str, body: &[u8]) -> Response {
    use std::io::Write;
    // JSON, else a form post (Twilio's Messages API) as an object.
    let form = || {
        let fields = form_urlencoded::parse(body).into_owned();
        serde_json::Value::Object(fields.map(|(k, v)| (k, v.into())).collect())
    };
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| form());
    let line = json!({ "channel": channel, "payload": payload }).to_string();
    let path = local.app.config.data_dir.join("dev-replies.jsonl");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{line}"));
    respond(match written {
        // Shaped like the providers' success answers.
        Ok(()) => reply::json(
            200,
            &json!({ "ok": true, "errcode": 0, "result": { "message_id": 1 } }),
        ),
        Err(failure) => reply::error(500, "dev_provider", failure.to_string()),
    })
}

/// The replies development mode recorded; they hold customers' conversations,
/// so the agents' token is required.
async fn dev_replies(State(local): Shared, headers: HeaderMap) -> Response {
    let expected = local.app.config.server.admin_token.as_ref();
    let presented = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !expected.is_some_and(|token| secret_eq(presented.as_bytes(), token.expose().as_bytes())) {
        return respond(reply::error(
            401,
            "unauthorized",
            "missing or wrong bearer token",
        ));
    }
    let path = local.app.config.data_dir.join("dev-replies.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let replies: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    respond(reply::json(200, &json!({ "replies": replies })))
}
