//! Harness for the end-to-end tests: the real `switchboard serve` process,
//! stand-in provider APIs that record what they receive, and a real SMTP
//! server (aiosmtpd). Every channel of the registry is configured, with its
//! development-mode settings (secrets derived from [`SEED`]), and requests
//! are signed with the channel's own scheme, as `simulate` signs them.
//!
//! Message texts the tests send are remembered, and a server's log is
//! scanned for them when it is dropped: message bodies never reach logs.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_channels::kit::build_request;
use switchboard_channels::{ChannelDeps, ChannelSettings, SharedChannel, WebhookRequest, registry};

/// Every channel's secrets derive from this seed (see `DevContext::secret`).
pub const SEED: &str = "e2e-seed-not-a-secret";
pub const SUPPORT_ADDRESS: &str = "support@shop.test";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// An `agent`-scope token, configured by its SHA-256 only.
pub const AGENT_TOKEN: &str = "sbk_test-agent-token";
/// SHA-256 of [`AGENT_TOKEN`].
const AGENT_TOKEN_SHA256: &str = "4053a8b2ede072c6aa35664eb952eeabb9d27dd0fa96e9d77f64b91065e812d9";

/// Every registered channel's settings, replies going to `stand_in/<channel>`.
pub fn channel_settings(stand_in: &str) -> ChannelSettings {
    registry::dev_settings(SEED, SUPPORT_ADDRESS, |name| format!("{stand_in}/{name}"))
}

/// One setting of a channel, e.g. `setting("slack", "signing_secret")`.
pub fn setting(channel: &str, key: &str) -> String {
    channel_settings("http://127.0.0.1:9")[channel][key]
        .as_str()
        .unwrap_or_else(|| panic!("{channel} has no setting {key}"))
        .to_owned()
}

pub fn telegram_bot_token() -> String {
    setting("telegram", "bot_token")
}

/// The channel as the server runs it (for signing requests).
pub fn channel(name: &str) -> SharedChannel {
    let settings = channel_settings("http://127.0.0.1:9");
    registry::build(name, &settings[name], &ChannelDeps::offline()).unwrap()
}

/// A request to `/webhooks/<channel>`, signed by the channel at `now_ms`.
pub fn signed_request(
    name: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: impl Into<Vec<u8>>,
    now_ms: i64,
) -> WebhookRequest {
    let mut all = vec![("content-type".to_owned(), content_type.to_owned())];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let path = format!("/webhooks/{name}");
    let mut request = build_request("POST", &path, &all, body.into()).unwrap();
    channel(name).sign(&mut request, now_ms).unwrap();
    request
}

/// Message texts the tests sent; no server log may contain one.
static SENT_TEXTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a message text, to check that no log repeats it.
pub fn remember_text(text: &str) {
    if text.chars().count() >= 12 {
        SENT_TEXTS.lock().unwrap().push(text.to_owned());
    }
}

/// The `switchboard` binary under test: `$SWITCHBOARD_BIN`, else the debug build.
pub fn switchboard_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let path = target.join("debug").join("switchboard");
    assert!(
        path.exists(),
        "build the binary first: cargo build -p switchboard (or set SWITCHBOARD_BIN)"
    );
    path
}

