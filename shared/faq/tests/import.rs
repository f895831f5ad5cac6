use std::io::Write;

use switchboard_domain::Language;
use switchboard_faq::{FaqError, KnowledgeBase};

#[test]
fn jsonl_in_the_benchmark_format() {
    let text = r#"{"id": "e1", "question": "How do I pay?", "answer": "By card.", "lang": "en", "paraphrases": ["payment options"]}

{"id": "e2", "question": "怎么付款", "answer": "刷卡", "lang": "zh"}
"#;
    let kb = KnowledgeBase::from_jsonl(text).unwrap();
    assert_eq!(kb.len(), 2);
    assert_eq!(kb.entries[0].paraphrases, ["payment options"]);
    assert_eq!(kb.entries[1].lang.as_deref(), Some("zh"));
    assert!(kb.entries[1].paraphrases.is_empty());
}

#[test]
fn jsonl_errors_name_the_line() {
    let text = "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"x\"}\n\n{\"question\": \"q2\", \"answer\": \"y\"}\n";
    let err = KnowledgeBase::from_jsonl(text).unwrap_err();
    assert!(matches!(err, FaqError::Parse { .. }));
    assert_eq!(err.to_string(), "line 3: missing field `id`");

    let err =
        KnowledgeBase::from_jsonl("{\"id\": \"a\", \"question\": \"q\"}\n{not json\n").unwrap_err();
    assert!(err.to_string().starts_with("line 2: "), "{err}");

    let duplicate = "{\"id\": \"a\", \"question\": \"q\"}\n{\"id\": \"a\", \"question\": \"r\"}\n";
    assert_eq!(
        KnowledgeBase::from_jsonl(duplicate)
            .unwrap_err()
            .to_string(),
        "line 2: duplicate id a"
    );

    let empty_question = "{\"id\": \"a\", \"question\": \" \"}\n";
    assert_eq!(
        KnowledgeBase::from_jsonl(empty_question)
            .unwrap_err()
            .to_string(),
        "line 1: empty question"
    );

    let bad_language = "{\"id\": \"a\", \"question\": \"q\", \"answers\": {\"pt\": \"sim\"}}\n";
    let err = KnowledgeBase::from_jsonl(bad_language)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("line 1: unknown answer language"), "{err}");
}

