//! The one HTTP router: webhooks and the agents' API. `switchboard serve`
//! serves it with hyper, the Lambda functions through `lambda_http` (API
//! Gateway HTTP API v2 and Function URLs): the same code path either way.
//!
//! * `POST|GET /webhooks/{channel}`: provider webhooks and handshakes;
//! * the agents' conversations, replies and customers' tiers (`agents_api`,
//!   which also serves the OpenAPI document of every `/api` route);
//! * `GET /console` and its assets: the agents' console (`console`);
//! * `POST /api/feedback`: a customer's feedback;
//! * `GET /api/customers/{customer}/export`, `DELETE /api/customers/{customer}`:
//!   everything stored about a customer, exported or erased (admin scope).
//!
//! The `/api` routes need `Authorization: Bearer <token>` with the route's
//! scope (`access`): 401 without a known token, 403 when its scope is short.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use switchboard_channels::kit::reply;
use switchboard_channels::{HttpReply, PublicUrl, RequestExt};

use crate::access::{AccessTokens, Denied, Principal, Scope};
use crate::desk::{AgentDesk, DeskError};
use crate::ingress::{Ingress, IngressError, MAX_BODY_BYTES};
use crate::privacy::{CustomerPrivacy, PrivacyError};

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpApi {
    pub ingress: Arc<Ingress>,
    /// The agents' API; `None` where a function serves webhooks only.
    pub desk: Option<Arc<AgentDesk>>,
    /// Export and erase; `None` where the agents' API is not served.
    pub privacy: Option<Arc<CustomerPrivacy>>,
    /// Who may call the agents' API.
    pub access: Arc<AccessTokens>,
    /// The base URL providers call (some sign it); without it, the `Host`
    /// header and the request URI tell.
    pub public_url: Option<String>,
    /// Where the HTML report is published, linked from the console.
    pub report_url: Option<String>,
}

/// Webhooks and the agents' API.
pub fn router(api: Arc<HttpApi>) -> Router {
    Router::new()
        .route("/webhooks/{channel}", any(webhook))
        .merge(crate::agents_api::routes())
        .merge(crate::console::routes())
        .route("/api/feedback", post(feedback))
        .route("/api/customers/{customer}/export", get(export_customer))
        .route(
            "/api/customers/{customer}",
            crate::agents_api::set_tier_route().delete(erase_customer),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
}

/// An `http` response for axum.
pub fn respond(reply: HttpReply) -> Response {
    let (parts, body) = reply.into_parts();
    Response::from_parts(parts, Body::from(body))
}

async fn not_found() -> Response {
    respond(reply::error(404, "not_found", "no such route"))
}

async fn method_not_allowed() -> Response {
    respond(reply::error(
        405,
        "method_not_allowed",
        "this route does not take that method",
    ))
}

/// A body over the limit is still read, up to this much, and dropped, so that
/// the client receives the 413 rather than a connection reset mid-upload.
const DRAIN_BYTES: usize = 4 * MAX_BODY_BYTES;

/// The body within the size limit and time limit.
#[allow(clippy::result_large_err)] // the error is the answer itself
async fn read_body(request: Request) -> Result<http::Request<Bytes>, HttpReply> {
    use http_body_util::BodyExt;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or_default();
    let (parts, mut body) = request.into_parts();
    let reading = async {
        let mut kept = bytes::BytesMut::new();
        let mut seen = declared.min(DRAIN_BYTES + 1);
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| ())?.into_data() else {
                continue;
            };
            read = read.saturating_add(data.len());
            seen = seen.max(read);
            if seen <= MAX_BODY_BYTES {
                kept.extend_from_slice(&data);
            } else if read > DRAIN_BYTES {
                break;
            }
        }
        Ok::<_, ()>((kept.freeze(), seen))
    };
    match tokio::time::timeout(BODY_TIMEOUT, reading).await {
        Ok(Ok((_, seen))) if seen > MAX_BODY_BYTES => Err(IngressError::TooLarge(seen).to_reply()),
        Ok(Ok((bytes, _))) => Ok(http::Request::from_parts(parts, bytes)),
        Ok(Err(())) => Err(reply::error(
            400,
            "bad_request",
            "the request body was cut off",
        )),
        Err(_) => Err(reply::error(
            408,
            "timeout",
            "the request body took too long",
        )),
    }
}

async fn webhook(
    State(api): State<Arc<HttpApi>>,
    Path(channel): Path<String>,
    request: Request,
) -> Response {
    // Known channel first, so an unknown one is 404 whatever its body.
    if let Err(error) = api.ingress.check_channel(&channel) {
        return respond(error.to_reply());
    }
    let mut request = match read_body(request).await {
        Ok(request) => request,
        Err(reply) => return respond(reply),
    };
    let public_url = public_url(api.public_url.as_deref(), &request);
    request.extensions_mut().insert(PublicUrl(public_url));
    respond(api.ingress.handle(&channel, request).await)
}

/// The URL as the provider called it: the configured public base plus path
/// and query; else the absolute URI (Lambda); else the `Host` header.
fn public_url(base: Option<&str>, request: &http::Request<Bytes>) -> String {
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match base {
        Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
        None if request.uri().authority().is_some() => request.uri().to_string(),
        None => {
            let host = request.header("host").unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    }
}

/// Records a customer's feedback on a conversation.
#[utoipa::path(
    post,
    path = "/api/feedback",
    tag = "feedback",
    request_body = crate::desk::FeedbackInput,
    responses(
        (status = 200, description = "Stored", body = crate::agents_api::Ok),
        (status = 400, description = "Bad body", body = crate::agents_api::ApiError),
        (status = 401, description = "No valid token", body = crate::agents_api::ApiError),
        (status = 403, description = "Scope too small", body = crate::agents_api::ApiError),
        (status = 404, description = "No such conversation", body = crate::agents_api::ApiError),
        (status = 503, description = "Store unavailable", body = crate::agents_api::ApiError),
    )
)]
pub(crate) async fn feedback(State(api): State<Arc<HttpApi>>, request: Request) -> Response {
    let result = async {
        let (desk, _agent, body) = desk_request(&api, request, Scope::Agent).await?;
        let input = parse_json(&body)?;
        Ok(desk.feedback(&input).await)
    };
    respond(match result.await {
        Ok(outcome) => ok_or_error(outcome),
        Err(reply) => reply,
    })
}

