//! Shared plumbing for the HTTP senders: one timeout, one way to classify a
//! provider's answer as transient or permanent, and errors that never carry the
//! request URL (Telegram puts the bot token in it).

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_domain::SendError;

/// How long one outbound API call may take before it counts as a network failure.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// The provider's answer to one call.
pub(crate) struct ApiResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Sends the request with [`SEND_TIMEOUT`] and reads the whole answer.
/// Connection trouble and timeouts are transient.
pub(crate) async fn send(
    channel: &str,
    request: reqwest::RequestBuilder,
) -> Result<ApiResponse, SendError> {
    let response = request
        .timeout(SEND_TIMEOUT)
        .send()
        .await
        .map_err(|error| network_error(channel, error))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| network_error(channel, error))?;
    Ok(ApiResponse {
        status,
        body: body.to_vec(),
    })
}

/// A failure before any HTTP status was received. The URL is stripped from the
/// error so that a token in the path cannot reach a log through the source chain.
pub(crate) fn network_error(channel: &str, error: reqwest::Error) -> SendError {
    let detail = if error.is_timeout() {
        "request timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "network error"
    };
    SendError::Transient {
        channel: channel.to_owned(),
        detail: detail.to_owned(),
        source: Some(Box::new(error.without_url())),
    }
}

/// Whether a non-success HTTP status is worth retrying: rate limits, request
/// timeouts and server errors are; every other client error is not.
pub(crate) fn status_is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `Ok` for a 2xx status, else the matching [`SendError`] with `detail`.
pub(crate) fn check_status(
    channel: &str,
    status: StatusCode,
    detail: impl Into<String>,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let channel = channel.to_owned();
    let detail = detail.into();
    if status_is_transient(status) {
        Err(SendError::Transient {
            channel,
            detail,
            source: None,
        })
    } else {
        Err(SendError::Permanent {
            channel,
            detail,
            source: None,
        })
    }
}

pub(crate) fn permanent(channel: &str, detail: impl Into<String>) -> SendError {
    SendError::Permanent {
        channel: channel.to_owned(),
        detail: detail.into(),
        source: None,
    }
}

pub(crate) fn transient(channel: &str, detail: impl Into<String>) -> SendError {
    SendError::Transient {
        channel: channel.to_owned(),
        detail: detail.into(),
        source: None,
    }
}

/// At most `max` characters of a provider's error text, for error details.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Current unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    use switchboard_domain::Clock;
    switchboard_domain::SystemClock.now_ms()
}

/// Validates an `http`/`https` URL from the settings (surrounding spaces dropped).
pub(crate) fn http_url(
    channel: &str,
    key: &str,
    value: &str,
) -> Result<String, crate::ConfigError> {
    let trimmed = value.trim();
    let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
    if !scheme_ok || reqwest::Url::parse(trimmed).is_err() {
        return Err(crate::ConfigError::Unusable {
            channel: channel.to_owned(),
            detail: format!("{key} must be an http(s) URL"),
        });
    }
    Ok(trimmed.to_owned())
}

/// Like [`http_url`], for a base that paths are appended to: drops a trailing `/`.
pub(crate) fn base_url(
    channel: &str,
    key: &str,
    value: &str,
) -> Result<String, crate::ConfigError> {
    http_url(channel, key, value.trim().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(check_status("t", StatusCode::OK, "").is_ok());
        assert!(
            check_status("t", StatusCode::TOO_MANY_REQUESTS, "")
                .unwrap_err()
                .is_transient()
        );
        assert!(
            check_status("t", StatusCode::BAD_GATEWAY, "")
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !check_status("t", StatusCode::BAD_REQUEST, "")
                .unwrap_err()
                .is_transient()
        );
        assert!(
            !check_status("t", StatusCode::FORBIDDEN, "")
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 5), "hi");
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("c", "k", "https://x.test/api/").unwrap(),
            "https://x.test/api"
        );
        assert!(base_url("c", "k", "ftp://x.test").is_err());
        assert!(base_url("c", "k", "not a url").is_err());
    }
}
