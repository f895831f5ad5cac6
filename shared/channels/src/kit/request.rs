//! The `http` crate's request and response, as every channel sees them: the
//! body is the raw bytes the provider sent (and signed), never re-serialised.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;

/// A webhook request exactly as received.
pub type WebhookRequest = http::Request<Bytes>;

/// What to answer the provider.
pub type HttpReply = http::Response<Bytes>;

/// The URL the provider called, as seen from outside (scheme, host, path and
/// query), which some providers sign (Twilio). The HTTP router sets it from the
/// configured public URL, else from the `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(pub String);

/// Reading a webhook request.
pub trait RequestExt {
    /// First header of that name (names compare case-insensitively), if its
    /// value is UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
    /// First query parameter of that name, percent-decoded.
    fn query_param(&self, name: &str) -> Option<String>;
    /// Media type of the body, lower-cased, without parameters.
    fn content_type(&self) -> String;
    /// The body's fields, for `application/x-www-form-urlencoded` posts.
    fn form_fields(&self) -> Vec<(String, String)>;
    /// The public URL the provider called; without one, the request URI.
    fn public_url(&self) -> Cow<'_, str>;
}

impl RequestExt for WebhookRequest {
    fn header(&self, name: &str) -> Option<&str> {
        let value = self.headers().get(name)?;
        std::str::from_utf8(value.as_bytes()).ok()
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.uri().query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    fn form_fields(&self) -> Vec<(String, String)> {
        super::form::urlencoded(self.body())
    }

    fn public_url(&self) -> Cow<'_, str> {
        match self.extensions().get::<PublicUrl>() {
            Some(url) => Cow::Borrowed(&url.0),
            None => Cow::Owned(self.uri().to_string()),
        }
    }
}

/// The request as the provider called it at `base` (a channel's own
/// `public_url` setting, e.g. Twilio's, when a proxy or API Gateway stage
/// changes the URL on the way): `base` plus the request's path and query.
pub fn at_public_base(request: &WebhookRequest, base: &str) -> WebhookRequest {
    let mut request = request.clone();
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    request.extensions_mut().insert(PublicUrl(url));
    request
}

/// The request as the provider called it at `url`, the webhook URL as
/// registered with the provider (Twilio's `public_url`): that URL with the
/// request's query, unless `url` has a query of its own.
pub fn called_at(request: &WebhookRequest, url: &str) -> WebhookRequest {
    let mut request = request.clone();
    let url = match (url.contains('?'), request.uri().query()) {
        (false, Some(query)) => format!("{url}?{query}"),
        _ => url.to_owned(),
    };
    request.extensions_mut().insert(PublicUrl(url));
    request
}

/// The same URL written the other ways a provider may have signed it: with
/// its port removed, or with the scheme's default port added (Twilio's back
/// end is not consistent about the port, its SDKs accept either).
pub fn port_variants(url: &str) -> Vec<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let mut variants = Vec::new();
    let explicit_port = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .is_some_and(|authority| {
            authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        });
    let (Some(host), scheme) = (parsed.host_str(), parsed.scheme()) else {
        return variants;
    };
    let rest = &url[url.find(host).map_or(url.len(), |at| at + host.len())..];
    let rest = match explicit_port {
        true => rest
            .trim_start_matches(':')
            .trim_start_matches(|c: char| c.is_ascii_digit()),
        false => rest,
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    variants.push(format!("{scheme}://{host}{rest}"));
    variants.push(format!("{scheme}://{host}:{default_port}{rest}"));
    variants.retain(|variant| variant != url);
    variants
}

/// A request from parts, for tools and tests: `url` may be absolute or a path.
/// Header lines that `http` refuses are reported by name.
pub fn build_request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> Result<WebhookRequest, String> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(value).is_ok();
        if !valid {
            return Err(format!("header {name:?} is not a valid HTTP header"));
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut request = builder
        .body(body.into())
        .map_err(|_| format!("{method} {url} is not a valid request line"))?;
    if url.starts_with("http://") || url.starts_with("https://") {
        request.extensions_mut().insert(PublicUrl(url.to_owned()));
    }
    Ok(request)
}

/// Building replies.
pub mod reply {
    use super::*;

    pub fn with_type(status: u16, content_type: &str, body: impl Into<Bytes>) -> HttpReply {
        let mut reply = http::Response::new(body.into());
        *reply.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            reply
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        reply
    }

    pub fn json(status: u16, value: &impl Serialize) -> HttpReply {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        with_type(status, "application/json", body)
    }

    pub fn text(status: u16, body: impl Into<String>) -> HttpReply {
        with_type(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn empty(status: u16) -> HttpReply {
        with_type(status, "text/plain", Bytes::new())
    }

    /// An error answer with a JSON reason: `{"error": code, "reason": text}`.
    pub fn error(status: u16, code: &str, reason: impl Into<String>) -> HttpReply {
        json(
            status,
            &serde_json::json!({ "error": code, "reason": reason.into() }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_case_insensitively_and_queries_decode() {
        let headers = [("X-Slack-Signature".to_owned(), "v0=ab".to_owned())];
        let request =
            build_request("POST", "/x?a=1&hub.challenge=x%20y", &headers, "body").unwrap();
        assert_eq!(request.header("x-slack-signature"), Some("v0=ab"));
        assert_eq!(request.query_param("hub.challenge").as_deref(), Some("x y"));
        assert_eq!(request.header("missing"), None);
        assert_eq!(request.public_url(), "/x?a=1&hub.challenge=x%20y");
        let absolute = build_request("GET", "https://h.test/w?q=1", &[], "").unwrap();
        assert_eq!(absolute.public_url(), "https://h.test/w?q=1");
        assert!(build_request("POST", "/", &[("bad name".into(), "v".into())], "").is_err());
        let behind_a_proxy = at_public_base(&request, "https://support.example.com/prod/");
        assert_eq!(
            behind_a_proxy.public_url(),
            "https://support.example.com/prod/x?a=1&hub.challenge=x%20y"
        );
    }

    #[test]
    fn a_registered_url_keeps_the_query_and_ports_vary() {
        let request = build_request("POST", "/prod/webhooks/twilio?a=1&b=2", &[], "").unwrap();
        let called = called_at(&request, "https://sms.example.com:8443/hooks/twilio");
        assert_eq!(
            called.public_url(),
            "https://sms.example.com:8443/hooks/twilio?a=1&b=2"
        );
        let own_query = called_at(&request, "https://sms.example.com/t?x=9");
        assert_eq!(own_query.public_url(), "https://sms.example.com/t?x=9");
        assert_eq!(
            port_variants("https://mycompany.com:1234/myapp.php?foo=1&bar=2"),
            [
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2"
            ]
        );
        assert_eq!(port_variants("http://h.test/x"), ["http://h.test:80/x"]);
        assert_eq!(port_variants("https://h.test:443/x"), ["https://h.test/x"]);
        assert!(port_variants("/relative").is_empty());
    }

    #[test]
    fn replies_carry_status_type_and_body() {
        let answer = reply::error(401, "unauthorized", "no");
        assert_eq!(answer.status(), 401);
        assert_eq!(answer.headers()["content-type"], "application/json");
        assert_eq!(
            answer.body().as_ref(),
            br#"{"error":"unauthorized","reason":"no"}"#
        );
        assert!(reply::empty(200).body().is_empty());
    }
}
