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
use switchboard_pipeline::http::respond;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runner;

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
            .route(
                "/dev/provider/{channel}/{*rest}",
                post(dev_provider).get(dev_access_token),
            )
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
    let workers = runner::spawn_workers(&local, stop_rx).await?;
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

/// Liveness for anyone; the queues' figures only for an admin token (they
/// tell how busy the business is).
async fn health(State(local): Shared, headers: HeaderMap) -> Response {
    let admin = switchboard_pipeline::http::authorize(
        &local.app.access,
        &headers,
        switchboard_pipeline::access::Scope::Admin,
    )
    .is_ok();
    respond(match local.store.stats().await {
        Ok(queues) if admin => reply::json(200, &json!({ "ok": true, "queues": queues })),
        Ok(_) => reply::json(200, &json!({ "ok": true })),
        Err(failure) => reply::error(503, "unavailable", failure.to_string()),
    })
}

/// The stand-in provider of development mode: records each reply.
async fn dev_provider(
    State(local): Shared,
    Path((channel, rest)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    // Providers' token endpoints (WeChat `cgi-bin/token`, WeCom `gettoken`,
    // Feishu `tenant_access_token`) are no replies: they get a token.
    if rest.contains("token") {
        return dev_access_token().await;
    }
    record_dev_reply(&local, &channel, &body)
}

/// An access token, shaped like WeChat's, WeCom's and Feishu's answers.
async fn dev_access_token() -> Response {
    respond(reply::json(
        200,
        &json!({ "errcode": 0, "code": 0, "access_token": "development", "expires_in": 7200,
                 "tenant_access_token": "development", "expire": 7200 }),
    ))
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
    if let Err(denied) = switchboard_pipeline::http::authorize(
        &local.app.access,
        &headers,
        switchboard_pipeline::access::Scope::Admin,
    ) {
        return respond(denied);
    }
    let path = local.app.config.data_dir.join("dev-replies.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let replies: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    respond(reply::json(200, &json!({ "replies": replies })))
}
