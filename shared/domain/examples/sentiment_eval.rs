//! Accuracy of the sentiment scorer on labelled sets, per file.
//!
//! `cargo run --release -p switchboard-domain --example sentiment_eval -- [FILE...]
//!  [--threshold T] [--sweep] [--errors N]`
//!
//! Without files it reads our support sets (`sentiment-data/support-*.tsv`). The
//! public sets come from `sentiment-data/build.py public`. `--sweep` prints the
//! clearly-negative decision at other thresholds; `--errors N` lists up to N
//! messages per file whose decision or polarity is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use switchboard_domain::sentiment::CLEARLY_NEGATIVE;
use switchboard_domain::sentiment::evaluation::{Label, NEUTRAL_BAND, evaluate, score_labelled};

fn main() -> ExitCode {
    let mut files = Vec::new();
    let mut threshold = CLEARLY_NEGATIVE;
    let mut sweep = false;
    let mut errors = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value =
            |args: &mut dyn Iterator<Item = String>| args.next().and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--threshold" => match value(&mut args) {
                Some(t) => threshold = t,
                None => return usage("--threshold takes a number"),
            },
            "--errors" => match value(&mut args) {
                Some(n) => errors = n as usize,
                None => return usage("--errors takes a number"),
            },
            "--sweep" => sweep = true,
            flag if flag.starts_with("--") => return usage(&format!("unknown option {flag}")),
            file => files.push(PathBuf::from(file)),
        }
    }
    if files.is_empty() {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sentiment-data");
        files = vec![data.join("support-en.tsv"), data.join("support-zh.tsv")];
    }
    for file in files {
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                return ExitCode::from(1);
            }
        };
        let items = match score_labelled(&source) {
            Ok(items) => items,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(1);
            }
        };
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!("{name}\n{}", evaluate(&items, threshold));
        if sweep {
            for step in 0..=12 {
                let t = -0.3 - step as f32 * 0.05;
                let r = evaluate(&items, t);
                let p = |v: Option<f64>| {
                    v.map_or_else(|| "    -".into(), |v| format!("{:5.1}", v * 100.0))
                };
                // Sets without clear_neg labels have no strict figures.
                let graded = r.clearly_negative.actual > 0;
                let strict = |v: Option<f64>| p(v.filter(|_| graded));
                println!(
                    "    threshold {t:+.2}: flagged {:5}  clear_neg P {} R {}  any-neg P {} R {}",
                    r.any_negative.predicted,
                    strict(r.clearly_negative.precision()),
                    strict(r.clearly_negative.recall()),
                    p(r.any_negative.precision()),
                    p(r.any_negative.recall()),
                );
            }
        }
        if errors > 0 {
            let wrong = items.iter().filter(|i| {
                let flagged = i.score <= threshold;
                let negative = i.score <= -NEUTRAL_BAND;
                let positive = i.score >= NEUTRAL_BAND;
                flagged != (i.label == Label::ClearNeg)
                    || match i.label {
                        Label::ClearNeg | Label::Neg => !negative,
                        Label::Neu => negative || positive,
                        Label::Pos => !positive,
                    }
            });
            for item in wrong.take(errors) {
                println!("    {:?}\t{:+.3}\t{}", item.label, item.score, item.text);
            }
        }
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: sentiment_eval [FILE...] [--threshold T] [--sweep] [--errors N]");
    ExitCode::from(2)
}