/// An AWS stand-in's endpoint for tests: `SWITCHBOARD_TEST_DYNAMODB_ENDPOINT` or
/// `SWITCHBOARD_TEST_MOTO_ENDPOINT` from the environment, else from the file
/// `tests/services/aws.sh start` writes. Panics with instructions without one.
pub fn aws_test_endpoint(var: &str) -> String {
    if let Ok(value) = std::env::var(var) {
        return value;
    }
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/aws-env");
    std::fs::read_to_string(env_file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {var}=")).map(str::to_owned))
        })
        .unwrap_or_else(|| {
            panic!(
                "{var} unset: run `tests/services/aws.sh install && tests/services/aws.sh start`"
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Polls the async `probe` until it returns `Some`, or panics after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `probe` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- stand-in API

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A provider API on loopback that records every request and answers like
/// Telegram's and Slack's success responses; or, while it is "down", answers
/// 503 to everything and records nothing.
#[derive(Clone)]
pub struct StandIn {
    pub base: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    refused_while_down: Arc<std::sync::atomic::AtomicUsize>,
    /// Calls still to be answered 503 before the API works again.
    fail_next: Arc<std::sync::atomic::AtomicUsize>,
}

impl StandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused_while_down = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fail_next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink = recorded.clone();
        let (is_down, refused, failing) =
            (down.clone(), refused_while_down.clone(), fail_next.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            let (is_down, refused, failing) = (is_down.clone(), refused.clone(), failing.clone());
            async move {
                let fail_this = failing
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |left| left.checked_sub(1),
                    )
                    .is_ok();
                if fail_this || is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(
                            json!({ "ok": false, "error_code": 503, "description": "down" }),
                        ),
                    )
                        .into_response();
                }
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().unwrap().push(Recorded {
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect(),
                    body,
                });
                (
                    StatusCode::OK,
                    // Also an access token, as WeChat, WeCom and Feishu hand them out.
                    axum::Json(
                        json!({ "ok": true, "result": { "message_id": 1 }, "errcode": 0,
                        "code": 0, "access_token": "stand-in-token", "expires_in": 7200,
                        "tenant_access_token": "stand-in-token", "expire": 7200 }),
                    ),
                )
                    .into_response()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            recorded,
            down,
            refused_while_down,
            fail_next,
        }
    }

    /// Answers the next `calls` calls 503 (counted as refused), then works.
    pub fn fail_next(&self, calls: usize) {
        self.fail_next
            .store(calls, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes the API down (every call answered 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Calls answered 503 (while down, or by `fail_next`).
    pub fn refused_while_down(&self) -> usize {
        self.refused_while_down
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// Requests whose path ends with `suffix` and that satisfy `filter`.
    pub fn matching(&self, suffix: &str, filter: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix) && filter(r))
            .collect()
    }
}

// ---------------------------------------------------------------- SMTP server

/// aiosmtpd on loopback, saving each message as a file.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    refuse: String,
    child: Option<Child>,
}

impl SmtpSink {
    pub fn start(dir: &Path) -> Self {
        Self::start_refusing(dir, "")
    }

    /// A server that refuses for good (550) recipients containing `refuse`.
    pub fn start_refusing(dir: &Path, refuse: &str) -> Self {
        let (port, child) = Self::spawn(dir, None, refuse);
        Self {
            port,
            dir: dir.to_owned(),
            refuse: refuse.to_owned(),
            child: Some(child),
        }
    }

    /// Takes the server down: connections to its port are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Brings the server back on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.stop();
        let (_, child) = Self::spawn(&self.dir, Some(self.port), &self.refuse);
        self.child = Some(child);
    }

    fn spawn(dir: &Path, port: Option<u16>, refuse: &str) -> (u16, Child) {
        let python = std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("support")
            .join("smtp_sink.py");
        let mut command = Command::new(&python);
        command.arg(script).arg("--dir").arg(dir);
        if let Some(port) = port {
            command.arg("--port").arg(port.to_string());
        }
        if !refuse.is_empty() {
            command.arg("--refuse").arg(refuse);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the SMTP server with {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("aiosmtpd did not start (is it installed for {python}?): {line:?}")
            });
        (port, child)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        eventually(
            &format!("{count} email(s)"),
            Duration::from_secs(20),
            || {
                let messages = self.messages();
                (messages.len() >= count).then_some(messages)
            },
        )
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of a header in a raw message (first occurrence, unfolded).
pub fn mail_header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((key, value)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            let mut value = value.trim().to_owned();
            while lines
                .peek()
                .is_some_and(|l| l.starts_with(' ') || l.starts_with('\t'))
            {
                value.push(' ');
                value.push_str(lines.next().unwrap().trim());
            }
            return Some(value);
        }
    }
    None
}

/// The message's text body, with quoted-printable undone.
pub fn mail_text(raw: &str) -> String {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""));
    let head = head.to_ascii_lowercase();
    // Mostly non-ASCII bodies (a Chinese transcript) go as base64.
    if head.contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|_| body.to_owned());
    }
    let quoted = head.contains("content-transfer-encoding: quoted-printable");
    if !quoted {
        return body.to_owned();
    }
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'='
            && let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------- the server

#[derive(Clone)]
pub struct Options {
    pub conversation_workers: bool,
    pub notifier: bool,
    /// Escalation notifiers side by side.
    pub notifier_concurrency: usize,
    /// Attempts before a failing job is dead-lettered; with the test
    /// backoff (1 s, 2 s, 4 s, then 5 s) the default 40 retries for about
    /// three minutes.
    pub max_attempts: u32,
    pub vip_customers: Vec<String>,
    /// More TOML appended to the configuration (`[sla.regular]`, `[tiers]`, ...).
    pub extra_config: String,
    /// `[server] report_url`: the console's Report link.
    pub report_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            conversation_workers: true,
            notifier: true,
            notifier_concurrency: 2,
            max_attempts: 40,
            vip_customers: Vec::new(),
            extra_config: String::new(),
            report_url: None,
        }
    }
}

