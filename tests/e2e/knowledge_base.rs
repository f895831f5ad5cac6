//! `kb import` against a running server: validation, merge, and live reload.

use std::process::{Command, Output};
use std::time::Duration;

use switchboard_e2e::*;

fn kb(server: &Server, args: &[&str]) -> Output {
    Command::new(switchboard_bin())
        .arg("--config")
        .arg(server.config_path())
        .arg("kb")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn reply_to(server: &Server, update_id: i64, chat: i64, question: &str) -> String {
    let (status, _) = server
        .post_telegram(&telegram_update(update_id, chat, question))
        .await;
    assert_eq!(status, 200);
    let replies = eventually("telegram reply", Duration::from_secs(20), || {
        let replies = server.telegram_replies(chat);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    replies[0].body["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_are_checked_merged_and_answered_from_without_a_restart() {
    let server = Server::start(Options::default()).await;
    let dir = server.dir.path();

    // An entry without an answer: rejected, naming the line; nothing stored.
    let no_answer = dir.join("no_answer.jsonl");
    std::fs::write(
        &no_answer,
        "{\"id\":\"rocks\",\"question\":\"Do you sell moon rocks?\",\"answer\":\"Yes: lunar rocks ship from our crater depot.\"}\n\
         {\"id\":\"x\",\"question\":\"Q\"}\n",
    )
    .unwrap();
    let out = kb(&server, &["import", no_answer.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2: entry x has no answer"),
        "{}",
        text(&out.stderr)
    );
    // An empty file does not replace the knowledge base either.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = kb(&server, &["import", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no entries"),
        "{}",
        text(&out.stderr)
    );
    let exported = text(&kb(&server, &["export"]).stdout);
    assert!(
        exported.contains("\"id\":\"shipping-time\""),
        "sample still in use: {exported}"
    );
    assert!(!exported.contains("moon rocks"));

    // A valid import replaces the sample and says so.
    let rocks = dir.join("rocks.jsonl");
    std::fs::write(
        &rocks,
        "{\"id\":\"rocks\",\"question\":\"Do you sell moon rocks?\",\"answer\":\"Yes: lunar rocks ship from our crater depot.\",\"paraphrases\":[\"can I buy a moon rock\",\"lunar rock for sale\"]}\n",
    )
    .unwrap();
    let out = kb(&server, &["import", rocks.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("replaced the knowledge base: 1 entries now"),
        "{said}"
    );
    assert!(
        said.contains("1 added (rocks)")
            && said.contains("12 removed (opening-hours, shipping-time"),
        "{said}"
    );

    // The running server answers from it within seconds, without a restart.
    eventually("knowledge base reloaded", Duration::from_secs(20), || {
        server
            .log()
            .contains("knowledge base reloaded")
            .then_some(())
    })
    .await;
    let reply = reply_to(&server, 7001, 701, "Do you sell moon rocks?").await;
    assert!(reply.contains("crater depot"), "{reply}");

    // --merge keeps what the file does not mention, replaces by id, adds the rest.
    let more = dir.join("more.yaml");
    std::fs::write(
        &more,
        "- id: comets\n  question: Do you sell comet dust?\n  answer: Comet dust is sold out until the next pass.\n",
    )
    .unwrap();
    let out = kb(&server, &["import", "--merge", more.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("merged into the knowledge base: 2 entries now"),
        "{said}"
    );
    assert!(
        said.contains("1 added (comets), 0 changed, 0 removed, 1 unchanged"),
        "{said}"
    );
    let exported = text(&kb(&server, &["export"]).stdout);
    assert!(
        exported.contains("moon rocks") && exported.contains("comet dust"),
        "{exported}"
    );
    eventually("second reload", Duration::from_secs(20), || {
        (server.log().matches("knowledge base reloaded").count() >= 2).then_some(())
    })
    .await;
    let reply = reply_to(&server, 7002, 702, "Do you sell comet dust?").await;
    assert!(reply.contains("sold out until the next pass"), "{reply}");
}
