//! The knowledge base: entries, their import from JSON Lines and YAML, and export.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use switchboard_domain::Language;

use crate::FaqError;

/// One FAQ entry: the canonical question, its answer (optionally per language)
/// and the other ways customers ask it. A field it does not know is an error (a
/// misspelt "paraphrase" would lose them); a null is a missing value (YAML would
/// otherwise read `answer: ~` as the text "~").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbEntry {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub question: String,
    /// The default answer (used when there is none in the customer's language).
    #[serde(default, deserialize_with = "null_as_default")]
    pub answer: String,
    /// Answers per language code ("en", "zh", "ja", "es", "fr", "de").
    #[serde(
        default,
        deserialize_with = "answers_without_nulls",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub answers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(
        default,
        deserialize_with = "paraphrases_without_nulls",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub paraphrases: Vec<String>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn answers_without_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let answers: BTreeMap<String, Option<String>> = null_as_default(deserializer)?;
    Ok(answers
        .into_iter()
        .filter_map(|(code, answer)| Some((code, answer?)))
        .collect())
}

fn paraphrases_without_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let paraphrases: Vec<Option<String>> = null_as_default(deserializer)?;
    Ok(paraphrases.into_iter().flatten().collect())
}

impl KbEntry {
    /// The question followed by the paraphrases: every phrasing the matcher learns from.
    pub fn phrasings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.paraphrases.iter().map(String::as_str))
    }
}

/// An ordered list of entries. Order matters: ties in ranking go to the earlier entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KnowledgeBase {
    pub entries: Vec<KbEntry>,
}

/// The YAML file is either a list of entries or a mapping with an `entries` list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlDocument {
    entries: Vec<KbEntry>,
}

impl KnowledgeBase {
    pub fn new(entries: Vec<KbEntry>) -> Result<Self, FaqError> {
        let mut kb = KnowledgeBase { entries };
        kb.validate(|i| format!("entry {}", i + 1), Require::Phrasings)?;
        Ok(kb)
    }

    /// Parse the JSON Lines format: one entry per line,
    /// `{"id", "question", "answer"?, "answers"?: {"en", "zh"}, "lang"?, "paraphrases"?}`.
    /// Blank lines are skipped. Errors name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<Self, FaqError> {
        Self::parse_jsonl(text, Require::Phrasings)
    }

    fn parse_jsonl(text: &str, require: Require) -> Result<Self, FaqError> {
        let text = without_bom(text);
        let mut entries = Vec::new();
        let mut lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let entry: KbEntry = serde_json::from_str(trimmed).map_err(|err| FaqError::Parse {
                location: format!("line {line_no}"),
                message: strip_serde_location(&err.to_string()),
            })?;
            entries.push(entry);
            lines.push(line_no);
        }
        let mut kb = KnowledgeBase { entries };
        kb.validate(|i| format!("line {}", lines[i]), require)?;
        Ok(kb)
    }

    /// Parse the YAML format (see `sample/kb.yaml`): a list of entries, each with
    /// `id`, `question`, `answer` and/or `answers: {en: .., zh: ..}`, and `paraphrases`.
    pub fn from_yaml(text: &str) -> Result<Self, FaqError> {
        Self::parse_yaml(text, Require::Phrasings)
    }

    fn parse_yaml(text: &str, require: Require) -> Result<Self, FaqError> {
        let text = without_bom(text);
        let yaml_error = |err: serde_norway::Error| {
            let location = match err.location() {
                Some(at) => format!("line {}", at.line()),
                None => "yaml".to_string(),
            };
            FaqError::Parse {
                location,
                message: strip_serde_location(&err.to_string()),
            }
        };
        // Look at the shape first so that errors inside entries keep their line.
        let shape: serde_norway::Value = serde_norway::from_str(text).map_err(yaml_error)?;
        let entries = match shape {
            serde_norway::Value::Mapping(_) => {
                serde_norway::from_str::<YamlDocument>(text)
                    .map_err(yaml_error)?
                    .entries
            }
            serde_norway::Value::Null => Vec::new(),
            _ => serde_norway::from_str::<Vec<KbEntry>>(text).map_err(yaml_error)?,
        };
        let mut kb = KnowledgeBase { entries };
        let ids: Vec<String> = kb.entries.iter().map(|e| e.id.clone()).collect();
        kb.validate(
            |i| {
                if ids[i].is_empty() {
                    format!("entry {}", i + 1)
                } else {
                    format!("entry {} ({})", i + 1, ids[i])
                }
            },
            require,
        )?;
        Ok(kb)
    }

    /// Load a file, choosing the parser by extension: `.jsonl`/`.json` or `.yaml`/`.yml`.
    pub fn load(path: &Path) -> Result<Self, FaqError> {
        Self::load_with(path, Require::Phrasings)
    }

    /// Load a knowledge base the bot is to answer from (`kb import`, `serve`):
    /// besides what [`KnowledgeBase::load`] checks, every entry needs an answer
    /// (else the bot would send an empty message), and the file at least one entry
    /// (an empty file is a mistake, not a wish to delete every answer).
    pub fn load_answerable(path: &Path) -> Result<Self, FaqError> {
        let kb = Self::load_with(path, Require::Answers)?;
        if kb.is_empty() {
            return Err(FaqError::Parse {
                location: path.display().to_string(),
                message: "no entries (an empty file does not replace the knowledge base)".into(),
            });
        }
        Ok(kb)
    }

    /// Like [`KnowledgeBase::load_answerable`], for JSON Lines text.
    pub fn from_jsonl_answerable(text: &str) -> Result<Self, FaqError> {
        Self::parse_jsonl(text, Require::Answers)
    }

    fn load_with(path: &Path, require: Require) -> Result<Self, FaqError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let read = || {
            std::fs::read_to_string(path).map_err(|source| FaqError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        match extension.as_str() {
            "jsonl" | "json" => Self::parse_jsonl(&read()?, require),
            "yaml" | "yml" => Self::parse_yaml(&read()?, require),
            other => Err(FaqError::UnknownFormat(other.to_string())),
        }
    }

    /// The JSON Lines form, one entry per line (the format `from_jsonl` reads).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            // Serialising a struct of strings cannot fail.
            out.push_str(&serde_json::to_string(entry).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// The answer in `lang` when the entry has one, else its default answer.
    pub fn answer_for<'a>(&self, entry: &'a KbEntry, lang: Language) -> &'a str {
        if let Some(answer) = entry
            .answers
            .get(lang.code())
            .filter(|a| !a.trim().is_empty())
        {
            return answer;
        }
        &entry.answer
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&KbEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add or replace entries by id (`kb import --merge`): an entry of `other`
    /// replaces the entry with its id in place, new ids are appended in order.
    pub fn merge(&mut self, other: KnowledgeBase) {
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.id == entry.id) {
                Some(existing) => *existing = entry,
                None => self.entries.push(entry),
            }
        }
    }

    /// Check ids and questions (and answers, if required), and fill the default
    /// answer from the per-language answers when it is missing.
    fn validate(
        &mut self,
        locate: impl Fn(usize) -> String,
        require: Require,
    ) -> Result<(), FaqError> {
        let mut seen = HashSet::new();
        for (i, entry) in self.entries.iter_mut().enumerate() {
            let fail = |message: String| FaqError::Parse {
                location: locate(i),
                message,
            };
            entry.id = entry.id.trim().to_string();
            if entry.id.is_empty() {
                return Err(fail("empty id".into()));
            }
            if entry.question.trim().is_empty() {
                return Err(fail("empty question".into()));
            }
            if !seen.insert(entry.id.clone()) {
                return Err(fail(format!("duplicate id {}", entry.id)));
            }
            for code in entry.answers.keys() {
                if Language::from_code(code).is_none() {
                    return Err(fail(format!(
                        "unknown answer language {code:?} (use en, zh, ja, es, fr or de)"
                    )));
                }
            }
            if entry.answer.trim().is_empty() && !entry.answers.is_empty() {
                let own = entry.lang.as_deref().and_then(|l| entry.answers.get(l));
                let fallback = own
                    .or_else(|| entry.answers.get("en"))
                    .or_else(|| entry.answers.values().next());
                entry.answer = fallback.cloned().unwrap_or_default();
            }
            entry.paraphrases.retain(|p| !p.trim().is_empty());
            if require == Require::Answers && entry.answer.trim().is_empty() {
                return Err(fail(format!(
                    "entry {} has no answer (give \"answer\" or \"answers\")",
                    entry.id
                )));
            }
        }
        Ok(())
    }
}

