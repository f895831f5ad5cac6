//! Evaluate the matcher on every set of a benchmark directory laid out as
//! `<dir>/<set>/kb.jsonl` and `<dir>/<set>/dev.jsonl`, and print a table.
//!
//! `cargo run --release -p switchboard-faq --example faq_eval -- <bench dir> [set ...]`

use std::path::PathBuf;

use switchboard_faq::cli::{EvalArgs, run_eval_report};

const SETS: &[&str] = &["stackfaq", "clinc150", "banking77", "cic", "cic_open"];

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: faq_eval <bench dir> [set ...]");
        std::process::exit(2);
    };
    let chosen: Vec<String> = args.collect();
    let sets: Vec<&str> = SETS
        .iter()
        .copied()
        .filter(|s| chosen.is_empty() || chosen.iter().any(|c| c == s))
        .collect();
    println!(
        "{:<10} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}",
        "set",
        "P@1",
        "MRR@10",
        "AUROC",
        "in_acc",
        "oos_rec",
        "abs_F1",
        "answd",
        "prec",
        "build_ms",
        "query_us"
    );
    for set in sets {
        let args = EvalArgs {
            kb: dir.join(set).join("kb.jsonl"),
            queries: dir.join(set).join("dev.jsonl"),
            tune: None,
            index_answers: false,
            semantic: std::env::var_os("FAQ_EVAL_SEMANTIC").is_some(),
        };
        match run_eval_report(&args) {
            Ok(report) => {
                let m = &report.metrics;
                let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                println!(
                    "{:<10} {:>6.3} {:>7.3} {:>7} {:>7} {:>7} {:>7} {:>7.3} {:>7.3} {:>9.0} {:>9.1}",
                    set,
                    m.p_at_1,
                    m.mrr_at_10,
                    opt(m.oos_auroc),
                    opt(m.in_scope_acc),
                    opt(m.oos_recall),
                    opt(m.abstain_f1),
                    m.answered,
                    m.answered_precision,
                    report.build_ms,
                    report.query_us
                );
            }
            Err(err) => println!("{set:<10} error: {err}"),
        }
    }
}
