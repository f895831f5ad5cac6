//! What the README promises about configuration and the agents' API is what the
//! code does.

use std::path::Path;

use switchboard_channels::ChannelDeps;
use switchboard_channels::registry::Registry;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

#[test]
fn the_local_configuration_example_is_one_serve_accepts() {
    let readme = readme();
    let section = &readme[readme.find("## Configuration (local)").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, example).unwrap();
    let config = switchboard_app::Config::from_file(&path).unwrap();
    assert!(config.channels.0.contains_key("telegram"));
    // The channels `serve` builds from it, checking every setting.
    if let Err(error) = Registry::from_settings(&config.channels.0, &ChannelDeps::offline()) {
        panic!("{}", switchboard_domain::error_chain(&error));
    }
}

#[test]
fn the_reply_route_states_the_reply_limit() {
    let limit = switchboard_pipeline::desk::MAX_REPLY_CHARS;
    let written = format!("{},{:03}", limit / 1000, limit % 1000);
    let readme = readme();
    let row = readme
        .lines()
        .find(|line| line.starts_with("| `POST /api/conversations/{key}/reply`"))
        .unwrap();
    assert!(
        row.contains(&format!("at most {written} characters")),
        "{row}"
    );
}