/// What an entry must have to be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Require {
    /// An id and a question: enough to match against (benchmark sets have no answers).
    Phrasings,
    /// Also an answer: the bot answers from it.
    Answers,
}

/// How one knowledge base differs from the one it replaces, by entry id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KbChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl KbChanges {
    pub fn between(old: &KnowledgeBase, new: &KnowledgeBase) -> KbChanges {
        let mut changes = KbChanges::default();
        let old_by_id: std::collections::HashMap<&str, &KbEntry> =
            old.entries.iter().map(|e| (e.id.as_str(), e)).collect();
        let new_ids: HashSet<&str> = new.entries.iter().map(|e| e.id.as_str()).collect();
        for entry in &new.entries {
            match old_by_id.get(entry.id.as_str()) {
                None => changes.added.push(entry.id.clone()),
                Some(before) if *before == entry => changes.unchanged += 1,
                Some(_) => changes.changed.push(entry.id.clone()),
            }
        }
        changes.removed = old
            .entries
            .iter()
            .filter(|e| !new_ids.contains(e.id.as_str()))
            .map(|e| e.id.clone())
            .collect();
        changes
    }
}

impl std::fmt::Display for KbChanges {
    /// "2 added (a, b), 1 changed (c), 0 removed, 5 unchanged"; at most ten ids a list.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                return String::new();
            }
            let mut shown = ids.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
            if ids.len() > 10 {
                shown.push_str(&format!(", and {} more", ids.len() - 10));
            }
            format!(" ({shown})")
        };
        write!(
            f,
            "{} added{}, {} changed{}, {} removed{}, {} unchanged",
            self.added.len(),
            list(&self.added),
            self.changed.len(),
            list(&self.changed),
            self.removed.len(),
            list(&self.removed),
            self.unchanged
        )
    }
}

/// Some editors start UTF-8 files with a byte-order mark; the parsers would
/// take it for content.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// serde's messages end in " at line L column C", which is wrong for JSON Lines
/// (always line 1) and redundant for YAML.
fn strip_serde_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}
