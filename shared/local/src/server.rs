//! `switchboard serve`: the router of webhooks and the agents' API (the one
//! the Lambda functions serve), the workers, and development mode's stand-in
//! provider, in one process on the embedded database.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
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

use crate::{dev_provider, runner};

/// A client has this long to send a request's headers; an idle keep-alive
/// connection is closed after it too (hyper starts the timer whenever it
/// waits for a request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Shared = State<Arc<Local>>;

/// The router `serve` serves: the shared one, plus health and development mode.
pub fn router(local: Arc<Local>) -> Router {
    let mut router = Router::new().route("/healthz", get(health));
    if local.dev.is_some() {
        router = router
            .route(
                "/dev/provider/{channel}/{*rest}",
                post(dev_provider::record).get(dev_provider::access_token),
            )
            .route("/dev/provider/{channel}", post(dev_provider::record_root))
            .route("/dev/replies", get(dev_provider::replies));
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
    let mut workers = runner::spawn_workers(&local, stop_rx.clone()).await?;
    if let Some(file) = local.app.config.file.clone() {
        workers.push(tokio::spawn(crate::reload::watch_tokens(
            local.clone(),
            file,
            stop_rx,
        )));
    }
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
