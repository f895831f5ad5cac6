//! Dump, for every dev query of every benchmark set, the evidence the
//! confidence is computed from and whether the top entry is right, as JSON
//! lines: the input for fitting the calibration (see README, "Confidence"), and
//! each query's top 10 (id, score), which `distill/ceiling.py` re-ranks.
//!
//! `cargo run --profile eval -p switchboard-faq --features embeddings --example calibration_dump -- <bench dir> > evidence.jsonl`

use std::path::PathBuf;

use switchboard_faq::eval::load_queries;
use switchboard_faq::{KnowledgeBase, Matcher, MatcherOptions};

const SETS: &[&str] = &["stackfaq", "clinc150", "banking77", "cic", "cic_open"];

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: calibration_dump <bench dir>");
        std::process::exit(2);
    };
    for set in SETS {
        let kb = KnowledgeBase::load(&dir.join(set).join("kb.jsonl")).expect("kb");
        let queries = load_queries(&dir.join(set).join("dev.jsonl")).expect("queries");
        let options = MatcherOptions::for_kb(&kb);
        let matcher = Matcher::build_with(&kb, options);
        let phrasings: usize = kb.entries.iter().map(|e| e.phrasings().count()).sum();
        for q in &queries {
            let ranking = matcher.rank(&q.query, 10);
            let right = ranking.top().is_some_and(|top| q.gold.contains(&top.id));
            println!(
                "{}",
                serde_json::json!({
                    "set": set,
                    "in_scope": !q.gold.is_empty(),
                    "right": right,
                    "cjk": ranking.language.is_cjk(),
                    "index_answers": options.index_answers,
                    "phrasings_per_entry": phrasings as f64 / kb.len().max(1) as f64,
                    "entries": kb.len(),
                    "evidence": ranking.evidence,
                    "confidence": ranking.confidence,
                    "query_id": q.id,
                    "top": ranking
                        .candidates
                        .iter()
                        .map(|c| (c.id.as_str(), c.score))
                        .collect::<Vec<_>>(),
                })
            );
        }
    }
}
