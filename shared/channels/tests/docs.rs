//! The README's channel tables and the template's webhook routes and outputs
//! follow the registry. The tables are generated: run the test with
//! `SWITCHBOARD_BLESS=1` to rewrite them after changing a channel.

use switchboard_channels::kit::{ChannelSpec, Function, Need};
use switchboard_channels::registry::CHANNELS;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn function(spec: &ChannelSpec) -> &'static str {
    spec.function.binary()
}

/// The overview table of every channel.
fn channel_table() -> String {
    let mut table = String::from(
        "| channel | webhook | required settings | served by (AWS) |\n|---|---|---|---|\n",
    );
    for spec in CHANNELS {
        let settings: Vec<String> = spec
            .settings
            .iter()
            .filter(|s| matches!(s.need, Need::Verify | Need::Send(_)))
            .map(|s| format!("`{}`", s.name))
            .collect();
        table.push_str(&format!(
            "| {} | `/webhooks/{}` | {} | `{}` |\n",
            spec.title,
            spec.name,
            settings.join(", "),
            function(spec)
        ));
    }
    table
}

/// One channel's settings table.
fn settings_table(spec: &ChannelSpec) -> String {
    let mut table = String::from("| setting | |\n|---|---|\n");
    for setting in spec.settings {
        let need = match setting.need {
            Need::Optional | Need::DevSigning => "optional; ",
            Need::Verify | Need::Send(_) => "",
        };
        table.push_str(&format!("| `{}` | {need}{} |\n", setting.name, setting.doc));
    }
    table
}

/// Replaces (when blessing) or checks the text between two markers.
fn section(text: &mut String, start: &str, end: &str, expected: &str, failures: &mut Vec<String>) {
    let Some(from) = text.find(start) else {
        failures.push(format!("README.md lacks the marker {start}"));
        return;
    };
    let from = from + start.len();
    let to = from + text[from..].find(end).expect("an end marker");
    let expected = format!("\n{expected}");
    if text[from..to] != expected {
        failures.push(format!(
            "README.md between {start} and {end} should read:\n{expected}"
        ));
        text.replace_range(from..to, &expected);
    }
}

#[test]
fn the_readme_channel_tables_follow_the_registry() {
    let path = root().join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let mut failures = Vec::new();
    section(
        &mut readme,
        "<!-- channels -->",
        "<!-- /channels -->",
        &channel_table(),
        &mut failures,
    );
    for spec in CHANNELS {
        let start = format!("<!-- settings: {} -->", spec.name);
        section(
            &mut readme,
            &start,
            "<!-- /settings -->",
            &settings_table(spec),
            &mut failures,
        );
    }
    if std::env::var_os("SWITCHBOARD_BLESS").is_some() {
        std::fs::write(&path, readme).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{}\n(SWITCHBOARD_BLESS=1 rewrites them)",
        failures.join("\n")
    );
}

/// The lines of a top-level resource, `  Name:` up to the next one.
fn resource(template: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = template.lines().skip_while(|line| *line != header);
    lines
        .next()
        .unwrap_or_else(|| panic!("template.yaml has no {name}"));
    let inside = |line: &&str| {
        line.is_empty() || line.starts_with("   ") || line.trim_start().starts_with('#')
    };
    let body: Vec<&str> = lines.take_while(inside).collect();
    body.join("\n") + "\n"
}

#[test]
fn the_template_routes_and_outputs_every_channel() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    for spec in CHANNELS {
        let hosting = resource(&template, spec.function.resource());
        let route = format!("Path: /webhooks/{}\n", spec.name);
        let catch_all =
            spec.function == Function::IngressIm && hosting.contains("Path: /webhooks/{channel}\n");
        assert!(
            catch_all || hosting.contains(&route),
            "{} serves no /webhooks/{}",
            spec.function.resource(),
            spec.name
        );
        let output = format!("{}WebhookUrl:", pascal(spec.name));
        let value = format!("/webhooks/{}\"", spec.name);
        let outputs = &template[template.find("\nOutputs:").unwrap()..];
        let at = outputs
            .find(&output)
            .unwrap_or_else(|| panic!("no output {output}"));
        assert!(
            outputs[at..]
                .lines()
                .take(3)
                .any(|line| line.ends_with(&value)),
            "{output}"
        );
    }
    // And no output for a channel that is not registered.
    for line in template
        .lines()
        .filter(|l| l.trim_end().ends_with("WebhookUrl:"))
    {
        let name = line
            .trim()
            .trim_end_matches("WebhookUrl:")
            .to_ascii_lowercase();
        assert!(
            CHANNELS.iter().any(|spec| spec.name == name),
            "output for unknown channel {name}"
        );
    }
}

fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect()
}
