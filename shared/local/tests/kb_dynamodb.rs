//! `switchboard kb import --dynamodb-table` against DynamoDB Local (started by
//! `tests/services/aws.sh start`). Built only with `--features aws`.
#![cfg(feature = "aws")]

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn imports_a_knowledge_base_into_the_stacks_table() {
    let endpoint = switchboard_e2e::aws_test_endpoint("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT");
    let clients = switchboard_aws::Clients::local(&endpoint, &endpoint).await;
    let table = format!("kbimport{}-kb", std::process::id());
    switchboard_aws::setup::create_table(
        &clients.dynamodb,
        &table,
        &switchboard_aws::setup::kb_table(),
    )
    .await
    .unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../faq/sample/kb.yaml");

    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["kb", "import"])
        .arg(&sample)
        .args(["--dynamodb-table", &table])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("imported 12 entries"), "{stdout}");

    // What the conversation worker loads at its next cold start.
    let stored = switchboard_aws::DynamoKnowledgeBase::new(clients.dynamodb.clone(), table.clone())
        .load_jsonl()
        .await
        .unwrap()
        .expect("a knowledge base was put");
    let kb = switchboard_faq::KnowledgeBase::from_jsonl(&stored).unwrap();
    assert_eq!(kb.entries.len(), 12);
    assert_eq!(kb.entries[0].id, "opening-hours");

    // --merge adds to what the table holds; an entry without an answer is refused
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kbimport{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let import = |file: &str, text: &str, merge: bool| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command.args(["kb", "import"]).arg(&path);
        if merge {
            command.arg("--merge");
        }
        command
            .args(["--dynamodb-table", &table])
            .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .unwrap()
    };
    let output = import(
        "more.jsonl",
        "{\"id\":\"gift-cards\",\"question\":\"Do you sell gift cards?\",\"answer\":\"Yes.\"}\n",
        true,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("merged 13 entries") && stdout.contains("1 added (gift-cards)"),
        "{stdout}"
    );
    let output = import("bad.jsonl", "{\"id\":\"x\",\"question\":\"Q\"}\n", true);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1: entry x has no answer"));
    let stored = switchboard_aws::DynamoKnowledgeBase::new(clients.dynamodb.clone(), table.clone())
        .load_jsonl()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        switchboard_faq::KnowledgeBase::from_jsonl(&stored)
            .unwrap()
            .len(),
        13
    );
}
