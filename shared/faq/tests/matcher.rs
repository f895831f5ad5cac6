use switchboard_domain::Language;
use switchboard_faq::{KnowledgeBase, Matcher, MatcherOptions, sample_kb};

fn top_id(matcher: &Matcher, query: &str) -> String {
    matcher
        .rank(query, 5)
        .top()
        .map(|s| s.id.clone())
        .unwrap_or_default()
}

fn sample() -> Matcher {
    Matcher::build(&sample_kb())
}

#[test]
fn sample_kb_loads_with_both_languages() {
    let kb = sample_kb();
    assert_eq!(kb.len(), 12);
    for entry in &kb.entries {
        assert!(entry.answers.contains_key("en"), "{} lacks en", entry.id);
        assert!(entry.answers.contains_key("zh"), "{} lacks zh", entry.id);
        assert!(
            entry.paraphrases.len() >= 6,
            "{} has few paraphrases",
            entry.id
        );
    }
    let refund = kb.get("refund").unwrap();
    assert!(kb.answer_for(refund, Language::Zh).contains("退款"));
    assert!(kb.answer_for(refund, Language::En).contains("refund"));
}

#[test]
fn exact_question_is_top_with_high_confidence() {
    let matcher = sample();
    let ranking = matcher.rank("How do I reset my password?", 3);
    assert_eq!(ranking.candidates[0].id, "reset-password");
    assert!(
        ranking.confidence >= 0.7,
        "confidence {}",
        ranking.confidence
    );
    assert_eq!(ranking.language, Language::En);
}

#[test]
fn paraphrase_and_reworded_questions_match() {
    let matcher = sample();
    assert_eq!(
        top_id(&matcher, "when do you open on saturday"),
        "opening-hours"
    );
    assert_eq!(
        top_id(&matcher, "can i pay using paypal"),
        "payment-methods"
    );
    assert_eq!(
        top_id(&matcher, "I'd like to cancel the order I placed"),
        "cancel-order"
    );
    assert_eq!(top_id(&matcher, "what does shipping cost"), "delivery-fee");
}

#[test]
fn typos_still_match() {
    let matcher = sample();
    assert_eq!(
        top_id(&matcher, "how do i reset my pasword"),
        "reset-password"
    );
    assert_eq!(top_id(&matcher, "when will i get my refnud"), "refund");
}

#[test]
fn chinese_without_spaces_matches() {
    let matcher = sample();
    let ranking = matcher.rank("我忘记密码了登录不上", 3);
    assert_eq!(ranking.candidates[0].id, "reset-password");
    assert_eq!(ranking.language, Language::Zh);
    assert_eq!(top_id(&matcher, "退款什么时候到账"), "refund");
    assert_eq!(top_id(&matcher, "支持支付宝吗"), "payment-methods");
}

#[test]
fn mixed_language_matches() {
    let matcher = sample();
    let ranking = matcher.rank("请问可以用PayPal付款吗", 3);
    assert_eq!(ranking.candidates[0].id, "payment-methods");
    assert_eq!(ranking.language, Language::Zh);
    assert_eq!(
        top_id(&matcher, "tracking number 在哪里查"),
        "order-tracking"
    );
}

#[test]
fn out_of_scope_has_low_confidence() {
    let matcher = sample();
    for query in [
        "what is the capital of france",
        "明天天气怎么样",
        "tell me a joke about penguins",
    ] {
        let ranking = matcher.rank(query, 3);
        assert!(ranking.confidence < 0.45, "{query}: {}", ranking.confidence);
    }
    let empty = matcher.rank("", 3);
    assert!(empty.confidence < 0.1, "{}", empty.confidence);
}

#[test]
fn every_query_gets_a_ranking() {
    // a Latin-script message on a Chinese knowledge base shares no feature with it
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"a\",\"question\":\"怎么退款\",\"answer\":\"x\"}\n\
         {\"id\":\"b\",\"question\":\"什么时候发货\",\"answer\":\"y\"}\n\
         {\"id\":\"c\",\"question\":\"可以开发票吗\",\"answer\":\"z\"}\n",
    )
    .unwrap();
    let matcher = Matcher::build(&kb);
    for query in ["zaim", "?", "", "退"] {
        let ranking = matcher.rank(query, 10);
        let mut ids: Vec<&str> = ranking.candidates.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "b", "c"], "{query:?}");
    }
    let unknown = matcher.rank("zaim", 2);
    assert_eq!(unknown.candidates.len(), 2);
    assert!(unknown.confidence < 0.45, "{}", unknown.confidence);
}

#[test]
fn confidence_is_a_probability_everywhere() {
    let matcher = sample();
    for query in [
        "refund",
        "password password password",
        "?",
        "退",
        "a b c d e f g",
        "how long",
    ] {
        let ranking = matcher.rank(query, 10);
        assert!((0.0..=1.0).contains(&ranking.confidence), "{query}");
        for candidate in &ranking.candidates {
            assert!((0.0..=1.0).contains(&candidate.confidence), "{query}");
            assert!(candidate.confidence <= ranking.confidence + 1e-6);
        }
    }
}

