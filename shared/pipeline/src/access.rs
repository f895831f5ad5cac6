//! Who may call the agents' API, and what they may do.
//!
//! Two scopes: `agent` (conversations: read, claim, reply, resolve, feedback)
//! and `admin` (everything an agent may do, plus customers' data, export and
//! erase, the knowledge base). Tokens are random strings issued by
//! `switchboard token create`; only their SHA-256 is configured
//! (`[[server.tokens]]`, or `"server": {"tokens": [...]}` in the AWS secret),
//! so a leaked configuration does not leak a token. The configured
//! `admin_token` is an admin token too.
//!
//! A presented token is hashed and compared with every known hash in constant
//! time, without stopping at the first match, so timing tells nothing about
//! which or how many tokens exist.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_domain::Secret;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Conversations: list, read, claim, reply, resolve; feedback.
    Agent,
    /// Everything, including customers' personal data and the knowledge base.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Agent => "agent",
            Scope::Admin => "admin",
        }
    }
}

/// One configured token: its holder, scope and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs and on replies they send).
    pub name: String,
    pub scope: Scope,
    /// `switchboard token create` prints it; 64 hex digits.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("token {name}: sha256 must be 64 hex digits")]
    BadHash { name: String },
}

/// Why a request may not go on. 401 and 403 at the HTTP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing or wrong bearer token")]
    Unauthenticated,
    #[error("this token's scope does not allow that")]
    Forbidden,
}

/// Who called, once the token checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub scope: Scope,
}

#[derive(PartialEq, Eq)]
struct Known {
    name: String,
    scope: Scope,
    hash: [u8; 32],
}

/// The tokens this deployment accepts. A running process may swap in a new
/// set whole ([`AccessTokens::replace`], `serve` re-reading its config file),
/// so that a token removed from the configuration stops working.
#[derive(Default)]
pub struct AccessTokens {
    known: RwLock<Arc<[Known]>>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.holders()).finish()
    }
}

impl AccessTokens {
    pub fn new(admin_token: Option<&Secret>, tokens: &[TokenConfig]) -> Result<Self, AccessError> {
        let mut known = Vec::with_capacity(tokens.len() + 1);
        if let Some(admin) = admin_token {
            known.push(Known {
                name: "admin".into(),
                scope: Scope::Admin,
                hash: digest(admin.expose()),
            });
        }
        for token in tokens {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(token.sha256.trim(), &mut hash).map_err(|_| {
                AccessError::BadHash {
                    name: token.name.clone(),
                }
            })?;
            known.push(Known {
                name: token.name.clone(),
                scope: token.scope,
                hash,
            });
        }
        Ok(Self {
            known: RwLock::new(known.into()),
        })
    }

    /// The set in use now; it stays whole for as long as the caller holds it.
    fn current(&self) -> Arc<[Known]> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc.
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Accepts `other`'s tokens from now on, and no others.
    pub fn replace(&self, other: AccessTokens) {
        let known = other.current();
        *self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = known;
    }

    /// Whether `other` holds exactly these tokens (holders, scopes, hashes).
    pub fn accepts_same(&self, other: &AccessTokens) -> bool {
        *self.current() == *other.current()
    }

    /// Who holds a token, with its scope (never the hash), in configured order.
    pub fn holders(&self) -> Vec<(String, Scope)> {
        self.current()
            .iter()
            .map(|k| (k.name.clone(), k.scope))
            .collect()
    }

    /// Whether any token is configured (else the agents' API is off).
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// The caller behind an `Authorization: Bearer <token>` header value, if
    /// the token is known and its scope covers `needed`.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needed: Scope,
    ) -> Result<Principal, Denied> {
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Denied::Unauthenticated)?;
        let hash = digest(presented);
        let current = self.current();
        let mut found: Option<&Known> = None;
        for known in current.iter() {
            // Every hash is compared; no early exit.
            if bool::from(known.hash.ct_eq(&hash)) {
                found = Some(known);
            }
        }
        let known = found.ok_or(Denied::Unauthenticated)?;
        if known.scope < needed {
            return Err(Denied::Forbidden);
        }
        Ok(Principal {
            name: known.name.clone(),
            scope: known.scope,
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 (hex) to configure for `token`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(digest(token))
}

/// A new token: 244 random bits (two v4 UUIDs' worth), with a recognisable
/// prefix so that secret scanners and people can tell what it is.
pub fn generate_token() -> String {
    use switchboard_channels::kit::random_token;
    format!("sbk_{}{}", random_token(), random_token())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AccessTokens {
        AccessTokens::new(
            Some(&Secret::new("root-token")),
            &[TokenConfig {
                name: "lee".into(),
                scope: Scope::Agent,
                sha256: token_sha256("agent-token"),
            }],
        )
        .unwrap()
    }

    #[test]
    fn an_agent_token_reaches_conversations_but_not_admin_routes() {
        let tokens = tokens();
        let lee = tokens
            .authorize(Some("Bearer agent-token"), Scope::Agent)
            .unwrap();
        assert_eq!(lee.name, "lee");
        assert_eq!(
            tokens.authorize(Some("Bearer agent-token"), Scope::Admin),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn the_admin_token_reaches_everything() {
        let tokens = tokens();
        for scope in [Scope::Agent, Scope::Admin] {
            assert_eq!(
                tokens
                    .authorize(Some("Bearer root-token"), scope)
                    .unwrap()
                    .scope,
                Scope::Admin
            );
        }
    }

    #[test]
    fn unknown_missing_and_malformed_tokens_are_unauthenticated() {
        let tokens = tokens();
        for header in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Bearer agent-token2"),
            Some("Basic agent-token"),
            Some("agent-token"),
        ] {
            assert_eq!(
                tokens.authorize(header, Scope::Agent),
                Err(Denied::Unauthenticated),
                "{header:?}"
            );
        }
    }

    #[test]
    fn only_the_hash_is_configured() {
        let token = generate_token();
        assert!(token.starts_with("sbk_") && token.len() > 40);
        let hash = token_sha256(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token[4..]));
        let tokens = AccessTokens::new(
            None,
            &[TokenConfig {
                name: "ops".into(),
                scope: Scope::Admin,
                sha256: hash,
            }],
        )
        .unwrap();
        assert!(
            tokens
                .authorize(Some(&format!("Bearer {token}")), Scope::Admin)
                .is_ok()
        );
    }

    #[test]
    fn a_replaced_set_refuses_the_tokens_it_no_longer_holds() {
        let tokens = tokens();
        let kept = AccessTokens::new(
            None,
            &[TokenConfig {
                name: "kim".into(),
                scope: Scope::Agent,
                sha256: token_sha256("new-token"),
            }],
        )
        .unwrap();
        tokens.replace(kept);
        for revoked in ["Bearer agent-token", "Bearer root-token"] {
            assert_eq!(
                tokens.authorize(Some(revoked), Scope::Agent),
                Err(Denied::Unauthenticated),
                "{revoked}"
            );
        }
        let kim = tokens
            .authorize(Some("Bearer new-token"), Scope::Agent)
            .unwrap();
        assert_eq!(kim.name, "kim");
        assert_eq!(tokens.holders(), vec![("kim".to_owned(), Scope::Agent)]);
        tokens.replace(AccessTokens::default());
        assert!(tokens.is_empty());
    }

    #[test]
    fn a_malformed_hash_is_a_configuration_error() {
        let error = AccessTokens::new(
            None,
            &[TokenConfig {
                name: "x".into(),
                scope: Scope::Agent,
                sha256: "zz".into(),
            }],
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "token x: sha256 must be 64 hex digits");
    }
}
