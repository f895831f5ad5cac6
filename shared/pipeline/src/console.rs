//! The agents' console: one page (`GET /console`) and its script and style,
//! embedded in the binary and served by the one router, over the agents' API.
//!
//! The page is static; the script builds every element with `textContent`,
//! so whatever a customer wrote is shown as text. The agent's token stays in
//! the page's memory and travels as `Authorization: Bearer`, so the console
//! works behind the API Gateway token authorizer as it does locally; it is
//! never put in a URL or in storage.
//!
//! Cross-site request forgery: a state-changing `/api` call made by a
//! browser (it sends `Origin` or `Sec-Fetch-Site`) must also carry
//! `X-CSRF-Token`, a value derived from the caller's own token that
//! `GET /api/session` hands to the page. Other clients (curl, scripts) send
//! neither header and need no CSRF token: they hold no ambient credential.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_channels::HttpReply;
use switchboard_channels::kit::reply;
use utoipa::ToSchema;

use crate::access::Scope;
use crate::http::{HttpApi, authorize, respond};

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");
const ICON: &str = include_str!("console/icon.svg");

/// No inline script or style, nothing from elsewhere, not framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The page, its script and its style.
pub fn routes() -> Router<Arc<HttpApi>> {
    Router::new()
        .route("/console", get(page))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route("/console/icon.svg", get(icon))
        .route("/api/session", get(session))
}

fn asset(content_type: &str, body: &'static str) -> Response {
    let mut reply = reply::with_type(200, content_type, body);
    let headers = reply.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        // Short, so that a new deployment's page reaches agents quickly.
        ("cache-control", "no-cache"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    respond(reply)
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

/// Who the token belongs to, and what the console needs to work for them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleSession {
    /// The token's holder.
    pub agent: String,
    /// `agent` or `admin`.
    pub scope: String,
    /// Send it as `X-CSRF-Token` with every state-changing call made from a browser.
    pub csrf_token: String,
    /// Where the HTML report is published (`server.report_url`), if anywhere.
    pub report_url: Option<String>,
}

/// The caller's identity, the CSRF token for their token, and the report's address.
#[utoipa::path(
    get,
    path = "/api/session",
    tag = "console",
    responses(
        (status = 200, description = "The caller", body = ConsoleSession),
        (status = 401, description = "No valid token", body = crate::agents_api::ApiError),
        (status = 403, description = "The agents' API is not enabled here", body = crate::agents_api::ApiError),
    )
)]
pub(crate) async fn session(State(api): State<Arc<HttpApi>>, request: Request) -> Response {
    respond(console_session(&api, request.headers()).unwrap_or_else(|reply| reply))
}

#[allow(clippy::result_large_err)] // the error is the answer itself
fn console_session(api: &HttpApi, headers: &http::HeaderMap) -> Result<HttpReply, HttpReply> {
    if api.desk.is_none() || api.access.is_empty() {
        return Err(reply::error(
            403,
            "forbidden",
            "the agents' API is not enabled here",
        ));
    }
    let caller = authorize(&api.access, headers, Scope::Agent)?;
    let token = bearer(headers).unwrap_or_default();
    Ok(reply::json(
        200,
        &ConsoleSession {
            agent: caller.name,
            scope: caller.scope.as_str().to_owned(),
            csrf_token: csrf_token(token),
            report_url: api.report_url.clone(),
        },
    ))
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The CSRF token that goes with an agent's token: a hash of it under its own
/// label, so it needs no state (any instance checks it) and cannot be
/// computed without the token itself.
pub fn csrf_token(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"switchboard console csrf v1\0");
    hash.update(token.as_bytes());
    hex::encode(hash.finalize())
}

/// Refuses a state-changing call from a browser without the CSRF token that
/// goes with its bearer token. Call it once the token has been checked.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub fn check_csrf(method: &http::Method, headers: &http::HeaderMap) -> Result<(), HttpReply> {
    let safe = matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    let from_browser = headers.contains_key(http::header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key(http::header::COOKIE);
    if safe || !from_browser {
        return Ok(());
    }
    let expected = csrf_token(bearer(headers).unwrap_or_default());
    let presented = headers
        .get(CSRF_HEADER)
        .map(http::HeaderValue::as_bytes)
        .unwrap_or_default();
    if bool::from(presented.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(reply::error(
            403,
            "csrf",
            "a state-changing call from a browser needs the X-CSRF-Token header from GET /api/session",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn browsers_need_the_csrf_token_of_their_own_token_for_changes() {
        let post = http::Method::POST;
        let token = csrf_token("agent-token");
        assert_ne!(token, csrf_token("other-token"));
        // curl and scripts: no browser headers, no CSRF token needed.
        assert!(check_csrf(&post, &headers(&[("authorization", "Bearer agent-token")])).is_ok());
        // Reading is always fine.
        assert!(
            check_csrf(
                &http::Method::GET,
                &headers(&[("origin", "https://evil.test")])
            )
            .is_ok()
        );
        let browser = [
            ("authorization", "Bearer agent-token"),
            ("sec-fetch-site", "same-origin"),
        ];
        let refused = check_csrf(&post, &headers(&browser)).unwrap_err();
        assert_eq!(refused.status(), 403);
        let mut with_token = browser.to_vec();
        with_token.push((CSRF_HEADER, &token));
        assert!(check_csrf(&post, &headers(&with_token)).is_ok());
        // Another token's CSRF token does not do.
        let other = csrf_token("other-token");
        let wrong = [
            ("authorization", "Bearer agent-token"),
            ("origin", "http://127.0.0.1"),
            (CSRF_HEADER, other.as_str()),
        ];
        assert_eq!(
            check_csrf(&http::Method::DELETE, &headers(&wrong))
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn the_page_loads_nothing_inline_and_nothing_from_elsewhere() {
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style="));
        for handler in ["onclick=", "onload=", "onsubmit=", "onerror="] {
            assert!(!PAGE.contains(handler), "{handler}");
        }
        for asset in [PAGE, SCRIPT, STYLE] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
        }
        // Text goes in as text: the script never writes HTML.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
