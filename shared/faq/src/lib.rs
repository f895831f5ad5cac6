//! Switchboard's FAQ knowledge base and matcher.
//!
//! A [`KnowledgeBase`] is imported from JSON Lines or YAML, compiled into an
//! immutable [`Matcher`], and asked to [`Matcher::rank`] entries for a customer
//! message. The ranking carries a confidence in [0, 1] that the routing policy
//! turns into answer / answer and offer a person / hand over.

#[cfg(feature = "cli")]
pub mod cli;
mod codec;
pub mod embed;
pub mod eval;
pub mod kb;
pub mod lexical;
pub mod matcher;
pub mod model;
pub mod text;

pub use kb::{KbChanges, KbEntry, KnowledgeBase};
pub use matcher::{Evidence, Matcher, MatcherOptions, Ranking, Scored, bands, shipped_threshold};

/// A small knowledge base for the fictional shop "Acme", in English and Chinese.
/// The local server answers from it out of the box.
pub const SAMPLE_KB_YAML: &str = include_str!("../sample/kb.yaml");

/// The sample knowledge base, parsed.
pub fn sample_kb() -> KnowledgeBase {
    KnowledgeBase::from_yaml(SAMPLE_KB_YAML).expect("the bundled sample knowledge base is valid")
}

#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    /// A knowledge base or query file could not be parsed; `location` is e.g. "line 3".
    #[error("{location}: {message}")]
    Parse { location: String, message: String },
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown knowledge base format {0:?} (use .jsonl, .json, .yaml or .yml)")]
    UnknownFormat(String),
    #[error("compiled matcher: {0}")]
    Corrupt(String),
    #[error("cannot write output")]
    Write(#[from] std::io::Error),
}