/// Everything stored about a customer (admin scope).
#[utoipa::path(
    get,
    path = "/api/customers/{customer}/export",
    tag = "customers",
    params(("customer" = String, Path, description = "`channel:customer_id`")),
    responses(
        (status = 200, description = "The customer's data", body = Object),
        (status = 400, description = "Bad customer key", body = crate::agents_api::ApiError),
        (status = 401, description = "No valid token", body = crate::agents_api::ApiError),
        (status = 403, description = "Needs the admin scope", body = crate::agents_api::ApiError),
        (status = 503, description = "Store unavailable", body = crate::agents_api::ApiError),
    )
)]
pub(crate) async fn export_customer(
    State(api): State<Arc<HttpApi>>,
    Path(customer): Path<String>,
    headers: http::HeaderMap,
) -> Response {
    let result = async {
        let (privacy, _admin) = privacy_request(&api, &headers)?;
        privacy.export(&customer).await.map_err(privacy_reply)
    };
    respond(match result.await {
        Ok(export) => reply::json(200, &export),
        Err(reply) => reply,
    })
}

/// Erases everything stored about a customer (admin scope).
#[utoipa::path(
    delete,
    path = "/api/customers/{customer}",
    tag = "customers",
    params(("customer" = String, Path, description = "`channel:customer_id`")),
    responses(
        (status = 200, description = "What was erased", body = Object),
        (status = 400, description = "Bad customer key", body = crate::agents_api::ApiError),
        (status = 401, description = "No valid token", body = crate::agents_api::ApiError),
        (status = 403, description = "Needs the admin scope", body = crate::agents_api::ApiError),
        (status = 503, description = "Store unavailable", body = crate::agents_api::ApiError),
    )
)]
pub(crate) async fn erase_customer(
    State(api): State<Arc<HttpApi>>,
    Path(customer): Path<String>,
    headers: http::HeaderMap,
) -> Response {
    let result = async {
        let (privacy, admin) = privacy_request(&api, &headers)?;
        crate::console::check_csrf(&http::Method::DELETE, &headers)?;
        privacy
            .erase(&customer, &admin.name)
            .await
            .map_err(privacy_reply)
    };
    respond(match result.await {
        Ok(erasure) => reply::json(200, &erasure),
        Err(reply) => reply,
    })
}

/// Export and erase, once an admin token checks out.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn privacy_request<'a>(
    api: &'a HttpApi,
    headers: &http::HeaderMap,
) -> Result<(&'a CustomerPrivacy, Principal), HttpReply> {
    let Some(privacy) = api.privacy.as_deref().filter(|_| !api.access.is_empty()) else {
        return Err(reply::error(
            403,
            "forbidden",
            "the agents' API is not enabled here",
        ));
    };
    let admin = authorize(&api.access, headers, Scope::Admin)?;
    Ok((privacy, admin))
}

fn privacy_reply(error: PrivacyError) -> HttpReply {
    reply::error(error.status(), error.code(), error.to_string())
}

/// The desk, the caller and the body, once the bearer token checks out for `needed`.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) async fn desk_request(
    api: &HttpApi,
    request: Request,
    needed: Scope,
) -> Result<(&AgentDesk, Principal, Bytes), HttpReply> {
    let Some(desk) = api.desk.as_ref().filter(|_| !api.access.is_empty()) else {
        return Err(reply::error(
            403,
            "forbidden",
            "the agents' API is not enabled here",
        ));
    };
    let caller = authorize(&api.access, request.headers(), needed)?;
    crate::console::check_csrf(request.method(), request.headers())?;
    let request = read_body(request).await?;
    Ok((desk, caller, request.into_body()))
}

/// The caller behind the request's bearer token, if its scope covers `needed`.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub fn authorize(
    access: &AccessTokens,
    headers: &http::HeaderMap,
    needed: Scope,
) -> Result<Principal, HttpReply> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    access
        .authorize(header, needed)
        .map_err(|denied| match denied {
            Denied::Unauthenticated => reply::error(401, "unauthorized", denied.to_string()),
            Denied::Forbidden => reply::error(
                403,
                "forbidden",
                format!("{denied}: it needs the {} scope", needed.as_str()),
            ),
        })
}

/// The body as `T`. The reason names the problem and its position, or the
/// field serde names, never the body's text.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpReply> {
    serde_json::from_slice(body).map_err(|error| {
        let text = error.to_string();
        let reason = if text.starts_with("missing field") || text.starts_with("unknown field") {
            format!(
                "invalid JSON body: {}",
                text.split(", expected").next().unwrap_or(&text)
            )
        } else {
            switchboard_channels::ParseError::from(error).to_string()
        };
        reply::error(400, "bad_request", reason)
    })
}

fn ok_or_error(result: Result<(), DeskError>) -> HttpReply {
    match result {
        Ok(()) => reply::json(200, &serde_json::json!({ "ok": true })),
        Err(failure) => reply::error(failure.status(), failure.code(), failure.to_string()),
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        respond(self.to_reply())
    }
}
