//! The framework-neutral HTTP request and reply that both the local server and
//! the Lambda ingress translate to and from.

use serde::Serialize;

/// A webhook request exactly as received: the body is the raw bytes that the
/// provider signed, never re-serialised.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub method: String,
    /// The public URL the provider called, with the query string
    /// (some providers sign it).
    pub url: String,
    /// Raw query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// First header of that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// First query parameter of that name, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    pub fn is_method(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }

    /// The body's form fields, for `application/x-www-form-urlencoded` posts.
    pub fn form_fields(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Media type of the body, lower-cased, without parameters.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
}

/// What to answer the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: "text/plain".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An error answer with a JSON reason: `{"error": code, "reason": text}`.
    pub fn error(status: u16, code: &str, reason: impl Into<String>) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": code, "reason": reason.into() }),
        )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_case_insensitively() {
        let request = WebhookRequest {
            headers: vec![("X-Slack-Signature".into(), "v0=ab".into())],
            query: "a=1&hub.challenge=x%20y".into(),
            ..Default::default()
        };
        assert_eq!(request.header("x-slack-signature"), Some("v0=ab"));
        assert_eq!(request.query_param("hub.challenge").as_deref(), Some("x y"));
        assert_eq!(request.header("missing"), None);
    }
}
