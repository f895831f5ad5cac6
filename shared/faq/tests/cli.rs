use switchboard_faq::cli::{EvalArgs, RankArgs, run_eval, run_rank};

fn fixture(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("switchboard-faq-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kb.yaml"), switchboard_faq::SAMPLE_KB_YAML).unwrap();
    let queries = [
        r#"{"id": "q1", "query": "when do you open on saturday", "gold": ["opening-hours"]}"#,
        r#"{"id": "q2", "query": "退款什么时候到账", "gold": ["refund"]}"#,
        r#"{"id": "q3", "query": "can i pay with alipay", "gold": ["payment-methods"]}"#,
        r#"{"id": "q4", "query": "what is the capital of france", "gold": []}"#,
    ];
    std::fs::write(dir.join("dev.jsonl"), queries.join("\n")).unwrap();
    dir
}

#[test]
fn eval_prints_metrics_and_a_json_line() {
    let dir = fixture("eval");
    let args = EvalArgs {
        kb: dir.join("kb.yaml"),
        queries: dir.join("dev.jsonl"),
        tune: None,
        index_answers: false,
        semantic: false,
    };
    let mut out = Vec::new();
    run_eval(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("P@1       1.000"), "{text}");
    assert!(text.contains("oos_AUROC 1.000"), "{text}");
    let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(json["p_at_1"], 1.0);
    assert_eq!(json["oos_recall"], 1.0);
    assert_eq!(json["out_of_scope"], 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rank_prints_one_line_per_query() {
    let dir = fixture("rank");
    let args = RankArgs {
        kb: dir.join("kb.yaml"),
        queries: dir.join("dev.jsonl"),
        top: 3,
        index_answers: false,
        semantic: false,
    };
    let mut out = Vec::new();
    run_rank(&args, &mut out).unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "q1");
    assert_eq!(lines[0]["ranking"][0], "opening-hours");
    assert!(lines[0]["ranking"].as_array().unwrap().len() <= 3);
    assert_eq!(lines[1]["ranking"][0], "refund");
    assert_eq!(lines[0]["answer"], true);
    assert_eq!(lines[3]["answer"], false);
    std::fs::remove_dir_all(dir).unwrap();
}
