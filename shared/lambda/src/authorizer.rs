//! The agents' API's gate on API Gateway: a Lambda REQUEST authorizer for the
//! HTTP API (payload 2.0, simple responses, identity source the
//! `Authorization` header). A known bearer token of any scope is let through,
//! its holder and scope in the context; the router still checks the token and
//! the route's scope itself (defence in depth), so the authorizer only keeps
//! anonymous and wrong-token traffic away from the function that holds the
//! conversations. Tokens are the configured ones (`admin_token` and
//! `server.tokens` in the channel secret), hashed and compared in constant time
//! by `pipeline::access`; a token is never logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_aws::{Clients, load_json_secret};
use switchboard_domain::Secret;
use switchboard_pipeline::access::{AccessError, AccessTokens, Scope, TokenConfig};

/// The variable holding the channel secret's ARN (as for every function).
pub const SECRET_ARN_VARIABLE: &str = "SWITCHBOARD_AWS__SECRET_ARN";

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    #[error("{SECRET_ARN_VARIABLE} is not set")]
    NoSecret,
    #[error("could not read the channel secret")]
    Secret(#[source] switchboard_aws::AwsError),
    /// Only the position: serde's message could quote the secret.
    #[error("server.tokens in the secret is not a list of tokens (line {line}, column {column})")]
    Tokens { line: usize, column: usize },
    #[error("configuring server.tokens")]
    Access(#[source] AccessError),
}

/// The tokens the agents' API accepts, from the channel secret's JSON.
pub fn tokens_from_secret(secret: &Value) -> Result<AccessTokens, AuthorizerError> {
    let admin = secret
        .get("admin_token")
        .and_then(Value::as_str)
        .map(Secret::from);
    let tokens: Vec<TokenConfig> = match secret.pointer("/server/tokens") {
        None => Vec::new(),
        Some(tokens) => {
            serde_json::from_value(tokens.clone()).map_err(|error| AuthorizerError::Tokens {
                line: error.line(),
                column: error.column(),
            })?
        }
    };
    AccessTokens::new(admin.as_ref(), &tokens).map_err(AuthorizerError::Access)
}

/// Init: the channel secret read with `clients` (the one AWS call).
pub async fn init(clients: &Clients, secret_arn: &str) -> Result<AccessTokens, AuthorizerError> {
    let secret = load_json_secret(&clients.secrets, secret_arn)
        .await
        .map_err(AuthorizerError::Secret)?;
    let tokens = tokens_from_secret(&secret)?;
    if tokens.is_empty() {
        tracing::warn!("no token is configured: every agents' API request will be refused");
    }
    Ok(tokens)
}

/// How long the gate trusts the tokens it read. A warm function would
/// otherwise keep a token removed from the secret for hours: with this, it is
/// refused within a minute (plus API Gateway's 30 s decision cache).
pub const TOKENS_FRESH_FOR: Duration = Duration::from_secs(60);

/// The authorizer's tokens, read again from the channel secret once they are
/// older than a given age, so that revoking a token takes effect in warm
/// functions too. A failed read keeps the tokens in use (and the next
/// request tries again): an outage of Secrets Manager must not lock agents out.
pub struct Gate {
    tokens: AccessTokens,
    clients: Clients,
    secret_arn: String,
    read_at: Mutex<Instant>,
}

impl Gate {
    /// The tokens now in the secret.
    pub async fn open(clients: Clients, secret_arn: String) -> Result<Self, AuthorizerError> {
        let tokens = init(&clients, &secret_arn).await?;
        Ok(Self {
            tokens,
            clients,
            secret_arn,
            read_at: Mutex::new(Instant::now()),
        })
    }

    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// Reads the secret again if the tokens were read more than `fresh_for` ago.
    pub async fn refresh_if_stale(&self, fresh_for: Duration) {
        {
            // Claimed by the first caller to find the tokens stale; the
            // others decide with the tokens in use meanwhile.
            let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
            if read_at.elapsed() < fresh_for {
                return;
            }
            *read_at = Instant::now();
        }
        match init(&self.clients, &self.secret_arn).await {
            Ok(tokens) => self.tokens.replace(tokens),
            Err(error) => tracing::warn!(
                error = %switchboard_domain::error_chain(&error),
                "agents' API tokens not re-read; the ones in use still apply"
            ),
        }
    }
}

/// The [`Gate`] as the function starts: the SDK's configuration from the
/// function's environment (`lambda_config`), the secret named by
/// [`SECRET_ARN_VARIABLE`].
pub async fn from_environment() -> Result<Gate, AuthorizerError> {
    let arn = std::env::var(SECRET_ARN_VARIABLE).map_err(|_| AuthorizerError::NoSecret)?;
    let clients = Clients::new(&switchboard_aws::lambda_config());
    Gate::open(clients, arn).await
}

/// The simple response to one authorizer event.
pub fn decide(tokens: &AccessTokens, event: &Value) -> Value {
    // HTTP APIs lower-case header names; the identity source carries the same value.
    let header = event
        .pointer("/headers/authorization")
        .or_else(|| event.pointer("/identitySource/0"))
        .and_then(Value::as_str);
    let route = event.get("routeKey").and_then(Value::as_str).unwrap_or("");
    match tokens.authorize(header, Scope::Agent) {
        Ok(principal) => {
            tracing::info!(route, principal = %principal.name, scope = principal.scope.as_str(), "agents' API caller authorized");
            json!({
                "isAuthorized": true,
                "context": { "principal": principal.name, "scope": principal.scope.as_str() }
            })
        }
        Err(denied) => {
            tracing::info!(route, reason = %denied, "agents' API caller refused");
            json!({ "isAuthorized": false })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_pipeline::access::token_sha256;

    fn event(authorization: Option<&str>) -> Value {
        let mut event = json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeKey": "ANY /api/{proxy+}",
            "rawPath": "/api/feedback",
            "headers": { "content-type": "application/json" },
        });
        if let Some(value) = authorization {
            event["headers"]["authorization"] = value.into();
            event["identitySource"] = json!([value]);
        }
        event
    }

    #[test]
    fn known_tokens_of_any_scope_pass_with_their_holder_and_others_do_not() {
        let secret = json!({
            "channels": {},
            "admin_token": "root-token",
            "server": { "tokens": [
                { "name": "lee", "scope": "agent", "sha256": token_sha256("agent-token") }
            ] }
        });
        let tokens = tokens_from_secret(&secret).unwrap();
        assert_eq!(
            decide(&tokens, &event(Some("Bearer agent-token"))),
            json!({ "isAuthorized": true, "context": { "principal": "lee", "scope": "agent" } })
        );
        assert_eq!(
            decide(&tokens, &event(Some("Bearer root-token")))["context"]["scope"],
            "admin"
        );
        for refused in [
            None,
            Some("Bearer nope"),
            Some("root-token"),
            Some("Basic x"),
        ] {
            assert_eq!(
                decide(&tokens, &event(refused)),
                json!({ "isAuthorized": false }),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_secret_without_tokens_refuses_everyone_and_bad_tokens_are_reported_without_values() {
        let tokens = tokens_from_secret(&json!({ "channels": {} })).unwrap();
        assert!(tokens.is_empty());
        assert_eq!(
            decide(&tokens, &event(Some("Bearer anything"))),
            json!({ "isAuthorized": false })
        );
        let error = tokens_from_secret(&json!({ "server": { "tokens": [{ "name": "x", "scope": "root", "sha256": "secret-ish" }] } }))
            .unwrap_err();
        assert!(!error.to_string().contains("secret-ish"), "{error}");
        assert!(!error.to_string().contains("root"), "{error}");
    }
}
