//! Live reload of the knowledge base: `kb import` writes a new generation to
//! the database; a running `serve` notices within a few seconds, compiles it
//! beside the one in use and swaps it in whole (as the AWS side swaps
//! generations in DynamoDB).

use std::sync::Arc;
use std::time::Duration;

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
