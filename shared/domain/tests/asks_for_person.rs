//! "Asks for a person" measured on our own labelled sentences, per language.
//! Run with `--nocapture` to see the figures (tests/run.sh does).

use switchboard_domain::intent::asks_for_person;

struct Figures {
    precision: f64,
    recall: f64,
    misses: Vec<String>,
    false_alarms: Vec<String>,
    sentences: usize,
}

fn measure(data: &str) -> Figures {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    let (mut misses, mut false_alarms) = (Vec::new(), Vec::new());
    let mut sentences = 0;
    for line in data.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (label, text) = line.split_once('\t').expect("label<TAB>text");
        let expected = match label {
            "1" => true,
            "0" => false,
            other => panic!("bad label {other:?} in {line:?}"),
        };
        sentences += 1;
        match (expected, asks_for_person(text)) {
            (true, true) => tp += 1,
            (true, false) => {
                fneg += 1;
                misses.push(text.to_owned());
            }
            (false, true) => {
                fp += 1;
                false_alarms.push(text.to_owned());
            }
            (false, false) => {}
        }
    }
    Figures {
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fneg).max(1) as f64,
        misses,
        false_alarms,
        sentences,
    }
}

fn check(language: &str, data: &str) {
    let f = measure(data);
    report(language, &f);
    assert!(
        f.sentences >= 200,
        "{language}: at least 200 labelled sentences"
    );
    // a false alarm hands an answerable question to a person; a miss keeps a
    // customer who asked for one with the bot
    assert!(
        f.precision >= 0.95,
        "{language} precision {:.3}",
        f.precision
    );
    assert!(f.recall >= 0.90, "{language} recall {:.3}", f.recall);
}

fn report(set: &str, f: &Figures) {
    println!(
        "asks for a person ({set}): {} sentences, precision {:.3}, recall {:.3}",
        f.sentences, f.precision, f.recall
    );
    for text in &f.misses {
        println!("  missed:      {text}");
    }
    for text in &f.false_alarms {
        println!("  false alarm: {text}");
    }
}

/// Sets written after the rules were settled and never tuned on: their figures
/// are the honest ones; they must stay useful, not perfect.
fn check_held_out(language: &str, data: &str) {
    let f = measure(data);
    report(&format!("{language}, held out"), &f);
    assert!(
        f.precision >= 0.80 && f.recall >= 0.70,
        "{language} held out"
    );
}

#[test]
fn english() {
    check("en", include_str!("data/asks_for_person_en.tsv"));
}

#[test]
fn chinese() {
    check("zh", include_str!("data/asks_for_person_zh.tsv"));
}

#[test]
fn english_held_out() {
    check_held_out("en", include_str!("data/asks_for_person_en_heldout.tsv"));
}

#[test]
fn chinese_held_out() {
    check_held_out("zh", include_str!("data/asks_for_person_zh_heldout.tsv"));
}