/// The channel settings as TOML tables (JSON strings and arrays are TOML too).
fn channels_toml(settings: &ChannelSettings) -> String {
    let mut toml = String::new();
    for (name, values) in settings {
        toml.push_str(&format!("\n[channels.{name}]\n"));
        for (key, value) in values.as_object().unwrap() {
            toml.push_str(&format!("{key} = {value}\n"));
        }
    }
    toml
}

/// `switchboard serve` with its own data folder, stand-in APIs and SMTP server.
pub struct Server {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub standin: StandIn,
    pub smtp: SmtpSink,
    port: u16,
    child: Option<Child>,
}

impl Server {
    pub async fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let standin = StandIn::start().await;
        // Mail to an address containing "nosuchuser" is refused for good (550).
        let smtp = SmtpSink::start_refusing(&dir.path().join("smtp"), "nosuchuser");
        let port = free_port();
        let mut server = Self {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            standin,
            smtp,
            port,
            child: None,
        };
        server.restart(options).await;
        server
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("switchboard.toml")
    }

    fn write_config(&self, options: &Options) {
        let vip: Vec<String> = options
            .vip_customers
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        let config = format!(
            r#"data_dir = "data"

[server]
listen = "127.0.0.1:{port}"
admin_token = "{ADMIN_TOKEN}"
tokens = [{{ name = "lee", scope = "agent", sha256 = "{AGENT_TOKEN_SHA256}" }}]
{report_url}

[routing]
vip_customers = [{vip}]

[email]
from = "{SUPPORT_ADDRESS}"
agents = "agents@shop.test"
priority_agents = "vip-agents@shop.test"

[email.smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"

# Short timings, so that outages and crashes play out in minutes: a job is
# retried for about three minutes (1 s, 2 s, 4 s, then every 5 s), a crashed
# attempt's job is taken over after 5 s, and dead letters are tried again
# every 2 s.
[workers]
conversation = {conversation}
notifier = {notifier}
concurrency = 2
notifier_concurrency = {notifier_concurrency}
max_attempts = {max_attempts}
retry_initial_secs = 1
retry_max_secs = 5
visibility_secs = 5
redrive_check_secs = 2

{channels}
{extra}"#,
            extra = options.extra_config,
            report_url = options
                .report_url
                .as_ref()
                .map(|url| format!("report_url = {url:?}"))
                .unwrap_or_default(),
            port = self.port,
            vip = vip.join(", "),
            smtp = self.smtp.port,
            conversation = options.conversation_workers,
            notifier = options.notifier,
            channels = channels_toml(&channel_settings(&self.standin.base)),
            notifier_concurrency = options.notifier_concurrency,
            max_attempts = options.max_attempts,
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// (Re)starts the process with these options and waits until it answers.
    pub async fn restart(&mut self, options: Options) {
        assert!(self.child.is_none(), "stop the server first");
        self.write_config(&options);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(switchboard_bin())
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting switchboard serve");
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "switchboard serve exited with {status}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "switchboard serve did not come up; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// `switchboard queue stats` for this server's database: one object per queue.
    pub fn queue_stats(&self) -> Vec<Value> {
        let output = Command::new(switchboard_bin())
            .arg("--config")
            .arg(self.config_path())
            .args(["queue", "stats"])
            .output()
            .expect("running switchboard queue stats");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("queue stats are JSON")
    }

    /// The SQLite file this server keeps everything in.
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("data").join("switchboard.sqlite3")
    }

    /// GET `path` with `token`, the answer as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Counts of the queue items by state, from the health endpoint.
    pub async fn queue(&self, name: &str) -> Value {
        let health = self.get_json("/healthz", ADMIN_TOKEN).await;
        health["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name)
            .cloned()
            .unwrap()
    }

    /// Every item ever accepted into a queue, whatever its state.
    pub async fn queued_total(&self, name: &str) -> u64 {
        let q = self.queue(name).await;
        ["ready", "in_flight", "done", "dead"]
            .iter()
            .map(|k| q[*k].as_u64().unwrap())
            .sum()
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        post_to(&self.base, path, headers, body.into()).await
    }

    pub async fn post_telegram(&self, update: &Value) -> (u16, Value) {
        post_telegram_to(&self.base, update).await
    }

    pub async fn post_slack(&self, body: &str, timestamp: i64) -> (u16, Value) {
        let request = signed_request("slack", "application/json", &[], body, timestamp * 1000);
        self.post_request(&request).await
    }

    /// Posts a request as it is (path, headers, body).
    pub async fn post_request(&self, request: &WebhookRequest) -> (u16, Value) {
        let headers: Vec<(&str, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap().to_owned()))
            .collect();
        let path = request.uri().path_and_query().unwrap().as_str();
        post_to(&self.base, path, &headers, request.body().to_vec()).await
    }

    /// Telegram `sendMessage` calls received for one chat.
    pub fn telegram_replies(&self, chat_id: i64) -> Vec<Recorded> {
        self.standin.matching("/sendMessage", |r| {
            r.body["chat_id"].as_i64() == Some(chat_id)
                || r.body["chat_id"].as_str() == Some(&chat_id.to_string())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            return;
        }
        let log = self.log();
        let texts = SENT_TEXTS.lock().unwrap().clone();
        if let Some(text) = texts.iter().find(|text| log.contains(text.as_str())) {
            panic!("the server log repeats a message text ({text:?}):\n{log}");
        }
    }
}

/// Posts to a running server; answers the status and the JSON (or text) body.
pub async fn post_to(
    base: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn post_telegram_to(base: &str, update: &Value) -> (u16, Value) {
    let request = signed_request(
        "telegram",
        "application/json",
        &[],
        update.to_string(),
        now_secs() * 1000,
    );
    let headers: Vec<(&str, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap().to_owned()))
        .collect();
    post_to(
        base,
        "/webhooks/telegram",
        &headers,
        request.body().to_vec(),
    )
    .await
}

/// A Telegram update with a private text message from `chat_id`.
pub fn telegram_update(update_id: i64, chat_id: i64, text: &str) -> Value {
    remember_text(text);
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id % 100_000,
            "from": { "id": chat_id, "is_bot": false, "first_name": "Ana", "language_code": "en" },
            "chat": { "id": chat_id, "first_name": "Ana", "type": "private" },
            "date": now_secs(),
            "text": text
        }
    })
}

