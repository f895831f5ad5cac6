//! Development mode's stand-in provider: every channel's replies are posted
//! here and recorded in `dev-replies.jsonl`, which `GET /dev/replies` serves.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use switchboard_app::local::Local;
use switchboard_channels::kit::reply;
use switchboard_pipeline::http::respond;

use crate::server::Shared;

/// The stand-in provider of development mode: records each reply.
pub(crate) async fn record(
    State(local): Shared,
    Path((channel, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    // Providers' token endpoints (WeChat `cgi-bin/token`, WeCom `gettoken`,
    // Feishu `tenant_access_token`) are no replies: they get a token.
    if rest.contains("token") {
        return access_token().await;
    }
    let path = recorded_path(&rest, query.as_deref());
    record_dev_reply(&local, &channel, &path, &body)
}

/// The path and query a reply was posted to (some providers name the
/// recipient there: X, Discord, DingTalk's session webhook), without
/// credentials: Telegram's `bot<id>:<secret>` segment, an `access_token`.
fn recorded_path(rest: &str, query: Option<&str>) -> String {
    let segments: Vec<&str> = rest
        .split('/')
        .map(|segment| {
            if segment.contains(':') {
                "…"
            } else {
                segment
            }
        })
        .collect();
    let mut path = format!("/{}", segments.join("/"));
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let pairs =
            form_urlencoded::parse(query.as_bytes()).map(|(key, value)| match key.as_ref() {
                "access_token" => (key, "…".into()),
                _ => (key, value),
            });
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        path = format!("{path}?{query}");
    }
    path
}

/// An access token, shaped like WeChat's, WeCom's and Feishu's answers.
pub(crate) async fn access_token() -> Response {
    respond(reply::json(
        200,
        &json!({ "errcode": 0, "code": 0, "access_token": "development", "expires_in": 7200,
                 "tenant_access_token": "development", "expire": 7200 }),
    ))
}

pub(crate) async fn record_root(
    State(local): Shared,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    record_dev_reply(&local, &channel, "/", &body)
}

fn record_dev_reply(local: &Local, channel: &str, path: &str, body: &[u8]) -> Response {
    use std::io::Write;
    // JSON, else a form post (Twilio's Messages API) as an object.
    let form = || {
        let fields = form_urlencoded::parse(body).into_owned();
        serde_json::Value::Object(fields.map(|(k, v)| (k, v.into())).collect())
    };
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| form());
    let line = json!({ "channel": channel, "path": path, "payload": payload }).to_string();
    let file = local.app.config.data_dir.join("dev-replies.jsonl");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
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
pub(crate) async fn replies(State(local): Shared, headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    use super::recorded_path;

    #[test]
    fn the_recorded_path_names_the_recipient_but_no_credential() {
        assert_eq!(
            recorded_path("2/dm_conversations/with/10001/messages", None),
            "/2/dm_conversations/with/10001/messages"
        );
        assert_eq!(
            recorded_path("bot123:secret/sendMessage", Some("")),
            "/…/sendMessage"
        );
        let path = recorded_path(
            "cgi-bin/message/custom/send",
            Some("access_token=abc&session=s1"),
        );
        assert!(
            path.ends_with("?access_token=%E2%80%A6&session=s1"),
            "{path}"
        );
    }
}
