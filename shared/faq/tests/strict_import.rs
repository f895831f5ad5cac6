//! What an import refuses rather than guesses: YAML nulls, unknown fields; and
//! the byte-order mark some editors write.

use switchboard_faq::KnowledgeBase;

fn answerable_yaml(text: &str) -> Result<KnowledgeBase, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.yaml");
    std::fs::write(&path, text).unwrap();
    KnowledgeBase::load_answerable(&path).map_err(|e| e.to_string())
}

#[test]
fn a_yaml_null_is_a_missing_value_not_the_text_null() {
    for answer in ["~", "null", "Null", "NULL", ""] {
        let text = format!("- id: a\n  question: q\n  answer: {answer}\n");
        assert_eq!(
            answerable_yaml(&text).unwrap_err(),
            "entry 1 (a): entry a has no answer (give \"answer\" or \"answers\")",
            "answer: {answer}"
        );
    }
    let per_language = "- id: a\n  question: q\n  answers: {en: ~}\n";
    assert!(
        answerable_yaml(per_language)
            .unwrap_err()
            .contains("entry a has no answer"),
    );
    let question = "- id: a\n  question: ~\n  answer: x\n";
    assert_eq!(
        answerable_yaml(question).unwrap_err(),
        "entry 1 (a): empty question"
    );
    let id = "- id: null\n  question: q\n  answer: x\n";
    assert_eq!(answerable_yaml(id).unwrap_err(), "entry 1: empty id");

    // A null among the paraphrases or as the list is no phrasing; quoted, "~" is text.
    let kb = KnowledgeBase::from_yaml(
        "- id: a\n  question: q\n  answer: '~'\n  paraphrases: [~, p]\n- id: b\n  question: r\n  paraphrases: ~\n",
    )
    .unwrap();
    assert_eq!(kb.entries[0].answer, "~");
    assert_eq!(kb.entries[0].paraphrases, ["p"]);
    assert!(kb.entries[1].paraphrases.is_empty());

    // JSON's null is the same as a missing field.
    let json = "{\"id\":\"a\",\"question\":\"q\",\"answer\":null,\"answers\":{\"en\":null}}\n";
    assert_eq!(
        KnowledgeBase::from_jsonl_answerable(json)
            .unwrap_err()
            .to_string(),
        "line 1: entry a has no answer (give \"answer\" or \"answers\")"
    );
}

#[test]
fn an_unknown_field_is_refused_naming_it_and_the_line() {
    let jsonl = "{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\"}\n\
                 {\"id\":\"b\",\"question\":\"q\",\"answer\":\"x\",\"paraphrase\":[\"p\"]}\n";
    let err = KnowledgeBase::from_jsonl(jsonl).unwrap_err().to_string();
    assert!(
        err.starts_with("line 2: unknown field `paraphrase`"),
        "{err}"
    );

    let yaml = "- id: a\n  question: q\n  answer: x\n- id: b\n  question: q\n  bogus: 1\n";
    let err = KnowledgeBase::from_yaml(yaml).unwrap_err().to_string();
    assert!(err.starts_with("line "), "{err}");
    assert!(err.contains("unknown field `bogus`"), "{err}");

    let mapping = "entries:\n  - id: a\n    question: q\n    anwser: x\n";
    let err = KnowledgeBase::from_yaml(mapping).unwrap_err().to_string();
    assert!(err.contains("unknown field `anwser`"), "{err}");
}

#[test]
fn every_field_a_real_file_uses_still_loads_and_exports_round_trip() {
    let jsonl = "{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\",\"answers\":{\"zh\":\"y\"},\"lang\":\"en\",\"paraphrases\":[\"p\"]}\n";
    let kb = KnowledgeBase::from_jsonl(jsonl).unwrap();
    assert_eq!(KnowledgeBase::from_jsonl(&kb.to_jsonl()).unwrap(), kb);
    let sample = switchboard_faq::sample_kb();
    assert_eq!(
        KnowledgeBase::from_jsonl(&sample.to_jsonl()).unwrap(),
        sample
    );
}

#[test]
fn a_leading_byte_order_mark_is_ignored() {
    let jsonl = "\u{feff}{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\"}\n";
    assert_eq!(KnowledgeBase::from_jsonl(jsonl).unwrap().len(), 1);
    let yaml = "\u{feff}- id: a\n  question: q\n  answer: x\n";
    assert_eq!(KnowledgeBase::from_yaml(yaml).unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.jsonl");
    std::fs::write(&path, jsonl).unwrap();
    assert_eq!(KnowledgeBase::load_answerable(&path).unwrap().len(), 1);
}