/// A Telegram update for a tap on an inline button (`data`) under our
/// message `message_id` in the private chat `chat_id`.
pub fn telegram_tap(update_id: i64, chat_id: i64, message_id: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("cb{update_id}"),
            "from": { "id": chat_id, "is_bot": false, "first_name": "Ana", "language_code": "en" },
            "message": {
                "message_id": message_id,
                "from": { "id": 1, "is_bot": true, "first_name": "Shop" },
                "chat": { "id": chat_id, "first_name": "Ana", "type": "private" },
                "date": now_secs(),
                "text": "…"
            },
            "chat_instance": format!("ci{chat_id}"),
            "data": data
        }
    })
}

/// A Slack Events API message event.
pub fn slack_event(event_id: &str, user: &str, channel: &str, ts: &str, text: &str) -> String {
    remember_text(text);
    json!({
        "token": "legacy",
        "team_id": "T0SHOP",
        "api_app_id": "A0SHOP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": now_secs(),
        "event": { "type": "message", "channel": channel, "channel_type": "im", "user": user, "text": text, "ts": ts }
    })
    .to_string()
}

/// A Mailgun inbound-route post (urlencoded), signed now with a fresh token.
pub fn mailgun_form(
    from: &str,
    subject: &str,
    text: &str,
    message_id: &str,
    extra_headers: &[(&str, &str)],
) -> String {
    remember_text(text);
    let mut headers = vec![
        json!(["From", from]),
        json!(["To", SUPPORT_ADDRESS]),
        json!(["Subject", subject]),
        json!(["Message-Id", message_id]),
    ];
    headers.extend(extra_headers.iter().map(|(k, v)| json!([k, v])));
    let message_headers = Value::Array(headers).to_string();
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("sender", from)
        .append_pair("from", from)
        .append_pair("recipient", SUPPORT_ADDRESS)
        .append_pair("subject", subject)
        .append_pair("body-plain", text)
        .append_pair("stripped-text", text)
        .append_pair("message-headers", &message_headers);
    let content_type = "application/x-www-form-urlencoded";
    let request = signed_request(
        "mailgun",
        content_type,
        &[],
        form.finish(),
        now_secs() * 1000,
    );
    String::from_utf8(request.body().to_vec()).unwrap()
}
