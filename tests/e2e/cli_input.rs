//! The command line with input it must refuse, and output nobody reads.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use switchboard_e2e::*;

/// `switchboard ARGS` in `dir`, with no configuration but the defaults.
fn switchboard(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(switchboard_bin());
    command
        .current_dir(dir)
        .env_remove("SWITCHBOARD_CONFIG")
        .args(args);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const KB: &str = "{\"id\":\"hours\",\"question\":\"What are your opening hours?\",\"answer\":\"Nine to five.\"}\n";
const KB_WITHOUT_ANSWERS: &str =
    "{\"id\":\"hours\",\"question\":\"What are your opening hours?\",\"answer\":\"\"}\n";

#[test]
fn faq_ask_refuses_a_knowledge_base_the_bot_could_not_answer_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kb.jsonl"), KB_WITHOUT_ANSWERS).unwrap();
    std::fs::write(
        dir.path().join("queries.jsonl"),
        "{\"id\":\"q1\",\"query\":\"opening hours\"}\n",
    )
    .unwrap();
    let ask = |kb: &str| {
        switchboard(
            dir.path(),
            &["faq", "ask", "When are you open?", "--kb", kb],
        )
        .output()
        .unwrap()
    };

    let out = ask("kb.jsonl");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("line 1: entry hours has no answer"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // Ranking is for benchmarks, whose sets have no answers.
    let out = switchboard(
        dir.path(),
        &[
            "faq",
            "rank",
            "--kb",
            "kb.jsonl",
            "--queries",
            "queries.jsonl",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"hours\""),
        "{}",
        text(&out.stdout)
    );

    std::fs::write(dir.path().join("kb.jsonl"), KB).unwrap();
    let out = ask("kb.jsonl");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Nine to five."),
        "{}",
        text(&out.stdout)
    );
}

/// The command with its standard output a pipe nobody reads any more (`| head -0`).
fn with_closed_stdout(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_reader_that_went_away_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kb.jsonl"), KB).unwrap();
    let commands: [&[&str]; 3] = [
        &["faq", "ask", "When are you open?", "--kb", "kb.jsonl"],
        &["token", "create", "--name", "ann", "--scope", "agent"],
        &["kb", "export"],
    ];
    for args in commands {
        let out = with_closed_stdout(switchboard(dir.path(), args));
        assert!(
            matches!(out.status.code(), Some(0 | 141)),
            "{args:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn numbers_out_of_range_are_refused_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let refused: [&[&str]; 7] = [
        &["report", "--days", "0"],
        &["report", "--days", "100000000"],
        &["experiments", "report", "--days", "0"],
        &["kb", "gaps", "--days", "3651"],
        &["kb", "suggest", "--days", "0"],
        &[
            "faq",
            "rank",
            "--kb",
            "kb.jsonl",
            "--queries",
            "q.jsonl",
            "--top",
            "0",
        ],
        &["bench", "pipeline", "--messages", "0"],
    ];
    for args in refused {
        let out = switchboard(dir.path(), args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let flag = args[args.len() - 2];
        assert!(
            stderr.contains("invalid value") && stderr.contains(flag),
            "{args:?}: {stderr}"
        );
    }
}
