//! API Gateway HTTP API (payload v2) events to and from the pipeline's
//! framework-neutral request and reply.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use switchboard_channels::{HttpReply, WebhookRequest};

#[derive(Debug, thiserror::Error)]
#[error("the event's body is marked base64 but is not")]
pub struct BadBase64;

/// The request path (still percent-encoded) and the request exactly as the
/// provider sent it: the body decoded to its raw bytes, never re-serialised.
pub fn to_request(event: &ApiGatewayV2httpRequest) -> Result<(String, WebhookRequest), BadBase64> {
    let body = match &event.body {
        None => Vec::new(),
        Some(text) if event.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| BadBase64)?,
        Some(text) => text.clone().into_bytes(),
    };
    let path = event
        .raw_path
        .clone()
        .or_else(|| event.request_context.http.path.clone())
        .unwrap_or_else(|| "/".into());
    let query = event.raw_query_string.clone().unwrap_or_default();
    let host = event
        .request_context
        .domain_name
        .clone()
        .unwrap_or_default();
    let url = if query.is_empty() {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}{path}?{query}")
    };
    let headers = event
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = WebhookRequest {
        method: event.request_context.http.method.to_string(),
        url,
        query,
        headers,
        body,
    };
    Ok((path, request))
}

/// The pipeline's reply as an HTTP API response.
pub fn to_response(reply: HttpReply) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&reply.content_type) {
        headers.insert("content-type", value);
    }
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(reply.status);
    response.headers = headers;
    response.body = match String::from_utf8(reply.body) {
        Ok(text) if text.is_empty() => None,
        Ok(text) => Some(Body::Text(text)),
        Err(bytes) => {
            response.is_base64_encoded = true;
            Some(Body::Text(
                base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes()),
            ))
        }
    };
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP API v2 event as API Gateway sends it (shape from AWS's docs).
    fn event(body: &str, base64: bool) -> ApiGatewayV2httpRequest {
        let json = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/{channel}",
            "rawPath": "/webhooks/slack",
            "rawQueryString": "a=1&b=two",
            "headers": {
                "content-type": "application/json",
                "x-slack-request-timestamp": "1700000000",
                "x-slack-signature": "v0=abc"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api-id",
                "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": "POST",
                    "path": "/webhooks/slack",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "Slackbot 1.0"
                },
                "requestId": "id",
                "routeKey": "POST /webhooks/{channel}",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1583348638390u64
            },
            "pathParameters": { "channel": "slack" },
            "body": body,
            "isBase64Encoded": base64
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn keeps_the_raw_body_and_rebuilds_the_public_url() {
        let body = "{\"text\":\"caf\u{e9}\",  \"n\" : 1}";
        let (path, request) = to_request(&event(body, false)).unwrap();
        assert_eq!(path, "/webhooks/slack");
        assert_eq!(request.body, body.as_bytes());
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url,
            "https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/slack?a=1&b=two"
        );
        assert_eq!(request.query_param("b").as_deref(), Some("two"));
        assert_eq!(request.header("X-Slack-Signature"), Some("v0=abc"));
    }

    #[test]
    fn decodes_base64_bodies_to_their_exact_bytes() {
        let raw = b"a=1&b=\xff\xfe\r\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let (_, request) = to_request(&event(&encoded, true)).unwrap();
        assert_eq!(request.body, raw);
        assert!(to_request(&event("not base64!", true)).is_err());
    }

    #[test]
    fn replies_become_responses() {
        let response = to_response(HttpReply::json(
            401,
            &serde_json::json!({"error": "unauthorized"}),
        ));
        assert_eq!(response.status_code, 401);
        assert_eq!(response.headers["content-type"], "application/json");
        assert_eq!(
            response.body,
            Some(Body::Text("{\"error\":\"unauthorized\"}".into()))
        );
        assert_eq!(to_response(HttpReply::empty(200)).body, None);
    }
}
