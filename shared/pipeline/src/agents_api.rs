//! The agents' API routes over [`crate::desk::AgentDesk`], and the OpenAPI document of
//! every `/api` route, generated from these handlers' annotations
//! (`GET /api/openapi.json`).
//!
//! * `GET /api/conversations?status=waiting[&limit=N]`: the waiting list;
//! * `GET /api/conversations/{key}`: one conversation with its transcript;
//! * `POST /api/conversations/{key}/claim`, `/reply`, `/resolve`;
//! * `PUT /api/customers/{key}`: a customer's tier.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post, put};

use switchboard_channels::HttpReply;
use switchboard_channels::kit::reply;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::access::Scope;
use crate::desk::{
    AgentInput, AgentReply, ConversationList, ConversationView, CustomerTier, DeskError,
    MAX_IDEMPOTENCY_KEY_BYTES, ReplyAccepted, TierInput,
};
use crate::http::{HttpApi, desk_request, parse_json, respond};

/// Most conversations one list returns.
const MAX_LIST: usize = 1000;
/// Conversations a list returns unless `limit` says otherwise.
const DEFAULT_LIST: usize = 100;

/// An error answer: `{"error": code, "reason": text}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the JSON `reply::error` writes
pub struct ApiError {
    /// A short code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `unprocessable`, `unavailable`.
    error: String,
    /// What was wrong, for people.
    reason: String,
}

/// `{"ok": true}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Ok {
    ok: bool,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `switchboard token create`: scope `agent` for \
                         conversations and feedback, `admin` for customers' data too.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard agents' API",
        description = "Conversations waiting for a person, their transcripts, claims, \
            replies (queued and delivered by the outbound sender), customers' tiers, \
            feedback, and customers' data (export, erase).",
        version = "1"
    ),
    paths(
        list_conversations,
        get_conversation,
        claim_conversation,
        reply_to_conversation,
        resolve_conversation,
        set_customer_tier,
        crate::http::feedback,
        crate::http::export_customer,
        crate::http::erase_customer,
        crate::console::session,
        openapi_document,
    ),
    components(schemas(ApiError, Ok)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The OpenAPI document, as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The agents' routes, merged into the one router.
pub fn routes() -> Router<Arc<HttpApi>> {
    Router::new()
        .route("/api/openapi.json", get(openapi_document))
        .route("/api/conversations", get(list_conversations))
        .route("/api/conversations/{key}", get(get_conversation))
        .route("/api/conversations/{key}/claim", post(claim_conversation))
        .route(
            "/api/conversations/{key}/reply",
            post(reply_to_conversation),
        )
        .route(
            "/api/conversations/{key}/resolve",
            post(resolve_conversation),
        )
}

/// `PUT /api/customers/{customer}`, which shares its path with the erase
/// route of `http` (one path, one method router).
pub fn set_tier_route() -> axum::routing::MethodRouter<Arc<HttpApi>> {
    put(set_customer_tier)
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_document() -> Response {
    respond(reply::json(200, &openapi()))
}

fn desk_reply(error: DeskError) -> HttpReply {
    reply::error(error.status(), error.code(), error.to_string())
}

fn answer<T: serde::Serialize>(status: u16, outcome: Result<T, DeskError>) -> HttpReply {
    match outcome {
        Ok(value) => reply::json(status, &value),
        Err(error) => desk_reply(error),
    }
}

/// `status` and `limit` from the query string.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn list_query(query: Option<&str>) -> Result<usize, HttpReply> {
    let mut limit = DEFAULT_LIST;
    let bad = |reason: String| reply::error(400, "bad_request", reason);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "status" if value == "waiting" => {}
            "status" => {
                return Err(bad(
                    "status must be waiting (conversations waiting for or with a person)".into(),
                ));
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| bad(format!("limit must be a number from 1 to {MAX_LIST}")))?;
            }
            _ => return Err(bad("the query takes status and limit only".into())),
        }
    }
    Ok(limit)
}

