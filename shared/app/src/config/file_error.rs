//! What is wrong with the configuration, said for a person: the key as
//! written where it was written (`server.bogus` in a file,
//! `SWITCHBOARD_SERVER__BOGUS` in the environment, a key of the channel
//! secret), or the line and column of a file's syntax error; and what is
//! wrong with it, never its value (it may be a secret). Figment's own text
//! puts its profile (`default.`) before the key and the source after it,
//! which reads as one garbled key, and quotes the value.

use figment::error::{Actual, Kind};

/// The environment variables' prefix and the separator of their keys.
const PREFIX: &str = "SWITCHBOARD_";
const SEPARATOR: &str = "__";

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

/// Each problem in a config file: the key, then what is wrong with it.
pub(super) fn in_file(error: figment::Error) -> String {
    problems(error, |error| match error.path.is_empty() {
        true => None,
        false => Some(format!("key \"{}\"", error.path.join("."))),
    })
}

/// Each problem in the environment's configuration (and the channel secret
/// on top of it): the variable as it is set, or the secret's key.
pub(super) fn in_environment(error: figment::Error) -> String {
    problems(error, |error| {
        let mut path = error.path.clone();
        // A missing key is reported on the table that lacks it.
        if let Kind::MissingField(field) = &error.kind {
            path.push(field.to_string());
        }
        if path.is_empty() {
            return None;
        }
        let from_environment = error
            .metadata
            .as_ref()
            .is_none_or(|source| source.name.contains("environment variable"))
            // The comma list is read from its variable by hand.
            || path.join(".") == "routing.vip_customers";
        Some(match from_environment {
            true => variable(&path),
            false => format!("the channel secret's key \"{}\"", path.join(".")),
        })
    })
}

/// The variable that set `path`: the longest leading part of it that is set
/// (a variable may hold a whole table or list); else, where serde lost the
/// rest of the path (flattened tables), the variables set under it; else
/// the whole path as a variable.
fn variable(path: &[String]) -> String {
    let name = |keys: &[String]| {
        format!(
            "{PREFIX}{}",
            keys.iter()
                .map(|key| key.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(SEPARATOR)
        )
    };
    if let Some(set) = (1..=path.len())
        .rev()
        .map(|len| name(&path[..len]))
        .find(|name| std::env::var_os(name).is_some())
    {
        return set;
    }
    let under = format!("{}{SEPARATOR}", name(path));
    let mut set: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with(&under))
        .collect();
    set.sort();
    match set.len() {
        0 => name(path),
        1 => set.remove(0),
        _ => format!("one of {}", set.join(", ")),
    }
}

fn problems(error: figment::Error, key: impl Fn(&figment::Error) -> Option<String>) -> String {
    error
        .into_iter()
        .map(|error| match key(&error) {
            Some(key) => format!("{key}: {}", what(&error.kind)),
            None => what(&error.kind),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What is wrong, without the value: figment's wording where it quotes
/// only keys and expectations, the kind of value where it would quote one.
fn what(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: found {}, expected {expected}", sort(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {}, expected {expected}", sort(actual))
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of {}", expected.join(", "))
        }
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "number out of range".into(),
        Kind::Unsupported(actual) => format!("unsupported {}", sort(actual)),
        Kind::UnsupportedKey(actual, needed) => {
            format!("{} cannot be a key, need {needed}", sort(actual))
        }
        // These quote keys and expectations only.
        Kind::Message(_)
        | Kind::InvalidLength(..)
        | Kind::UnknownField(..)
        | Kind::MissingField(_)
        | Kind::DuplicateField(_) => kind.to_string(),
    }
}

fn sort(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "nothing",
        Actual::Option => "an option",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "a value",
    }
}
