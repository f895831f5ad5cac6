//! Command-line front ends for `switchboard faq eval` and `switchboard faq rank`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use switchboard_domain::Language;

use crate::eval::{self, Metrics};
use crate::{FaqError, KnowledgeBase, Matcher, MatcherOptions, shipped_threshold};

/// Measure the matcher on a labelled query set.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Knowledge base (.jsonl, .json, .yaml or .yml).
    #[arg(long)]
    pub kb: PathBuf,
    /// Labelled queries, one `{"id", "query", "gold": [ids]}` per line; empty gold = out of scope.
    #[arg(long)]
    pub queries: PathBuf,
    /// Labelled queries used only to pick the threshold (instead of the shipped one).
    #[arg(long)]
    pub tune: Option<PathBuf>,
    /// Also match against answer text. Without it, answers are indexed when the
    /// knowledge base looks like community Q&A (see `MatcherOptions::for_kb`).
    #[arg(long)]
    pub index_answers: bool,
    /// Also rank by meaning with the static word embeddings (a build with the
    /// `embeddings` feature; see `MatcherOptions::semantic`).
    #[arg(long)]
    pub semantic: bool,
}

/// Rank knowledge-base entries for each query.
#[derive(Debug, Clone, clap::Args)]
pub struct RankArgs {
    #[arg(long)]
    pub kb: PathBuf,
    /// Queries, one `{"id", "query"}` per line.
    #[arg(long)]
    pub queries: PathBuf,
    /// How many entries to list per query (at least 1).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub top: usize,
    /// Also match against answer text (see `eval --index-answers`).
    #[arg(long)]
    pub index_answers: bool,
    /// Also rank by meaning (see `eval --semantic`).
    #[arg(long)]
    pub semantic: bool,
}

/// A clap value parser for counts that must be at least 1 (also used by the
/// `switchboard` command's own arguments).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

/// The result of an evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub kb_entries: usize,
    pub index_answers: bool,
    pub language: &'static str,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Whether the threshold came from `--tune` rather than the shipped bands.
    pub tuned: bool,
    pub build_ms: f64,
    /// Mean time to rank one query, in microseconds.
    pub query_us: f64,
}

/// `--semantic` needs a build with the embedding tables.
fn check_semantic(semantic: bool) -> Result<(), FaqError> {
    if semantic && crate::embed::Embeddings::shipped().is_none() {
        return Err(FaqError::Parse {
            location: "--semantic".into(),
            message:
                "this build has no embedding tables (build `switchboard` with --features semantic)"
                    .into(),
        });
    }
    Ok(())
}

fn options(kb: &KnowledgeBase, force_answers: bool, semantic: bool) -> MatcherOptions {
    let mut options = MatcherOptions::for_kb(kb);
    options.index_answers |= force_answers;
    options.semantic = semantic;
    options
}

fn progress(len: usize, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || len < 200 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// The majority language of the queries.
fn majority_language(queries: &[eval::LabelledQuery]) -> Language {
    let mut counts = [0usize; Language::ALL.len()];
    for q in queries {
        let detected = Language::detect(&q.query);
        if let Some(i) = Language::ALL.iter().position(|&l| l == detected) {
            counts[i] += 1;
        }
    }
    let best = (0..counts.len()).max_by_key(|&i| (counts[i], usize::MAX - i));
    best.map_or(Language::En, |i| Language::ALL[i])
}

/// Run an evaluation and return the figures without printing them.
pub fn run_eval_report(args: &EvalArgs) -> Result<EvalReport, FaqError> {
    check_semantic(args.semantic)?;
    let kb = KnowledgeBase::load(&args.kb)?;
    let queries = eval::load_queries(&args.queries)?;
    let options = options(&kb, args.index_answers, args.semantic);
    let started = Instant::now();
    let matcher = Matcher::build_with(&kb, options);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let language = majority_language(&queries);
    let (threshold, tuned) = match &args.tune {
        Some(path) => {
            let tune = eval::load_queries(path)?;
            let outcomes = eval::run(&matcher, &tune, || {});
            match eval::pick_threshold(&outcomes) {
                Some(t) => (t, true),
                None => (shipped_threshold(language), false),
            }
        }
        None => (shipped_threshold(language), false),
    };
    let bar = progress(queries.len(), "ranking");
    let started = Instant::now();
    let outcomes = eval::run(&matcher, &queries, || bar.inc(1));
    let query_us = started.elapsed().as_secs_f64() * 1e6 / queries.len().max(1) as f64;
    bar.finish_and_clear();
    Ok(EvalReport {
        kb_entries: kb.len(),
        index_answers: options.index_answers,
        language: language.code(),
        metrics: eval::metrics(&outcomes, threshold),
        tuned,
        build_ms,
        query_us,
    })
}

/// `faq eval`: human-readable lines, then the whole report as one JSON line.
pub fn run_eval(args: &EvalArgs, out: &mut dyn Write) -> Result<(), FaqError> {
    let report = run_eval_report(args)?;
    let m = &report.metrics;
    writeln!(
        out,
        "knowledge base: {} entries (answers indexed: {}); queries: {} ({} out of scope)",
        report.kb_entries, report.index_answers, m.queries, m.out_of_scope
    )?;
    writeln!(out, "P@1       {:.3}", m.p_at_1)?;
    writeln!(out, "MRR@10    {:.3}", m.mrr_at_10)?;
    writeln!(
        out,
        "answered {:.3} of in-scope, precision {:.3} (threshold {:.2}, {})",
        m.answered,
        m.answered_precision,
        m.threshold,
        if report.tuned { "tuned" } else { "shipped" }
    )?;
    if let (Some(auroc), Some(acc), Some(recall), Some(f1)) =
        (m.oos_auroc, m.in_scope_acc, m.oos_recall, m.abstain_f1)
    {
        let source = if report.tuned { "tuned" } else { "shipped" };
        writeln!(out, "oos_AUROC {auroc:.3}")?;
        writeln!(
            out,
            "threshold {:.3} ({source}, {})",
            m.threshold, report.language
        )?;
        writeln!(
            out,
            "in_scope_acc {acc:.3}  oos_recall {recall:.3}  abstain_F1 {f1:.3}"
        )?;
    }
    writeln!(
        out,
        "build {:.0} ms, {:.1} us per query",
        report.build_ms, report.query_us
    )?;
    writeln!(
        out,
        "{}",
        serde_json::to_string(&report).unwrap_or_default()
    )?;
    Ok(())
}

#[derive(Serialize)]
struct RankLine<'a> {
    id: &'a str,
    ranking: Vec<&'a str>,
    confidence: f32,
    answer: bool,
}

/// `faq rank`: one JSON line per query with the ranked ids, the confidence and
/// whether the product would answer (confidence at or above the shipped threshold).
pub fn run_rank(args: &RankArgs, out: &mut dyn Write) -> Result<(), FaqError> {
    check_semantic(args.semantic)?;
    let kb = KnowledgeBase::load(&args.kb)?;
    let queries = eval::load_queries(&args.queries)?;
    let matcher = Matcher::build_with(&kb, options(&kb, args.index_answers, args.semantic));
    let bar = progress(queries.len(), "ranking");
    for query in &queries {
        let ranking = matcher.rank(&query.query, args.top);
        let line = RankLine {
            id: &query.id,
            ranking: ranking.candidates.iter().map(|c| c.id.as_str()).collect(),
            confidence: ranking.confidence,
            answer: !ranking.candidates.is_empty()
                && ranking.confidence >= shipped_threshold(ranking.language),
        };
        writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