/// The conversations waiting for or with a person: VIP first, then the
/// longest waiting, with tier, reason, waiting time, the first-response
/// deadline, who claimed them and the customer's last message.
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    params(
        ("status" = Option<String>, Query, description = "Only `waiting` (the default)", example = "waiting"),
        ("limit" = Option<u32>, Query, description = "At most this many (1-1000, default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The waiting list", body = ConversationList),
        (status = 400, description = "Bad query", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 503, description = "Store unavailable", body = ApiError),
    )
)]
async fn list_conversations(State(api): State<Arc<HttpApi>>, request: Request) -> Response {
    let result = async {
        let limit = list_query(request.uri().query())?;
        let (desk, _agent, _body) = desk_request(&api, request, Scope::Agent).await?;
        Ok(answer(200, desk.waiting(limit).await))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

/// A conversation with its transcript, its hand-over, the delivery of our
/// replies, and the same customer's other conversations (`earlier`).
#[utoipa::path(
    get,
    path = "/api/conversations/{key}",
    tag = "conversations",
    params(("key" = String, Path, description = "`channel:account:conversation`", example = "telegram:bot:12345")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 400, description = "Malformed key", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 404, description = "No such conversation", body = ApiError),
        (status = 503, description = "Store unavailable", body = ApiError),
    )
)]
async fn get_conversation(
    State(api): State<Arc<HttpApi>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (desk, _agent, _body) = desk_request(&api, request, Scope::Agent).await?;
        Ok(answer(200, desk.conversation(&key).await))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

/// The agent takes the conversation. Claiming again is fine; one another
/// agent holds answers 409.
#[utoipa::path(
    post,
    path = "/api/conversations/{key}/claim",
    tag = "conversations",
    params(("key" = String, Path, description = "`channel:account:conversation`")),
    request_body(content = AgentInput, description = "`agent` defaults to the token's holder"),
    responses(
        (status = 200, description = "Claimed", body = ConversationView),
        (status = 400, description = "Bad key or body", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 404, description = "No such conversation", body = ApiError),
        (status = 409, description = "Claimed by another agent, or not waiting for a person", body = ApiError),
        (status = 503, description = "Store unavailable", body = ApiError),
    )
)]
async fn claim_conversation(
    State(api): State<Arc<HttpApi>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (desk, caller, body) = desk_request(&api, request, Scope::Agent).await?;
        let input: AgentInput = parse_json(&body)?;
        Ok(answer(200, desk.claim(&key, &input, &caller.name).await))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

/// Queues the agent's reply for delivery on the customer's channel (202).
/// The `Idempotency-Key` header is required: a repeat of the same request
/// (same key, text, agent and `resolve`) sends nothing and answers the first
/// reply's id and state; the key with another body is refused with 422.
#[utoipa::path(
    post,
    path = "/api/conversations/{key}/reply",
    tag = "conversations",
    params(
        ("key" = String, Path, description = "`channel:account:conversation`"),
        ("Idempotency-Key" = String, Header, description = "Unique per reply (e.g. a UUID); 1-255 visible ASCII characters. A retry must repeat the body: the key with another text, agent or resolve answers 422"),
    ),
    request_body = AgentReply,
    responses(
        (status = 202, description = "Queued (or, for a repeated key, the first reply's state)", body = ReplyAccepted),
        (status = 400, description = "Bad key, body or Idempotency-Key", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 404, description = "No such conversation", body = ApiError),
        (status = 409, description = "The same Idempotency-Key is still being handled", body = ApiError),
        (status = 422, description = "The Idempotency-Key was already used for another reply (a different text, agent or resolve); nothing was queued", body = ApiError),
        (status = 503, description = "Store or queue unavailable; retry with the same key", body = ApiError),
    )
)]
async fn reply_to_conversation(
    State(api): State<Arc<HttpApi>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        // The token is checked first: a caller without one learns nothing else.
        let idempotency_key = idempotency_key(request.headers());
        let (desk, caller, body) = desk_request(&api, request, Scope::Agent).await?;
        let idempotency_key = idempotency_key?;
        let input: AgentReply = parse_json(&body)?;
        Ok(answer(
            202,
            desk.reply(&key, &idempotency_key, &input, &caller.name)
                .await,
        ))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

#[allow(clippy::result_large_err)] // the error is the answer itself
fn idempotency_key(headers: &http::HeaderMap) -> Result<String, HttpReply> {
    let value = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if value.is_empty()
        || value.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(reply::error(
            400,
            "bad_request",
            format!(
                "the Idempotency-Key header is required: 1-{MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters, unique per reply"
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Closes the conversation: the bot answers the customer's next message.
#[utoipa::path(
    post,
    path = "/api/conversations/{key}/resolve",
    tag = "conversations",
    params(("key" = String, Path, description = "`channel:account:conversation`")),
    request_body(content = AgentInput, description = "`agent` defaults to the token's holder"),
    responses(
        (status = 200, description = "Resolved", body = ConversationView),
        (status = 400, description = "Bad key or body", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 404, description = "No such conversation", body = ApiError),
        (status = 503, description = "Store unavailable", body = ApiError),
    )
)]
async fn resolve_conversation(
    State(api): State<Arc<HttpApi>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (desk, caller, body) = desk_request(&api, request, Scope::Agent).await?;
        // An empty body is an empty input.
        let input: AgentInput = if body.iter().all(u8::is_ascii_whitespace) {
            AgentInput::default()
        } else {
            parse_json(&body)?
        };
        Ok(answer(200, desk.resolve(&key, &input, &caller.name).await))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

/// Stores the customer's tier; their next message is handled by it (a VIP
/// below the answer band goes to a person at once, and is listed first).
#[utoipa::path(
    put,
    path = "/api/customers/{customer}",
    tag = "customers",
    params(("customer" = String, Path, description = "`channel:customer_id`", example = "telegram:12345")),
    request_body = TierInput,
    responses(
        (status = 200, description = "Stored", body = CustomerTier),
        (status = 400, description = "Bad key or body", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "Scope too small", body = ApiError),
        (status = 422, description = "Unknown tier", body = ApiError),
        (status = 503, description = "Store unavailable", body = ApiError),
    )
)]
async fn set_customer_tier(
    State(api): State<Arc<HttpApi>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (desk, _caller, body) = desk_request(&api, request, Scope::Agent).await?;
        let input: TierInput = parse_json(&body)?;
        Ok(answer(200, desk.set_tier(&key, &input).await))
    };
    respond(result.await.unwrap_or_else(|reply| reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_api_route() {
        let document = serde_json::to_value(openapi()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/api/conversations",
            "/api/conversations/{key}",
            "/api/conversations/{key}/claim",
            "/api/conversations/{key}/reply",
            "/api/conversations/{key}/resolve",
            "/api/customers/{customer}/export",
            "/api/customers/{customer}",
            "/api/feedback",
            "/api/openapi.json",
            "/api/session",
        ] {
            assert!(paths.contains_key(path), "{path} missing from {paths:?}");
        }
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    }

    #[test]
    fn list_queries_are_checked() {
        assert_eq!(list_query(None).unwrap(), DEFAULT_LIST);
        assert_eq!(list_query(Some("status=waiting&limit=5")).unwrap(), 5);
        for bad in ["status=open", "limit=0", "limit=1001", "limit=x", "page=2"] {
            assert_eq!(list_query(Some(bad)).unwrap_err().status(), 400, "{bad}");
        }
    }
}
