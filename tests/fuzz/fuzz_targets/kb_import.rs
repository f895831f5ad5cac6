//! The knowledge-base import: the first byte picks JSON Lines or YAML. What
//! imports exports to JSON Lines that imports to the same entries, and
//! compiles into a matcher that ranks its own questions. Nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_faq::{KbChanges, KnowledgeBase, Matcher};

fuzz_target!(|data: &[u8]| {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let imported = match format % 3 {
        0 => KnowledgeBase::from_jsonl(text),
        1 => KnowledgeBase::from_jsonl_answerable(text),
        _ => KnowledgeBase::from_yaml(text),
    };
    let Ok(kb) = imported else {
        return;
    };
    let again = KnowledgeBase::from_jsonl(&kb.to_jsonl()).expect("exported JSON Lines imports");
    assert_eq!(again, kb);
    let _ = KbChanges::between(&switchboard_faq::sample_kb(), &kb).to_string();
    let matcher = Matcher::build(&kb);
    if let Some(entry) = kb.entries.first() {
        let _ = matcher.rank(&entry.question, 3);
    }
});