#[test]
fn ranking_is_deterministic() {
    let kb = sample_kb();
    let a = Matcher::build(&kb);
    let b = Matcher::build(&kb);
    for query in [
        "where is my parcel",
        "保修多久",
        "password",
        "address change please",
    ] {
        assert_eq!(a.rank(query, 12), b.rank(query, 12));
        assert_eq!(a.rank(query, 12), a.rank(query, 12));
    }
}

#[test]
fn ties_go_to_the_earlier_entry() {
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"a\",\"question\":\"gift cards\",\"answer\":\"x\"}\n\
         {\"id\":\"b\",\"question\":\"gift cards\",\"answer\":\"y\"}\n",
    )
    .unwrap();
    let ranking = Matcher::build(&kb).rank("gift cards", 2);
    let ids: Vec<&str> = ranking.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn answers_can_be_indexed() {
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"a\",\"question\":\"Strike through text\",\"answer\":\"Wrap the words in double tildes.\"}\n\
         {\"id\":\"b\",\"question\":\"Bold text\",\"answer\":\"Wrap the words in double asterisks.\"}\n",
    )
    .unwrap();
    let plain = Matcher::build(&kb);
    assert!(plain.rank("tildes", 2).confidence < 0.45);
    let with_answers = Matcher::build_with(
        &kb,
        MatcherOptions {
            index_answers: true,
            semantic: false,
        },
    );
    assert_eq!(with_answers.rank("tildes", 2).candidates[0].id, "a");
}

#[test]
fn matcher_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Matcher>();
}

#[test]
fn sample_kb_answers_and_hands_over() {
    let matcher = sample();
    for (query, expected) in [
        ("What are your opening hours?", "opening-hours"),
        ("你们几点开门？", "opening-hours"),
        ("How long does shipping take?", "shipping-time"),
        ("How do I return an item?", "returns"),
        (
            "Hello, how do I return an item I bought last week?",
            "returns",
        ),
    ] {
        let ranking = matcher.rank(query, 3);
        assert_eq!(ranking.candidates[0].id, expected, "{query}");
        // the product's end-to-end tests expect these answered outright at 0.70
        let answer = switchboard_faq::bands(ranking.language).answer.max(0.70);
        assert!(
            ranking.confidence >= answer,
            "{query}: {}",
            ranking.confidence
        );
    }
    for query in [
        "Do you sell replacement parts for the 1987 model?",
        "My parrot ate the warranty card of the blender, what now",
    ] {
        let ranking = matcher.rank(query, 3);
        let offer = switchboard_faq::bands(ranking.language).offer.min(0.45);
        assert!(
            ranking.confidence < offer,
            "{query}: {}",
            ranking.confidence
        );
    }
}

#[test]
fn answers_to_the_same_question_share_the_model_and_split_on_answer_text() {
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"a1\",\"question\":\"How do I strike through text?\",\"answer\":\"Wrap the words in double tildes.\"}\n\
         {\"id\":\"a2\",\"question\":\"How do I strike through text?\",\"answer\":\"Use the del element of HTML.\"}\n\
         {\"id\":\"b\",\"question\":\"How do I make text bold?\",\"answer\":\"Wrap the words in double asterisks.\"}\n",
    )
    .unwrap();
    let options = MatcherOptions {
        index_answers: true,
        semantic: false,
    };
    let matcher = Matcher::build_with(&kb, options);
    assert_eq!(
        top_id(&matcher, "strike through with the del element"),
        "a2"
    );
    assert_eq!(top_id(&matcher, "strike through text with tildes"), "a1");
    // without answer words the tie goes to the earlier entry
    assert_eq!(top_id(&matcher, "strike through text"), "a1");
    let loaded = Matcher::from_bytes(&matcher.to_bytes()).unwrap();
    assert_eq!(loaded, matcher);
    assert_eq!(
        loaded.rank("strike through", 3),
        matcher.rank("strike through", 3)
    );
}

#[test]
fn bands_are_ordered_for_every_language() {
    for language in [Language::En, Language::Zh] {
        let bands = switchboard_faq::bands(language);
        assert!(0.0 < bands.offer && bands.offer < bands.answer && bands.answer < 1.0);
        assert_eq!(switchboard_faq::shipped_threshold(language), bands.offer);
    }
}

#[cfg(feature = "embeddings")]
#[test]
fn meaning_ranks_a_paraphrase_that_shares_no_word() {
    let kb = KnowledgeBase::from_jsonl(
        "{\"id\":\"password\",\"question\":\"How do I change my password?\",\"answer\":\"x\"}\n\
         {\"id\":\"money\",\"question\":\"Can I get my money back?\",\"answer\":\"y\"}\n\
         {\"id\":\"parcel\",\"question\":\"Where is my parcel?\",\"answer\":\"z\"}\n",
    )
    .unwrap();
    let semantic = MatcherOptions {
        index_answers: false,
        semantic: true,
    };
    let matcher = Matcher::build_with(&kb, semantic);
    assert_eq!(matcher.rank("refund", 3).candidates[0].id, "money");
    let loaded = Matcher::from_bytes(&matcher.to_bytes()).unwrap();
    assert_eq!(loaded.rank("refund", 3), matcher.rank("refund", 3));
}