#[test]
fn yaml_with_answers_per_language() {
    let text = r#"
- id: hours
  question: When are you open?
  answers:
    en: Nine to five.
    zh: 九点到五点。
  paraphrases: [opening hours, 几点开门]
- id: fee
  question: Is delivery free?
  answer: Over 50, yes.
"#;
    let kb = KnowledgeBase::from_yaml(text).unwrap();
    assert_eq!(kb.len(), 2);
    let hours = &kb.entries[0];
    assert_eq!(
        hours.answer, "Nine to five.",
        "default answer falls back to English"
    );
    assert_eq!(kb.answer_for(hours, Language::Zh), "九点到五点。");
    assert_eq!(kb.answer_for(hours, Language::En), "Nine to five.");
    let fee = &kb.entries[1];
    assert_eq!(
        kb.answer_for(fee, Language::Zh),
        "Over 50, yes.",
        "no Chinese answer: the default"
    );
    assert_eq!(hours.paraphrases, ["opening hours", "几点开门"]);

    let wrapped = format!(
        "entries:\n{}",
        text.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    assert_eq!(KnowledgeBase::from_yaml(&wrapped).unwrap(), kb);
}

#[test]
fn yaml_errors_are_clear() {
    let missing = "- id: a\n  question: q\n  answer: x\n- question: r\n  answer: y\n";
    let err = KnowledgeBase::from_yaml(missing).unwrap_err().to_string();
    assert!(
        err.contains("missing field `id`") || err.contains("did not match"),
        "{err}"
    );
    assert!(err.starts_with("line "), "{err}");

    let duplicate = "- id: a\n  question: q\n- id: a\n  question: r\n";
    assert_eq!(
        KnowledgeBase::from_yaml(duplicate).unwrap_err().to_string(),
        "entry 2 (a): duplicate id a"
    );

    let broken = "- id: a\n  question: [unclosed\n";
    let err = KnowledgeBase::from_yaml(broken).unwrap_err().to_string();
    assert!(err.starts_with("line "), "{err}");
}

#[test]
fn export_round_trips() {
    let kb = switchboard_faq::sample_kb();
    let again = KnowledgeBase::from_jsonl(&kb.to_jsonl()).unwrap();
    assert_eq!(again, kb);
    assert_eq!(kb.to_jsonl().lines().count(), kb.len());
}

#[test]
fn load_picks_the_parser_by_extension() {
    let dir = std::env::temp_dir().join(format!("switchboard-faq-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("kb.yml");
    std::fs::write(&yaml, switchboard_faq::SAMPLE_KB_YAML).unwrap();
    let jsonl = dir.join("kb.jsonl");
    let mut file = std::fs::File::create(&jsonl).unwrap();
    file.write_all(switchboard_faq::sample_kb().to_jsonl().as_bytes())
        .unwrap();
    assert_eq!(
        KnowledgeBase::load(&yaml).unwrap(),
        KnowledgeBase::load(&jsonl).unwrap()
    );
    let txt = dir.join("kb.txt");
    std::fs::write(&txt, "x").unwrap();
    assert!(matches!(
        KnowledgeBase::load(&txt),
        Err(FaqError::UnknownFormat(_))
    ));
    assert!(matches!(
        KnowledgeBase::load(&dir.join("missing.yaml")),
        Err(FaqError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_answerable_knowledge_base_needs_an_answer_for_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kb.jsonl",
        "{\"id\":\"a\",\"question\":\"Q\",\"answer\":\"A\"}\n{\"id\":\"x\",\"question\":\"Q\"}\n",
    );
    // fine to match against (benchmark sets have no answers) ...
    assert_eq!(KnowledgeBase::load(&path).unwrap().len(), 2);
    // ... but not to answer from
    let err = KnowledgeBase::load_answerable(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: entry x has no answer (give \"answer\" or \"answers\")"
    );
    // an answer in one language is enough; blank answers are none
    let per_language = write(
        dir.path(),
        "per_language.jsonl",
        "{\"id\":\"a\",\"question\":\"Q\",\"answers\":{\"zh\":\"答\"}}\n",
    );
    assert_eq!(
        KnowledgeBase::load_answerable(&per_language)
            .unwrap()
            .entries[0]
            .answer,
        "答"
    );
    let blank = write(
        dir.path(),
        "blank.yaml",
        "- id: a\n  question: Q\n  answer: \"  \"\n",
    );
    let err = KnowledgeBase::load_answerable(&blank).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("entry 1 (a): entry a has no answer"),
        "{err}"
    );
}

#[test]
fn an_empty_file_is_not_an_answerable_knowledge_base() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n\n"),
        ("empty.yaml", ""),
    ] {
        let path = write(dir.path(), name, text);
        let err = KnowledgeBase::load_answerable(&path).unwrap_err();
        assert!(err.to_string().contains("no entries"), "{name}: {err}");
    }
}

#[test]
fn merging_replaces_by_id_and_appends_new_entries() {
    use switchboard_faq::KbChanges;
    let entry = |id: &str, answer: &str| switchboard_faq::KbEntry {
        id: id.into(),
        question: format!("question {id}"),
        answer: answer.into(),
        ..Default::default()
    };
    let old = KnowledgeBase::new(vec![entry("a", "1"), entry("b", "2"), entry("c", "3")]).unwrap();
    let mut merged = old.clone();
    merged.merge(KnowledgeBase::new(vec![entry("b", "two"), entry("d", "4")]).unwrap());
    let ids: Vec<&str> = merged.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(merged.entries[1].answer, "two");
    let changes = KbChanges::between(&old, &merged);
    assert_eq!(
        changes.to_string(),
        "1 added (d), 1 changed (b), 0 removed, 2 unchanged"
    );
    let replaced = KnowledgeBase::new(vec![entry("d", "4")]).unwrap();
    assert_eq!(
        KbChanges::between(&old, &replaced).to_string(),
        "1 added (d), 0 changed, 3 removed (a, b, c), 0 unchanged"
    );
}

#[test]
fn answers_in_six_languages_with_the_default_for_the_others() {
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"hours\",\"question\":\"Opening hours?\",\"answer\":\"Nine to five.\",\
          \"answers\":{\"zh\":\"九点到五点。\",\"ja\":\"9時から5時です。\",\"fr\":\"De 9 h à 17 h.\"}}\n",
    )
    .unwrap();
    let hours = &kb.entries[0];
    assert_eq!(kb.answer_for(hours, Language::Ja), "9時から5時です。");
    assert_eq!(kb.answer_for(hours, Language::Fr), "De 9 h à 17 h.");
    // no Spanish or German answer: the default one
    assert_eq!(kb.answer_for(hours, Language::Es), "Nine to five.");
    assert_eq!(kb.answer_for(hours, Language::De), "Nine to five.");
}
