//! The one outbound HTTP sender every channel uses: one timeout, one way to
//! classify the provider's answer as retryable or permanent (HTTP status, and
//! error codes in 2xx bodies), `Retry-After`, splitting long text at the
//! channel's limit, and logs with ids and outcomes, never bodies or URLs
//! (Telegram puts the bot token in the URL).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use switchboard_domain::{MaybeDelivered, RetryAfter, SendError};

/// How long one outbound API call may take before it counts as a network failure.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// A `Retry-After` up to this long is waited out in place, once.
const WAIT_IN_PLACE: Duration = Duration::from_secs(3);

/// How a provider reports failures inside its answers.
#[derive(Debug, Clone, Copy)]
pub struct ApiErrors {
    /// JSON pointer of the success flag or code in a 2xx body: `true` or `0`
    /// means success (Slack `/ok`, WeChat `/errcode`). `None`: status only.
    pub ok: Option<&'static str>,
    /// JSON pointer of the error code or description, for details.
    pub code: &'static str,
    /// Error codes worth another attempt later, separated by spaces.
    pub transient: &'static str,
    /// Error codes that mean our access token is no longer valid, separated by spaces.
    pub stale_token: &'static str,
    /// JSON pointer of a wait in seconds the provider asks for (Telegram).
    pub retry_after: Option<&'static str>,
}

/// Providers that answer with HTTP statuses alone.
pub const STATUS_ONLY: ApiErrors = ApiErrors {
    ok: None,
    code: "",
    transient: "",
    stale_token: "",
    retry_after: None,
};

/// The provider's answer to one call.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The source of a transient [`SendError`] when the provider refused our
/// access token; [`crate::kit::credentials::TokenCache`] then refreshes it.
#[derive(Debug, thiserror::Error)]
#[error("the provider no longer accepts the access token")]
pub struct StaleToken;

/// Sends a channel's API calls.
#[derive(Clone)]
pub struct Sender {
    channel: &'static str,
    http: super::descriptor::HttpClient,
    errors: ApiErrors,
}

