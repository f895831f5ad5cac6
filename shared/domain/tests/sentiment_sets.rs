//! The scorer on our labelled support sets (sentiment-data/support-*.tsv, and the
//! held-out sets never used for tuning): accuracy and the clearly-negative decision
//! that routing takes must stay at the level measured when it was built.

use switchboard_domain::sentiment::CLEARLY_NEGATIVE;
use switchboard_domain::sentiment::evaluation::{Report, evaluate, score_labelled};

fn report(file: &str) -> Report {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sentiment-data")
        .join(file);
    let source = std::fs::read_to_string(&path).expect("labelled set");
    let items = score_labelled(&source).expect("well-formed labelled set");
    let report = evaluate(&items, CLEARLY_NEGATIVE);
    eprintln!("{file}\n{report}");
    report
}

/// Floors: a little below the figures measured when the threshold was chosen.
struct Floors {
    accuracy: f64,
    precision: f64,
    recall: f64,
    false_escalations: usize,
}

fn check(file: &str, floors: Floors) {
    let r = report(file);
    assert!(r.messages >= 80, "{file}: {} messages", r.messages);
    let accuracy = r
        .three_class_accuracy
        .expect("support sets have neutral messages");
    let precision = r.clearly_negative.precision().unwrap_or(0.0);
    let recall = r.clearly_negative.recall().unwrap_or(0.0);
    assert!(
        accuracy >= floors.accuracy,
        "{file}: accuracy {accuracy:.3}"
    );
    assert!(
        precision >= floors.precision,
        "{file}: precision {precision:.3}"
    );
    assert!(recall >= floors.recall, "{file}: recall {recall:.3}");
    assert!(
        r.false_escalations <= floors.false_escalations,
        "{file}: {} neutral or positive messages escalated",
        r.false_escalations
    );
}

#[test]
fn english_support_set() {
    check(
        "support-en.tsv",
        Floors {
            accuracy: 0.93,
            precision: 0.95,
            recall: 0.88,
            false_escalations: 0,
        },
    );
}

#[test]
fn chinese_support_set() {
    check(
        "support-zh.tsv",
        Floors {
            accuracy: 0.93,
            precision: 0.92,
            recall: 0.9,
            false_escalations: 0,
        },
    );
}

#[test]
fn english_held_out_set() {
    check(
        "holdout-en.tsv",
        Floors {
            accuracy: 0.85,
            precision: 0.9,
            recall: 0.8,
            false_escalations: 1,
        },
    );
}

#[test]
fn chinese_held_out_set() {
    check(
        "holdout-zh.tsv",
        Floors {
            accuracy: 0.88,
            precision: 0.95,
            recall: 0.8,
            false_escalations: 0,
        },
    );
}

#[test]
fn the_sets_are_large_enough_per_language() {
    for (support, holdout) in [
        ("support-en.tsv", "holdout-en.tsv"),
        ("support-zh.tsv", "holdout-zh.tsv"),
    ] {
        let n = report(support).messages + report(holdout).messages;
        assert!(n >= 200, "{support} + {holdout}: {n}");
    }
}
