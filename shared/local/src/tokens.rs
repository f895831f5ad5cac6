//! `switchboard token list`: what the configuration lets into the agents'
//! API, without anything that would let a reader in.

use anyhow::Context;
use serde::Serialize;
use switchboard_app::Config;
use switchboard_app::local::DevSecrets;
use switchboard_pipeline::access::{AccessTokens, token_sha256};

/// Hex digits of a token's SHA-256 shown: enough to tell tokens apart and
/// to find the entry in the file.
const PREFIX_LEN: usize = 12;

/// One token the configuration holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedToken {
    pub name: String,
    pub scope: &'static str,
    /// The first hex digits of its SHA-256.
    pub sha256_prefix: String,
    /// Where it is configured: `server.admin_token`, `server.tokens`, or
    /// development mode's `dev-secrets.json`.
    pub source: &'static str,
}

/// The tokens `serve` would accept with `config`, in the order it holds them.
/// A malformed hash is the error `serve` would stop at.
pub fn configured(config: &Config) -> anyhow::Result<Vec<ListedToken>> {
    AccessTokens::new(config.server.admin_token.as_ref(), &config.server.tokens)
        .context("configuring server.tokens")?;
    let prefix = |sha256: &str| sha256.trim().chars().take(PREFIX_LEN).collect::<String>();
    let mut listed = Vec::new();
    let admin = |sha256: &str, source| ListedToken {
        name: "admin".into(),
        scope: "admin",
        sha256_prefix: prefix(sha256),
        source,
    };
    match &config.server.admin_token {
        Some(token) => listed.push(admin(&token_sha256(token.expose()), "server.admin_token")),
        None if config.is_development() => {
            if let Some(dev) = DevSecrets::load(&config.data_dir) {
                listed.push(admin(&token_sha256(&dev.admin_token), "dev-secrets.json"));
            }
        }
        None => {}
    }
    listed.extend(config.server.tokens.iter().map(|token| ListedToken {
        name: token.name.clone(),
        scope: token.scope.as_str(),
        sha256_prefix: prefix(&token.sha256).to_ascii_lowercase(),
        source: "server.tokens",
    }));
    Ok(listed)
}

/// The list for a terminal.
pub fn table(listed: &[ListedToken]) -> String {
    if listed.is_empty() {
        return "No tokens configured: the agents' API is off. `switchboard token create` makes one.\n"
            .into();
    }
    let width = listed
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<6}  {:<14}  {}\n",
        "NAME", "SCOPE", "SHA256", "FROM"
    );
    for token in listed {
        out.push_str(&format!(
            "{:<width$}  {:<6}  {:<14}  {}\n",
            token.name,
            token.scope,
            format!("{}…", token.sha256_prefix),
            token.source
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::Secret;
    use switchboard_pipeline::access::{Scope, TokenConfig};

    #[test]
    fn lists_holders_scopes_and_hash_prefixes_never_a_token() {
        let mut config = Config {
            channels: toml_channels(),
            ..Config::default()
        };
        config.server.admin_token = Some(Secret::new("root-token-value"));
        config.server.tokens = vec![TokenConfig {
            name: "lee".into(),
            scope: Scope::Agent,
            sha256: token_sha256("agent-token").to_ascii_uppercase(),
        }];
        let listed = configured(&config).unwrap();
        assert_eq!(
            listed,
            vec![
                ListedToken {
                    name: "admin".into(),
                    scope: "admin",
                    sha256_prefix: token_sha256("root-token-value")[..12].to_owned(),
                    source: "server.admin_token",
                },
                ListedToken {
                    name: "lee".into(),
                    scope: "agent",
                    sha256_prefix: token_sha256("agent-token")[..12].to_owned(),
                    source: "server.tokens",
                },
            ]
        );
        let printed = table(&listed);
        assert!(printed.contains("lee "), "{printed}");
        assert!(!printed.contains("root-token-value"), "{printed}");
        assert!(!printed.contains(&token_sha256("agent-token")), "{printed}");
    }

    #[test]
    fn a_malformed_hash_is_the_error_serve_would_give() {
        let mut config = Config::default();
        config.server.tokens = vec![TokenConfig {
            name: "kim".into(),
            scope: Scope::Agent,
            sha256: "abc".into(),
        }];
        let error = switchboard_domain::error_chain(configured(&config).unwrap_err().as_ref());
        assert!(
            error.contains("token kim: sha256 must be 64 hex digits"),
            "{error}"
        );
    }

    fn toml_channels() -> switchboard_app::config::Channels {
        let mut settings = switchboard_channels::ChannelSettings::new();
        settings.insert("telegram".into(), serde_json::json!({}));
        switchboard_app::config::Channels(settings)
    }
}
