//! Set-up handshakes that several providers share in shape.
//!
//! A *verify-token challenge* is a GET carrying a mode, the verify token we
//! registered with the provider and a challenge to echo (Meta's `hub.mode`,
//! `hub.verify_token`, `hub.challenge`). The token is compared in constant
//! time; the challenge is echoed only when it is short and plain, so the
//! endpoint cannot be used to reflect arbitrary content.

use http::Method;
use switchboard_domain::Secret;

use super::Handshake;
use super::request::{RequestExt, WebhookRequest, reply};
use super::signature::secret_eq;

/// Longest challenge echoed back.
const MAX_CHALLENGE: usize = 128;

/// Where a verify-token challenge keeps its values (query parameters).
#[derive(Debug, Clone, Copy)]
pub struct TokenChallenge {
    pub mode: &'static str,
    /// The value of `mode` that asks for the challenge.
    pub subscribe: &'static str,
    pub token: &'static str,
    pub challenge: &'static str,
}

/// Meta (WhatsApp, Messenger, Instagram) webhook verification.
pub const META_HUB: TokenChallenge = TokenChallenge {
    mode: "hub.mode",
    subscribe: "subscribe",
    token: "hub.verify_token",
    challenge: "hub.challenge",
};

impl TokenChallenge {
    /// Answers the GET when it is this handshake: 200 with the challenge as
    /// plain text when the token matches, else 403 (400 for an unusable
    /// challenge). Anything else is not this handshake.
    pub fn answer(&self, request: &WebhookRequest, verify_token: &Secret) -> Handshake {
        if request.method() != Method::GET || request.query_param(self.mode).is_none() {
            return Ok(None);
        }
        let presented = request.query_param(self.token).unwrap_or_default();
        let subscribing = request.query_param(self.mode).as_deref() == Some(self.subscribe);
        // Both checks run, so the answer's timing does not tell which failed.
        let token_matches = secret_eq(presented.as_bytes(), verify_token.expose().as_bytes());
        if !(subscribing && token_matches) {
            let reason = "the verify token or mode does not match";
            return Ok(Some(reply::error(403, "forbidden", reason)));
        }
        let challenge = request.query_param(self.challenge).unwrap_or_default();
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if challenge.is_empty() || challenge.len() > MAX_CHALLENGE || !challenge.chars().all(plain)
        {
            let reason = "the challenge is missing or not plain text";
            return Ok(Some(reply::error(400, "bad_request", reason)));
        }
        Ok(Some(reply::text(200, challenge)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;

    fn get(query: &str) -> WebhookRequest {
        build_request("GET", &format!("/webhooks/whatsapp?{query}"), &[], "").unwrap()
    }

    #[test]
    fn the_challenge_is_echoed_only_for_the_right_token() {
        let token = Secret::new("meatyhamhock");
        let ok = get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock");
        let answer = META_HUB.answer(&ok, &token).unwrap().unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body().as_ref(), b"1158201444");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        for refused in [
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhocK",
            "hub.mode=subscribe&hub.challenge=1158201444",
            "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
        ] {
            assert_eq!(
                META_HUB
                    .answer(&get(refused), &token)
                    .unwrap()
                    .unwrap()
                    .status(),
                403
            );
        }
        let script =
            get("hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token=meatyhamhock");
        assert_eq!(
            META_HUB.answer(&script, &token).unwrap().unwrap().status(),
            400
        );
        // Not this handshake: a POST, or a GET without the mode.
        assert!(META_HUB.answer(&get("other=1"), &token).unwrap().is_none());
        let post = build_request("POST", "/w?hub.mode=subscribe", &[], "{}").unwrap();
        assert!(META_HUB.answer(&post, &token).unwrap().is_none());
    }
}