impl Sender {
    pub fn new(
        channel: &'static str,
        http: impl Into<super::descriptor::HttpClient>,
        errors: ApiErrors,
    ) -> Self {
        Self {
            channel,
            http: http.into(),
            errors,
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        self.http.get()
    }

    /// A JSON POST, with a bearer token where the provider wants one; fields
    /// that are `null` are left out rather than sent as `null`.
    pub fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> reqwest::RequestBuilder {
        let request = self.http().post(url).json(&super::json::compact(body));
        match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends one call and classifies the answer. A short `Retry-After` is
    /// waited out and the call made once more.
    pub async fn call(
        &self,
        reply_id: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<ApiResponse, SendError> {
        let started = Instant::now();
        let retry = request.try_clone();
        let mut outcome = self.attempt(request).await;
        if let (Err(error), Some(retry)) = (&outcome, retry)
            && let Some(wait) = error.retry_after().filter(|wait| *wait <= WAIT_IN_PLACE)
        {
            tokio::time::sleep(wait).await;
            outcome = self.attempt(retry).await;
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(response) => tracing::info!(
                channel = self.channel,
                reply_id,
                status = response.status.as_u16(),
                elapsed_ms,
                "reply sent"
            ),
            Err(error) => tracing::warn!(
                channel = self.channel,
                reply_id,
                transient = error.is_transient(),
                elapsed_ms,
                error = %switchboard_domain::error_chain(error),
                "reply not sent"
            ),
        }
        outcome
    }

    /// Sends a reply's text in parts of at most `max` units, one call each;
    /// `build` makes the call for the part at an index.
    pub async fn send_text<F>(
        &self,
        reply: &switchboard_domain::OutboundReply,
        max: usize,
        unit: TextUnit,
        build: F,
    ) -> Result<(), SendError>
    where
        F: Fn(usize, &str) -> reqwest::RequestBuilder,
    {
        // A tap's acknowledgement was answered by its token already (the
        // channel does that first): there is nothing to write.
        if reply.acknowledges_only() {
            return Ok(());
        }
        if reply.text.trim().is_empty() {
            return Err(permanent(self.channel, "empty reply text"));
        }
        for (index, part) in split_text(&reply.text, max, unit).into_iter().enumerate() {
            self.call(&reply.reply_id, build(index, part)).await?;
        }
        Ok(())
    }

    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<ApiResponse, SendError> {
        let response = request
            .timeout(SEND_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.network_error(error))?;
        let status = response.status();
        let header_wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|error| self.network_error(error))?;
        let answer = ApiResponse { status, body };
        self.classify(&answer, header_wait)?;
        Ok(answer)
    }

    fn classify(
        &self,
        answer: &ApiResponse,
        header_wait: Option<Duration>,
    ) -> Result<(), SendError> {
        let reads_body = self.errors.ok.is_some()
            || self.errors.retry_after.is_some()
            || !self.errors.code.is_empty();
        let body = if reads_body { answer.json() } else { None };
        let code = body
            .as_ref()
            .and_then(|body| body.pointer(self.errors.code))
            .map(|code| match code {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let wait = header_wait.or_else(|| {
            let seconds = body.as_ref()?.pointer(self.errors.retry_after?)?.as_u64()?;
            Some(Duration::from_secs(seconds))
        });
        let failed_in_body = match (self.errors.ok, &body) {
            (Some(pointer), Some(body)) => match body.pointer(pointer) {
                Some(Value::Bool(ok)) => !ok,
                Some(Value::Number(number)) => number.as_i64() != Some(0),
                _ => false,
            },
            (Some(_), None) if answer.status.is_success() => {
                return Err(self.transient("unreadable answer".into(), None));
            }
            _ => false,
        };
        let detail = format!("HTTP {} {}", answer.status.as_u16(), clip(&code, 100));
        let detail = detail.trim_end().to_owned();
        if answer.status.is_success() && !failed_in_body {
            return Ok(());
        }
        let listed = |codes: &str| !code.is_empty() && codes.split_whitespace().any(|c| c == code);
        if listed(self.errors.stale_token) {
            return Err(self.transient(detail, Some(Box::new(StaleToken))));
        }
        let transient =
            status_is_transient(answer.status) || (failed_in_body && listed(self.errors.transient));
        if transient {
            let source = wait.map(|wait| Box::new(RetryAfter(wait)) as _);
            Err(self.transient(detail, source))
        } else {
            Err(permanent(self.channel, detail))
        }
    }

    fn transient(&self, detail: String, source: Option<switchboard_domain::BoxError>) -> SendError {
        SendError::Transient {
            channel: self.channel.to_owned(),
            detail,
            source,
        }
    }

    /// A failure before any HTTP status: transient, with the URL stripped so
    /// that a token in the path cannot reach a log through the source chain.
    /// Only a failure to connect proves the provider never saw the request.
    fn network_error(&self, error: reqwest::Error) -> SendError {
        if error.is_connect() {
            return self.transient(
                "could not connect".into(),
                Some(Box::new(error.without_url())),
            );
        }
        let detail = if error.is_timeout() {
            "request timed out"
        } else {
            "network error"
        };
        let source = MaybeDelivered(Box::new(error.without_url()));
        self.transient(detail.into(), Some(Box::new(source)))
    }
}

/// A UUID fixed by our reply id and a call's index, for providers that send
/// a call with the same idempotency key once (LINE's `X-Line-Retry-Key`,
/// Feishu's `uuid`): a retried reply is not delivered twice.
pub fn idempotency_key(reply_id: &str, index: usize) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{reply_id}:{index}"));
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Whether a non-success HTTP status is worth retrying: rate limits, request
/// timeouts and server errors are; every other client error is not.
pub fn status_is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

pub fn permanent(channel: &str, detail: impl Into<String>) -> SendError {
    SendError::Permanent {
        channel: channel.to_owned(),
        detail: detail.into(),
        source: None,
    }
}

/// At most `max` characters of a provider's error text, for error details.
pub fn clip(text: &str, max: usize) -> String {
    match first_chars(text, max) {
        kept if kept.len() < text.len() => format!("{kept}…"),
        _ => text.to_owned(),
    }
}

/// The first `max` characters of `text` (all of it when shorter), cut on a
/// character boundary.
pub fn first_chars(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
}

/// The unit in which a provider measures its text limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextUnit {
    Chars,
    /// UTF-16 code units (Telegram).
    Utf16,
    Bytes,
}

/// Splits `text` into pieces of at most `max` units, preferring to break after
/// a newline or a space in the second half of a piece. Every piece holds at
/// least one character, so a character wider than `max` still goes out.
pub fn split_text(text: &str, max: usize, unit: TextUnit) -> Vec<&str> {
    let width = |ch: char| match unit {
        TextUnit::Chars => 1,
        TextUnit::Utf16 => ch.len_utf16(),
        TextUnit::Bytes => ch.len_utf8(),
    };
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let mut units = 0usize;
        let mut hard = None;
        for (at, ch) in rest.char_indices() {
            units = units.saturating_add(width(ch));
            if units > max {
                hard = Some(if at == 0 { ch.len_utf8() } else { at });
                break;
            }
        }
        let Some(hard) = hard else { break };
        let window = &rest[..hard];
        let soft = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|at| *at >= hard / 2)
            .map(|at| at + 1);
        let cut = soft.unwrap_or(hard);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// An `http`/`https` URL from the settings (surrounding spaces dropped).
pub fn http_url(key: &str, value: &str) -> Result<String, super::Unusable> {
    let trimmed = value.trim();
    let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
    if !scheme_ok || reqwest::Url::parse(trimmed).is_err() {
        return Err(super::unusable(format!("{key} must be an http(s) URL")));
    }
    Ok(trimmed.to_owned())
}

/// Like [`http_url`], for a base that paths are appended to: no trailing `/`.
pub fn base_url(key: &str, value: &str) -> Result<String, super::Unusable> {
    http_url(key, value.trim().trim_end_matches('/'))
}

/// The configured base URL, else the provider's.
pub fn base_url_or(
    key: &str,
    value: Option<&str>,
    default: &str,
) -> Result<String, super::Unusable> {
    base_url(key, value.unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_uuids() {
        assert_eq!(idempotency_key("r1", 0), idempotency_key("r1", 0));
        assert_ne!(idempotency_key("r1", 0), idempotency_key("r1", 1));
        assert_ne!(idempotency_key("r1", 0), idempotency_key("r2", 0));
        assert!(uuid::Uuid::parse_str(&idempotency_key("r1", 0)).is_ok());
    }

    fn answer(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        }
    }

    const SLACK_LIKE: ApiErrors = ApiErrors {
        ok: Some("/ok"),
        code: "/error",
        transient: "ratelimited",
        stale_token: "token_expired",
        retry_after: None,
    };

    #[test]
    fn statuses_and_body_codes_are_classified() {
        let plain = Sender::new("t", reqwest::Client::new(), STATUS_ONLY);
        assert!(plain.classify(&answer(200, ""), None).is_ok());
        assert!(
            plain
                .classify(&answer(429, ""), None)
                .unwrap_err()
                .is_transient()
        );
        assert!(
            plain
                .classify(&answer(502, ""), None)
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !plain
                .classify(&answer(400, ""), None)
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !plain
                .classify(&answer(403, ""), None)
                .unwrap_err()
                .is_transient()
        );

        let slack = Sender::new("s", reqwest::Client::new(), SLACK_LIKE);
        assert!(slack.classify(&answer(200, r#"{"ok":true}"#), None).is_ok());
        let limited = slack
            .classify(&answer(200, r#"{"ok":false,"error":"ratelimited"}"#), None)
            .unwrap_err();
        assert!(limited.is_transient());
        let refused = slack
            .classify(
                &answer(200, r#"{"ok":false,"error":"channel_not_found"}"#),
                None,
            )
            .unwrap_err();
        assert!(!refused.is_transient());
        assert!(refused.to_string().contains("channel_not_found"));
        assert!(
            slack
                .classify(&answer(200, "<html>"), None)
                .unwrap_err()
                .is_transient()
        );
        let stale = slack
            .classify(
                &answer(200, r#"{"ok":false,"error":"token_expired"}"#),
                None,
            )
            .unwrap_err();
        let SendError::Transient {
            source: Some(source),
            ..
        } = stale
        else {
            panic!()
        };
        assert!(source.downcast_ref::<StaleToken>().is_some());

        let wechat_like = ApiErrors {
            ok: Some("/errcode"),
            code: "/errcode",
            transient: "-1",
            ..STATUS_ONLY
        };
        let wechat = Sender::new("w", reqwest::Client::new(), wechat_like);
        assert!(
            wechat
                .classify(&answer(200, r#"{"errcode":0}"#), None)
                .is_ok()
        );
        assert!(
            wechat
                .classify(&answer(200, r#"{"errcode":-1}"#), None)
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !wechat
                .classify(&answer(200, r#"{"errcode":40003}"#), None)
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn retry_after_is_read_from_header_or_body() {
        let plain = Sender::new("t", reqwest::Client::new(), STATUS_ONLY);
        let error = plain
            .classify(&answer(429, ""), Some(Duration::from_secs(30)))
            .unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        let telegram_like = ApiErrors {
            code: "/description",
            retry_after: Some("/parameters/retry_after"),
            ..STATUS_ONLY
        };
        let telegram = Sender::new("t", reqwest::Client::new(), telegram_like);
        let error = telegram
            .classify(
                &answer(429, r#"{"ok":false,"description":"Too Many Requests","parameters":{"retry_after":7}}"#),
                None,
            )
            .unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(error.to_string().contains("Too Many Requests"));
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("k", "https://x.test/api/").unwrap(),
            "https://x.test/api"
        );
        assert!(base_url("k", "ftp://x.test").is_err());
        assert!(base_url("k", "not a url").is_err());
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 5), "hi");
    }

    #[test]
    fn long_text_is_split_on_spaces_within_the_limit() {
        let text = "word ".repeat(2000);
        let parts = split_text(&text, 4096, TextUnit::Utf16);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|part| part.encode_utf16().count() <= 4096));
        assert_eq!(parts.concat(), text);
        assert_eq!(split_text("短", 1, TextUnit::Chars), ["短"]);
        assert_eq!(split_text("长长长", 2, TextUnit::Chars), ["长长", "长"]);
        assert_eq!(split_text("长长", 3, TextUnit::Bytes), ["长", "长"]);
        assert!(split_text("", 10, TextUnit::Chars).is_empty());
    }

    #[test]
    fn utf16_units_are_counted_like_telegram() {
        // Each emoji is two UTF-16 units: 3000 of them need two messages.
        let text = "😀".repeat(3000);
        let parts = split_text(&text, 4096, TextUnit::Utf16);
        let units: Vec<usize> = parts.iter().map(|p| p.encode_utf16().count()).collect();
        assert_eq!(units, [4096, 1904]);
        assert_eq!(parts.concat(), text);
        assert_eq!(split_text("😀😀", 1, TextUnit::Utf16), ["😀", "😀"]);
    }
}

/// A provider API on loopback for the channels' unit tests: answers every
/// call with `{}` and keeps the JSON bodies.
#[cfg(test)]
pub mod tests_support {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    pub struct Recorder {
        pub base: String,
        bodies: Arc<Mutex<Vec<Value>>>,
    }

    impl Recorder {
        pub async fn start() -> Self {
            let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
            let sink = bodies.clone();
            let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let value = serde_json::from_slice(&body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
                    sink.lock().unwrap().push(value);
                    axum::Json(serde_json::json!({}))
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self { base, bodies }
        }

        pub fn bodies(&self) -> Vec<Value> {
            self.bodies.lock().unwrap().clone()
        }
    }
}
