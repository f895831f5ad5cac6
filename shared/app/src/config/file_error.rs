//! What is wrong with a config file, said for a person: the key as written
//! in the file (`server.bogus`), or the line and column of a syntax error.
//! Figment's own text puts its profile (`default.`) before the key and the
//! source after it, which reads as one garbled key.

/// A TOML syntax error: where, and what (not the line itself, which may
/// hold a secret).
pub(super) fn syntax(text: &str, error: &toml::de::Error) -> String {
    let at = error.span().map_or(0, |span| span.start);
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    format!(
        "line {line}, column {column}: {}",
        error.message().trim_end()
    )
}

/// Each problem figment found: the key, then what is wrong with it.
pub(super) fn invalid(error: figment::Error) -> String {
    let problem = |error: figment::Error| match error.path.is_empty() {
        true => error.kind.to_string(),
        false => format!("key \"{}\": {}", error.path.join("."), error.kind),
    };
    error
        .into_iter()
        .map(problem)
        .collect::<Vec<_>>()
        .join("; ")
}
