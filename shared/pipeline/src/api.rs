//! The HTTP surface, framework-neutral: the local server and the Lambda
//! ingress functions both hand every request here.
//!
//! * `POST|GET /webhooks/{channel}`: provider webhooks and handshakes;
//! * `POST /api/conversations/{conversation}/reply`: an agent answers;
//! * `POST /api/feedback`: a customer's feedback.
//!
//! The `/api` routes need `Authorization: Bearer <admin token>`.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use switchboard_channels::verify::constant_time_eq;
use switchboard_channels::{HttpReply, WebhookRequest};
use switchboard_domain::Secret;

use crate::desk::{AgentDesk, DeskError};
use crate::ingress::Ingress;

pub struct HttpApi {
    pub ingress: Arc<Ingress>,
    /// The agents' API; `None` where a function serves webhooks only.
    pub desk: Option<Arc<AgentDesk>>,
    pub admin_token: Option<Secret>,
}

impl HttpApi {
    /// Answers one request for `path` (percent-encoded, without the query).
    pub async fn handle(&self, path: &str, request: &WebhookRequest) -> HttpReply {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["webhooks", channel] => self.ingress.handle(channel, request).await,
            ["api", "conversations", conversation, "reply"] if request.is_method("POST") => {
                match self.desk_request(request) {
                    Ok(desk) => match parse_json(&request.body) {
                        Ok(reply) => ok_or_error(desk.reply(conversation, &reply).await),
                        Err(reply) => reply,
                    },
                    Err(reply) => reply,
                }
            }
            ["api", "feedback"] if request.is_method("POST") => match self.desk_request(request) {
                Ok(desk) => match parse_json(&request.body) {
                    Ok(feedback) => ok_or_error(desk.feedback(&feedback).await),
                    Err(reply) => reply,
                },
                Err(reply) => reply,
            },
            _ => HttpReply::error(404, "not_found", "no such route"),
        }
    }

    /// The desk, once the bearer token checks out.
    fn desk_request(&self, request: &WebhookRequest) -> Result<&AgentDesk, HttpReply> {
        let (Some(desk), Some(expected)) = (&self.desk, &self.admin_token) else {
            return Err(HttpReply::error(
                403,
                "forbidden",
                "the agents' API is not enabled here",
            ));
        };
        let presented = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
            Ok(desk)
        } else {
            Err(HttpReply::error(
                401,
                "unauthorized",
                "missing or wrong bearer token",
            ))
        }
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpReply> {
    serde_json::from_slice(body)
        .map_err(|e| HttpReply::error(400, "bad_request", format!("invalid JSON body: {e}")))
}

fn ok_or_error(result: Result<(), DeskError>) -> HttpReply {
    match result {
        Ok(()) => HttpReply::json(200, &serde_json::json!({ "ok": true })),
        Err(failure) => HttpReply::error(failure.status(), failure.code(), failure.to_string()),
    }
}

/// `%XX` to bytes; malformed escapes are kept as they are.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("telegram%3A1%3A42"), "telegram:1:42");
        assert_eq!(percent_decode("%3Cid%40mail.test%3E"), "<id@mail.test>");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
