//! Live reload of the knowledge base: `kb import` writes a new generation to
//! the database; a running `serve` notices within a few seconds, compiles it
//! beside the one in use and swaps it in whole (as the AWS side swaps
//! generations in DynamoDB).
//!
//! And of the agents' API tokens: `serve` reads its config file again when
//! the file changes and swaps in its `admin_token` and `[[server.tokens]]`,
//! so a token removed from the file stops working within seconds. A file
//! that no longer reads keeps the tokens in use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_app::Config;
use switchboard_app::local::Local;
use switchboard_domain::error_chain;
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::faq::{CompiledFaq, Faq};
use switchboard_sqlite::SqliteStore;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often a running server looks for a new import.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Watches the stored knowledge base until `stop` turns true. Not started when
/// the configuration names a knowledge-base file (that file wins over imports).
pub async fn watch_imports(store: SqliteStore, faq: Arc<Faq>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(error) = reload_if_newer(&store, &faq).await {
            // The old generation keeps answering; the next look tries again.
            warn!(error = %error, "knowledge base not reloaded");
        }
    }
}

/// Compiles and swaps in the stored knowledge base if its generation is newer
/// than the one in use. Answers whether it did.
pub async fn reload_if_newer(store: &SqliteStore, faq: &Faq) -> anyhow::Result<bool> {
    let Some(generation) = store.knowledge_base_generation().await? else {
        return Ok(false);
    };
    if faq.current().generation().is_some_and(|g| g >= generation) {
        return Ok(false);
    }
    let Some(jsonl) = store.load_knowledge_base().await? else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    // Compiling a large knowledge base takes seconds: off the async threads.
    let compiled = tokio::task::spawn_blocking(move || {
        KnowledgeBase::from_jsonl(&jsonl).map(|kb| CompiledFaq::compile(kb, Some(generation)))
    })
    .await??;
    let entries = compiled.knowledge_base().len();
    faq.replace(compiled);
    info!(
        generation,
        entries,
        compile_ms = started.elapsed().as_millis() as u64,
        "knowledge base reloaded"
    );
    Ok(true)
}

/// Re-reads the config file's tokens whenever its content changes, until
/// `stop` turns true.
pub async fn watch_tokens(local: Arc<Local>, path: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut tokens = TokenFile::new(path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.changed() => return,
        }
        match tokens.reload_if_changed(&local) {
            Ok(Some(holders)) => info!(
                tokens = holders.len(),
                holders = ?holders,
                "agents' API tokens reloaded from the config file"
            ),
            Ok(None) => {}
            // Nothing is opened up or lost: the tokens in use stay.
            Err(error) => warn!(
                error = %error_chain(error.as_ref()),
                "agents' API tokens not reloaded; the ones in use stay"
            ),
        }
    }
}

/// The config file as last looked at, so that each change is read (and a
/// bad one reported) once.
pub struct TokenFile {
    path: PathBuf,
    seen: Option<Vec<u8>>,
    unreadable: bool,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            seen: None,
            unreadable: false,
        }
    }

    /// Swaps in the file's tokens if its content changed since the last look
    /// and they differ from those in use; answers who holds the new set (names
    /// and scopes). A file that cannot be read, or does not make a valid
    /// configuration, is an error once, and the tokens in use stay.
    pub fn reload_if_changed(
        &mut self,
        local: &Local,
    ) -> anyhow::Result<Option<Vec<(String, &'static str)>>> {
        let content = match std::fs::read(&self.path) {
            Ok(content) => content,
            Err(_) if self.unreadable => return Ok(None),
            Err(error) => {
                self.unreadable = true;
                return Err(error)
                    .with_context(|| format!("cannot read config file {}", self.path.display()));
            }
        };
        self.unreadable = false;
        if self.seen.as_ref() == Some(&content) {
            return Ok(None);
        }
        self.seen = Some(content);
        let config = Config::from_file(&self.path)?;
        let tokens = local.access_tokens(&config)?;
        let access = &local.app.access;
        if access.accepts_same(&tokens) {
            return Ok(None);
        }
        access.replace(tokens);
        Ok(Some(
            access
                .holders()
                .into_iter()
                .map(|(name, scope)| (name, scope.as_str()))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use switchboard_pipeline::access::{Denied, Scope};

    use super::*;

    #[tokio::test]
    async fn a_changed_file_swaps_the_tokens_and_a_bad_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        let write = |admin: &str, more: &str| {
            std::fs::write(
                &path,
                format!("data_dir = \"data\"\n[server]\nadmin_token = \"{admin}\"\n{more}"),
            )
            .unwrap()
        };
        write("first-admin", "");
        let local = Local::open(Config::from_file(&path).unwrap())
            .await
            .unwrap();
        let access = local.app.access.clone();
        let can = |token: &str| access.authorize(Some(&format!("Bearer {token}")), Scope::Admin);
        let mut file = TokenFile::new(path.clone());
        // The first look finds the tokens in use: nothing to swap.
        assert_eq!(file.reload_if_changed(&local).unwrap(), None);

        write("second-admin", "");
        assert_eq!(
            file.reload_if_changed(&local).unwrap(),
            Some(vec![("admin".to_owned(), "admin")])
        );
        assert_eq!(can("first-admin"), Err(Denied::Unauthenticated));
        assert!(can("second-admin").is_ok());
        // Unchanged: not read again.
        assert_eq!(file.reload_if_changed(&local).unwrap(), None);

        // A malformed hash, then broken TOML: reported once each, tokens kept.
        write(
            "third-admin",
            "tokens = [{ name = \"kim\", scope = \"agent\", sha256 = \"abc\" }]\n",
        );
        let error = error_chain(file.reload_if_changed(&local).unwrap_err().as_ref());
        assert!(
            error.contains("token kim: sha256 must be 64 hex digits"),
            "{error}"
        );
        assert_eq!(file.reload_if_changed(&local).unwrap(), None);
        std::fs::write(&path, "[server\nadmin_token = \"third-admin\"\n").unwrap();
        let error = error_chain(file.reload_if_changed(&local).unwrap_err().as_ref());
        assert!(error.contains("line 1"), "{error}");
        assert!(!error.contains("third-admin"), "{error}");
        std::fs::remove_file(&path).unwrap();
        let error = error_chain(file.reload_if_changed(&local).unwrap_err().as_ref());
        assert!(error.contains("cannot read config file"), "{error}");
        assert_eq!(file.reload_if_changed(&local).unwrap(), None);
        assert_eq!(can("third-admin"), Err(Denied::Unauthenticated));
        assert!(can("second-admin").is_ok());
    }
}
