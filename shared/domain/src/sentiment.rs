//! How negative a customer's message sounds, for English and Chinese, so that
//! clear anger goes to a person at once.
//!
//! A lexicon-and-rules scorer in the manner of VADER (Hutto & Gilbert, 2014): each
//! word or phrase has a valence on -4..+4; degree words ("very", "a bit", 很, 有点)
//! strengthen or soften it; a negator in front ("not", "never", 不, 没) flips and
//! shrinks it, less so through a degree word ("not very good", 不太好); after a
//! contrast ("but", 但是) the second clause counts more; exclamation marks, repeated
//! question marks, emoji and shouting in capitals push further in the direction the
//! words already point. The sum is squashed into [-1, 1].
//!
//! English and Chinese are scored in one pass, so a Chinese sentence with an English
//! swear word (or the other way round) counts both. Chinese text is segmented by
//! longest match against the Chinese lexicon, which also lists neutral words that
//! would otherwise be misread (你好 is not 好, 银行卡 has no 卡, 不好意思 is polite).
//!
//! The tables live in `sentiment-data/` (licences in its README): the English word
//! valences are derived from the VADER lexicon (MIT), with our own support-specific
//! overrides and phrases; the Chinese lexicon and the emoji valences are our own.

use std::collections::HashMap;
use std::sync::OnceLock;

pub mod evaluation;

/// A message whose score is at or below this is "clearly negative": routing hands
/// it to a person. Tuned on our labelled support sets: one strong anger word
/// ("garbage", 垃圾) or a milder one with emphasis ("terrible!!", 太差了！) is
/// enough, a calm complaint is not (figures in `sentiment-data/README.md`).
pub const CLEARLY_NEGATIVE: f32 = -0.55;

/// Only the first this many characters are read: a bounded cost per message
/// (anger shows at the start; a long email's tail is usually quoted history).
pub const MAX_CHARS: usize = 2000;

/// The message's sentiment in [-1, 1]: below 0 negative, -1 furious, 0 neutral
/// (or no sentiment words), up to 1 delighted.
pub fn sentiment(text: &str) -> f32 {
    Analysis::of(text).score
}

/// Whether the message is clearly negative (angry, fed up, threatening to complain).
pub fn is_clearly_negative(text: &str) -> bool {
    sentiment(text) <= CLEARLY_NEGATIVE
}

/// The score and what went into it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    /// In [-1, 1].
    pub score: f32,
    /// The unsquashed sum of the valences and emphasis (about -4 per strong word).
    pub raw: f32,
    /// The whole message is written in capitals.
    pub shouting: bool,
}

impl Analysis {
    pub fn of(text: &str) -> Analysis {
        let text = match text.char_indices().nth(MAX_CHARS) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let tables = tables();
        let tokens = tokenize(text, tables);
        let shouting = is_shouting(&tokens);
        let units = units(&tokens, tables);
        let raw = score_units(&units, shouting, &tokens);
        Analysis {
            score: squash(raw),
            raw,
            shouting,
        }
    }
}

// ---------------------------------------------------------------------------
// Constants of the rules (valences are on VADER's -4..+4 scale).

/// What a negator does to a positive word ("not good"): flip and shrink.
const NEGATE_POSITIVE: f32 = -0.74;
/// What a negator does to a negative word ("not bad", 不差): a mild positive.
const NEGATE_NEGATIVE: f32 = -0.5;
/// Through a degree word ("not very good", 不太好) the negation is weaker still.
const NEGATE_THROUGH_DEGREE: f32 = 0.6;
/// Emphasis of a word in capitals inside a message that is not all capitals.
const CAPS_EMPHASIS: f32 = 0.733;
/// Per exclamation mark (at most four count).
const EXCLAMATION_EMPHASIS: f32 = 0.292;
/// Per question mark when there are several (at most 0.96 in all).
const QUESTION_EMPHASIS: f32 = 0.18;
/// A message shouted in capitals with no sentiment words of its own still reads as
/// frustrated ("WHERE IS MY ORDER").
const SHOUTING_BIAS: f32 = -1.0;
/// Words before the last contrast ("but", 但是) count this much, words after it more.
const BEFORE_CONTRAST: f32 = 0.5;
const AFTER_CONTRAST: f32 = 1.5;
/// How far back a negator or degree word reaches, in words.
const REACH: usize = 3;
/// A degree word further away counts less.
const DEGREE_DECAY: [f32; REACH] = [1.0, 0.95, 0.9];
/// `raw / sqrt(raw² + ALPHA)`: about -0.6 for one strong word, -0.9 for three.
const ALPHA: f32 = 15.0;

fn squash(raw: f32) -> f32 {
    if raw == 0.0 {
        return 0.0;
    }
    (raw / (raw * raw + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negation {
    /// "not", 不, 没有: flips the word that follows.
    Full,
    /// 不太, 不怎么, 不是很: "not very", a softer flip.
    Weak,
    /// 别, 不要再: "stop doing it". Flips a positive word; a negative one stays
    /// negative (别再骗我了 is an accusation, not praise).
    Imperative,
}

const NEGATORS_EN: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "rarely", "seldom", "aint", "arent", "cant", "couldnt", "didnt", "doesnt", "dont",
    "hadnt", "hasnt", "havent", "isnt", "mightnt", "mustnt", "neednt", "shant", "shouldnt",
    "wasnt", "werent", "wont", "wouldnt",
];

/// Degree words: positive strengthens the next sentiment word, negative softens it.
const DEGREE_EN: &[(&str, f32)] = &[
    ("absolutely", 0.3),
    ("completely", 0.3),
    ("totally", 0.3),
    ("utterly", 0.35),
    ("beyond", 0.35),
    ("entirely", 0.3),
    ("extremely", 0.35),
    ("incredibly", 0.35),
    ("insanely", 0.35),
    ("ridiculously", 0.35),
    ("unbelievably", 0.35),
    ("exceptionally", 0.3),
    ("especially", 0.25),
    ("particularly", 0.25),
    ("remarkably", 0.3),
    ("highly", 0.3),
    ("hugely", 0.3),
    ("deeply", 0.3),
    ("thoroughly", 0.3),
    ("truly", 0.3),
    ("very", 0.3),
    ("really", 0.3),
    ("real", 0.2),
    ("so", 0.3),
    ("too", 0.3),
    ("such", 0.25),
    ("super", 0.3),
    ("most", 0.3),
    ("quite", 0.2),
    ("pretty", 0.15),
    ("damn", 0.3),
    ("fucking", 0.4),
    ("freaking", 0.3),
    ("bloody", 0.3),
    ("seriously", 0.3),
    ("almost", -0.2),
    ("barely", -0.3),
    ("hardly", -0.3),
    ("kinda", -0.3),
    ("kind of", -0.3),
    ("sorta", -0.3),
    ("sort of", -0.3),
    ("slightly", -0.3),
    ("somewhat", -0.3),
    ("a bit", -0.3),
    ("a little", -0.3),
    ("a little bit", -0.35),
    ("a tad", -0.3),
    ("mildly", -0.3),
    ("marginally", -0.3),
    ("partly", -0.3),
    ("fairly", -0.1),
];

const CONTRAST_EN: &[&str] = &["but", "however"];

const NEGATORS_ZH: &[(&str, Negation)] = &[
    ("不", Negation::Full),
    ("没", Negation::Full),
    ("没有", Negation::Full),
    ("别", Negation::Imperative),
    ("无", Negation::Full),
    ("非", Negation::Full),
    ("未", Negation::Full),
    ("不是", Negation::Full),
    ("并不", Negation::Full),
    ("并没有", Negation::Full),
    ("并非", Negation::Full),
    ("从不", Negation::Full),
    ("从没", Negation::Full),
    ("从来不", Negation::Full),
    ("从来没", Negation::Full),
    ("从来没有", Negation::Full),
    ("绝不", Negation::Full),
    ("毫不", Negation::Full),
    ("毫无", Negation::Full),
    ("不会", Negation::Full),
    ("不能", Negation::Full),
    ("不够", Negation::Full),
    ("还没", Negation::Full),
    ("还没有", Negation::Full),
    ("还不", Negation::Full),
    ("一直没", Negation::Full),
    ("一直没有", Negation::Full),
    ("都没", Negation::Full),
    ("都没有", Negation::Full),
    ("都不", Negation::Full),
    ("也没", Negation::Full),
    ("也没有", Negation::Full),
    ("也不", Negation::Full),
    ("别再", Negation::Imperative),
    ("不要", Negation::Imperative),
    ("不要再", Negation::Imperative),
    ("少", Negation::Imperative),
    ("不许", Negation::Imperative),
    ("不太", Negation::Weak),
    ("不怎么", Negation::Weak),
    ("不是很", Negation::Weak),
    ("不是太", Negation::Weak),
    ("不那么", Negation::Weak),
    ("不大", Negation::Weak),
    ("不算", Negation::Weak),
    ("不算太", Negation::Weak),
];

const DEGREE_ZH: &[(&str, f32)] = &[
    ("非常", 0.35),
    ("十分", 0.3),
    ("特别", 0.35),
    ("很", 0.25),
    ("挺", 0.2),
    ("太", 0.35),
    ("超", 0.35),
    ("超级", 0.4),
    ("极", 0.4),
    ("极其", 0.45),
    ("极度", 0.45),
    ("巨", 0.4),
    ("贼", 0.35),
    ("真", 0.3),
    ("真的", 0.3),
    ("真是", 0.3),
    ("实在", 0.3),
    ("实在是", 0.3),
    ("简直", 0.4),
    ("相当", 0.3),
    ("格外", 0.3),
    ("尤其", 0.25),
    ("最", 0.45),
    ("更", 0.2),
    ("更加", 0.25),
    ("越来越", 0.3),
    ("那么", 0.2),
    ("这么", 0.25),
    ("如此", 0.3),
    ("多么", 0.3),
    ("完全", 0.35),
    ("彻底", 0.4),
    ("绝对", 0.35),
    ("好", 0.3),
    ("有点", -0.3),
    ("有点儿", -0.3),
    ("有些", -0.3),
    ("稍微", -0.3),
    ("稍", -0.25),
    ("略", -0.25),
    ("略微", -0.3),
    ("一点", -0.2),
    ("一点点", -0.3),
    ("比较", -0.1),
    ("还算", -0.2),
    ("勉强", -0.4),
];

const CONTRAST_ZH: &[&str] = &["但是", "但", "可是", "不过", "然而", "只是", "却"];

// ---------------------------------------------------------------------------
// Tables.

/// What the lexicons say about one word or phrase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Entry {
    valence: f32,
    degree: f32,
    negation: Option<Negation>,
    contrast: bool,
}

struct Tables {
    /// English words and phrases (lowercase, words joined by one space).
    english: HashMap<String, Entry>,
    /// The longest English phrase, in words.
    english_max_words: usize,
    /// ASCII emoticons, matched as whole whitespace-separated pieces.
    emoticons: HashMap<String, f32>,
    /// Chinese words, including neutral ones that stop a wrong segmentation.
    chinese: HashMap<String, Entry>,
    /// The longest Chinese word, in characters.
    chinese_max_chars: usize,
    emoji: HashMap<char, f32>,
}

const VADER_EN: &str = include_str!("../sentiment-data/lexicon-en.tsv");
const SUPPORT_EN: &str = include_str!("../sentiment-data/lexicon-en-support.tsv");
const LEXICON_ZH: &str = include_str!("../sentiment-data/lexicon-zh.tsv");
const EMOJI: &str = include_str!("../sentiment-data/emoji.tsv");

/// `entry<TAB>valence` lines; `#` starts a comment line. Lines that do not parse
/// are skipped (a unit test checks that there are none).
fn parse_table(source: &str) -> impl Iterator<Item = (&str, f32)> {
    source.lines().filter_map(|line| {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let (entry, valence) = line.split_once('\t')?;
        let valence: f32 = valence.trim().parse().ok()?;
        (!entry.is_empty() && valence.is_finite()).then_some((entry, valence))
    })
}

fn is_word_entry(entry: &str) -> bool {
    entry
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '\'' || c == ' ')
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut english: HashMap<String, Entry> = HashMap::new();
        let mut emoticons = HashMap::new();
        // Ours come second and override VADER's valence for the same entry.
        for (entry, valence) in parse_table(VADER_EN).chain(parse_table(SUPPORT_EN)) {
            if is_word_entry(entry) {
                english.entry(entry.to_lowercase()).or_default().valence = valence;
            } else {
                emoticons.insert(entry.to_string(), valence);
            }
        }
        for word in NEGATORS_EN {
            english.entry(word.to_string()).or_default().negation = Some(Negation::Full);
        }
        for (word, degree) in DEGREE_EN {
            english.entry(word.to_string()).or_default().degree = *degree;
        }
        for word in CONTRAST_EN {
            english.entry(word.to_string()).or_default().contrast = true;
        }
        let english_max_words = english
            .keys()
            .map(|k| k.split(' ').count())
            .max()
            .unwrap_or(1);

        let mut chinese: HashMap<String, Entry> = HashMap::new();
        for (entry, valence) in parse_table(LEXICON_ZH) {
            chinese.entry(entry.to_string()).or_default().valence = valence;
        }
        for (word, negation) in NEGATORS_ZH {
            chinese.entry(word.to_string()).or_default().negation = Some(*negation);
        }
        for (word, degree) in DEGREE_ZH {
            chinese.entry(word.to_string()).or_default().degree = *degree;
        }
        for word in CONTRAST_ZH {
            chinese.entry(word.to_string()).or_default().contrast = true;
        }
        let chinese_max_chars = chinese.keys().map(|k| k.chars().count()).max().unwrap_or(1);

        let emoji = parse_table(EMOJI)
            .filter_map(|(entry, valence)| {
                let mut chars = entry.chars();
                let first = chars.next()?;
                chars.next().is_none().then_some((first, valence))
            })
            .collect();
        Tables {
            english,
            english_max_words,
            emoticons,
            chinese,
            chinese_max_chars,
            emoji,
        }
    })
}

// ---------------------------------------------------------------------------
// Tokens.

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    /// An ASCII word, lowercased; `caps` when written in capitals (two letters or more).
    Word {
        text: String,
        caps: bool,
    },
    /// A run of Han characters, segmented later.
    Han(&'a str),
    /// An emoji or emoticon with its valence.
    Emoji(f32),
    Exclamation,
    Question,
    /// A comma, full stop, line break...: negation and degree words stop here.
    Break,
}

fn is_han(c: char) -> bool {
    crate::routing::is_han(c)
}

fn tokenize<'a>(text: &'a str, tables: &Tables) -> Vec<Token<'a>> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        for piece in line.split_whitespace() {
            match tables.emoticons.get(piece) {
                Some(valence) => tokens.push(Token::Emoji(*valence)),
                None => tokenize_piece(piece, tables, &mut tokens),
            }
        }
        // A new line ends a clause.
        tokens.push(Token::Break);
    }
    tokens
}

fn tokenize_piece<'a>(piece: &'a str, tables: &Tables, tokens: &mut Vec<Token<'a>>) {
    let mut chars = piece.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_ascii_alphanumeric() {
            let mut end = start + c.len_utf8();
            while let Some(&(i, next)) = chars.peek() {
                let apostrophe = matches!(next, '\'' | '’');
                if next.is_ascii_alphanumeric() || apostrophe {
                    chars.next();
                    end = i + next.len_utf8();
                } else {
                    break;
                }
            }
            let raw = piece[start..end].trim_end_matches(['\'', '’']);
            let letters = raw.chars().filter(|c| c.is_ascii_alphabetic()).count();
            let caps = letters >= 2 && !raw.chars().any(|c| c.is_ascii_lowercase());
            tokens.push(Token::Word {
                text: raw.to_ascii_lowercase().replace('’', "'"),
                caps,
            });
        } else if is_han(c) {
            let mut end = start + c.len_utf8();
            while let Some(&(i, next)) = chars.peek() {
                if is_han(next) {
                    chars.next();
                    end = i + next.len_utf8();
                } else {
                    break;
                }
            }
            tokens.push(Token::Han(&piece[start..end]));
        } else if let Some(valence) = tables.emoji.get(&c) {
            tokens.push(Token::Emoji(*valence));
        } else {
            match c {
                '!' | '！' => tokens.push(Token::Exclamation),
                '?' | '？' => tokens.push(Token::Question),
                ',' | '.' | ';' | ':' | '，' | '。' | '；' | '：' | '、' | '…' | '~' | '～'
                | '(' | ')' | '（' | '）' | '"' | '“' | '”' | '「' | '」' | '【' | '】' | '/' => {
                    tokens.push(Token::Break)
                }
                _ => {}
            }
        }
    }
}

/// The whole message in capitals: at least two words and eight letters, and four
/// in five letters upper case.
fn is_shouting(tokens: &[Token]) -> bool {
    let (mut words, mut letters, mut upper) = (0usize, 0usize, 0usize);
    for token in tokens {
        if let Token::Word { text, caps } = token {
            let n = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
            if n == 0 {
                continue;
            }
            words += 1;
            letters += n;
            if *caps {
                upper += n;
            }
        }
    }
    words >= 2 && letters >= 8 && upper * 5 >= letters * 4
}

// ---------------------------------------------------------------------------
// Units: words and phrases with what the lexicons say about them.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Word {
        entry: Entry,
        caps: bool,
        chinese: bool,
    },
    Emoji(f32),
    Break,
}

impl Unit {
    fn entry(&self) -> Option<&Entry> {
        match self {
            Unit::Word { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

fn units(tokens: &[Token], tables: &Tables) -> Vec<Unit> {
    let mut units = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let mut key = String::new();
    while i < tokens.len() {
        match &tokens[i] {
            Token::Word { .. } => {
                // the longest phrase starting here
                let run = tokens[i..]
                    .iter()
                    .take(tables.english_max_words)
                    .take_while(|t| matches!(t, Token::Word { .. }))
                    .count();
                let mut matched = None;
                for len in (1..=run).rev() {
                    key.clear();
                    for (n, token) in tokens[i..i + len].iter().enumerate() {
                        if let Token::Word { text, .. } = token {
                            if n > 0 {
                                key.push(' ');
                            }
                            key.push_str(text);
                        }
                    }
                    if let Some(entry) = lookup_english(&key, len == 1, tables) {
                        matched = Some((len, entry));
                        break;
                    }
                }
                let (len, entry) = matched.unwrap_or((1, Entry::default()));
                let caps = tokens[i..i + len]
                    .iter()
                    .any(|t| matches!(t, Token::Word { caps: true, .. }));
                units.push(Unit::Word {
                    entry,
                    caps,
                    chinese: false,
                });
                i += len;
            }
            Token::Han(run) => {
                segment_chinese(run, tables, &mut units);
                i += 1;
            }
            Token::Emoji(valence) => {
                units.push(Unit::Emoji(*valence));
                i += 1;
            }
            Token::Exclamation | Token::Question | Token::Break => {
                units.push(Unit::Break);
                i += 1;
            }
        }
    }
    units
}

fn lookup_english(key: &str, single: bool, tables: &Tables) -> Option<Entry> {
    if let Some(entry) = tables.english.get(key) {
        return Some(*entry);
    }
    if !single {
        return None;
    }
    // Every "-n't" is a negator ("don't", "shouldn't"); other apostrophes are
    // kept ("i'll" is not "ill").
    if key.ends_with("n't") {
        return Some(Entry {
            negation: Some(Negation::Full),
            ..Entry::default()
        });
    }
    // "sooooo" → "so", "baaad" → "bad".
    if has_triple_letter(key) {
        for keep in [1, 2] {
            let squeezed = squeeze_repeats(key, keep);
            if let Some(entry) = tables.english.get(&squeezed) {
                return Some(*entry);
            }
        }
    }
    None
}

fn has_triple_letter(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

/// Runs of three or more equal letters cut down to `keep` (shorter runs stay).
fn squeeze_repeats(word: &str, keep: usize) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|&&c| c == chars[i]).count();
        let kept = if run >= 3 { keep } else { run };
        out.extend(std::iter::repeat_n(chars[i], kept));
        i += run;
    }
    out
}

/// Longest match, left to right; a character no entry starts with is a neutral word.
fn segment_chinese(run: &str, tables: &Tables, units: &mut Vec<Unit>) {
    let bounds: Vec<usize> = run
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(run.len()))
        .collect();
    let chars = bounds.len() - 1;
    let mut i = 0;
    while i < chars {
        let longest = tables.chinese_max_chars.min(chars - i);
        let mut matched = None;
        for len in (1..=longest).rev() {
            if let Some(entry) = tables.chinese.get(&run[bounds[i]..bounds[i + len]]) {
                matched = Some((len, *entry));
                break;
            }
        }
        let (len, entry) = matched.unwrap_or((1, Entry::default()));
        units.push(Unit::Word {
            entry,
            caps: false,
            chinese: true,
        });
        i += len;
    }
}

// ---------------------------------------------------------------------------
// Scoring.

/// Whether the unit at `i` is a degree word for the sentiment word right after it
/// ("pretty bad", 好慢) rather than a sentiment word itself ("pretty", 好).
fn acts_as_degree(units: &[Unit], i: usize) -> bool {
    let Some(entry) = units[i].entry() else {
        return false;
    };
    if entry.degree == 0.0 {
        return false;
    }
    matches!(units.get(i + 1), Some(Unit::Word { entry: next, .. }) if next.valence != 0.0)
}

fn score_units(units: &[Unit], shouting: bool, tokens: &[Token]) -> f32 {
    let contrast = units
        .iter()
        .rposition(|u| u.entry().is_some_and(|e| e.contrast));
    let mut sum = 0.0f32;
    for (i, unit) in units.iter().enumerate() {
        let mut value = match unit {
            Unit::Emoji(valence) => *valence,
            Unit::Word { entry, caps, .. } => {
                if entry.valence == 0.0 || acts_as_degree(units, i) {
                    continue;
                }
                let (mut value, modifier_in_caps) = modified(units, i, entry.valence);
                // "NOT happy", "SO slow", "TERRIBLE"; a shouted message once per word.
                if *caps || modifier_in_caps || shouting {
                    value += value.signum() * CAPS_EMPHASIS;
                }
                value
            }
            Unit::Break => continue,
        };
        if let Some(c) = contrast {
            if i < c {
                value *= BEFORE_CONTRAST;
            } else if i > c {
                value *= AFTER_CONTRAST;
            }
        }
        sum += value;
    }
    if shouting && sum <= 0.0 {
        sum += SHOUTING_BIAS;
    }
    let exclamations = tokens
        .iter()
        .filter(|t| matches!(t, Token::Exclamation))
        .count()
        .min(4);
    let questions = tokens
        .iter()
        .filter(|t| matches!(t, Token::Question))
        .count();
    let mut emphasis = exclamations as f32 * EXCLAMATION_EMPHASIS;
    if questions > 1 {
        emphasis += (questions.min(6) as f32 * QUESTION_EMPHASIS).min(0.96);
    }
    if sum != 0.0 {
        sum += sum.signum() * emphasis;
    }
    sum
}

/// The valence of the word at `i` after the negators and degree words in front of
/// it, and whether one of those is written in capitals.
fn modified(units: &[Unit], i: usize, valence: f32) -> (f32, bool) {
    let chinese = matches!(units[i], Unit::Word { chinese: true, .. });
    // Degree words between the negator and the word, and beyond the negator.
    let (mut inner_degree, mut outer_degree) = (0.0f32, 0.0f32);
    let mut negation: Option<Negation> = None;
    let mut in_caps = false;
    for (distance, k) in (i.saturating_sub(REACH)..i).rev().enumerate() {
        let Unit::Word { entry, caps, .. } = &units[k] else {
            break; // a clause break, or an emoji
        };
        if entry.valence != 0.0 && !acts_as_degree(units, k) {
            break; // another sentiment word: it has its own modifiers
        }
        if entry.negation.is_some() || entry.degree != 0.0 {
            in_caps |= *caps;
        }
        if let Some(n) = entry.negation {
            negation = match negation {
                None => Some(n),
                Some(_) => None, // "not un-..." / 不是不: two negations cancel
            };
            continue;
        }
        if entry.degree != 0.0 {
            // Chinese degree words sit right before the word or its negator
            // (很好, 很不好); one further away belongs to something else.
            if chinese && distance > 1 {
                continue;
            }
            let amount = entry.degree * DEGREE_DECAY[distance];
            if negation.is_some() {
                outer_degree += amount;
            } else {
                inner_degree += amount;
            }
        }
    }
    let sign = valence.signum();
    let value = match negation {
        None => valence + sign * (inner_degree + outer_degree),
        Some(Negation::Imperative) if valence < 0.0 => {
            valence + sign * (inner_degree + outer_degree)
        }
        Some(kind) => {
            let weak = kind == Negation::Weak || inner_degree > 0.0;
            let mut flipped = if valence > 0.0 {
                valence * NEGATE_POSITIVE
            } else {
                valence * NEGATE_NEGATIVE
            };
            if weak {
                flipped *= NEGATE_THROUGH_DEGREE;
            }
            flipped + flipped.signum() * outer_degree
        }
    };
    (value, in_caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_completely() {
        for (name, source) in [
            ("lexicon-en.tsv", VADER_EN),
            ("lexicon-en-support.tsv", SUPPORT_EN),
            ("lexicon-zh.tsv", LEXICON_ZH),
            ("emoji.tsv", EMOJI),
        ] {
            let lines = source
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .count();
            assert_eq!(parse_table(source).count(), lines, "{name}");
        }
        let t = tables();
        assert!(t.english.len() > 7000 && t.chinese.len() > 300 && t.emoji.len() > 50);
    }

    fn s(text: &str) -> f32 {
        sentiment(text)
    }

    #[test]
    fn negation_flips_and_softens() {
        assert!(s("not bad") > 0.0, "not bad");
        assert!(s("bad") < 0.0);
        assert!(s("I'm not happy") < 0.0);
        assert!(s("it isn't good") < 0.0);
        assert!(
            s("it's not very good") > s("it's not good"),
            "not very good is milder"
        );
        assert!(s("不错") > 0.0);
        assert!(s("不好") < 0.0);
        assert!(s("不太好") < 0.0);
        assert!(s("不太好") > s("不好"), "不太好 is milder than 不好");
        assert!(s("很不好") < s("不好"), "很不好 is stronger than 不好");
        assert!(s("不差") > 0.0, "不差");
        assert!(!is_clearly_negative("不太好"));
        assert!(!is_clearly_negative("not great"));
    }

    #[test]
    fn imperative_negation_keeps_an_accusation_negative() {
        assert!(s("别再忽悠我了") < 0.0);
        assert!(s("不要再骗人了") < 0.0);
        assert!(s("别担心") > 0.0, "别担心 reassures");
    }

    #[test]
    fn degree_words_strengthen_and_soften() {
        assert!(s("very bad") < s("bad"));
        assert!(s("a bit slow") > s("slow"));
        assert!(s("非常满意") > s("满意"));
        assert!(s("有点慢") > s("慢"));
        assert!(
            s("好慢") < s("慢"),
            "好 before a sentiment word is a degree word"
        );
        assert!(s("好的") < s("好"), "好的 is an acknowledgement");
    }

    #[test]
    fn emphasis_emoji_and_shouting() {
        assert!(s("terrible!!!") < s("terrible"));
        assert!(s("太差了！！") < s("太差了"));
        assert!(s("why??") == 0.0, "punctuation alone carries no sentiment");
        assert!(s("I'm NOT happy") < s("I'm not happy"));
        assert!(s("this is TERRIBLE") < s("this is terrible"));
        assert!(
            s("WHERE IS MY ORDER") < 0.0,
            "a shouted message reads as frustrated"
        );
        assert!(
            s("THANK YOU SO MUCH") > 0.0,
            "shouting amplifies, it does not invert"
        );
        assert!(s("😡") < 0.0 && s("😡😡😡") < s("😡"));
        assert!(s("thanks 🙂") > s("thanks"));
        assert!(s("ok :(") < 0.0, "ASCII emoticons count");
        assert!(
            s("sooooo bad") < s("so"),
            "repeated letters are read as the word"
        );
    }

    #[test]
    fn the_clause_after_but_counts_more() {
        assert!(s("The delivery was slow but the product is great") > 0.0);
        assert!(s("The product is great but the delivery was terrible") < 0.0);
        assert!(s("东西不错，但是物流太慢了") < s("东西不错，物流太慢了"));
    }

    #[test]
    fn support_phrases_read_as_meant() {
        for calm in [
            "I'd like to cancel my subscription please",
            "Can you help me with my account?",
            "What kind of warranty do you offer?",
            "I'll check there",
            "你好，请问怎么退款？",
            "我的银行卡被扣了两次钱",
            "不好意思，麻烦您帮我查一下",
            "是不是已经发货了？",
        ] {
            assert!(s(calm).abs() < NEUTRAL_FOR_TEST, "{calm}: {}", s(calm));
        }
        for angry in [
            "worst service ever!!!",
            "I'm NOT happy with this at all. Fix it now.",
            "This is a scam. I want my money back.",
            "😡",
            "你们客服是死了吗？一直没人回复！",
            "垃圾商家，我要投诉",
            "气死我了，第三次问了还没人管",
        ] {
            assert!(is_clearly_negative(angry), "{angry}: {}", s(angry));
        }
        assert!(s("谢谢，解决了") > 0.5);
        assert!(s("Thanks, that solved it!") > 0.5);
    }

    const NEUTRAL_FOR_TEST: f32 = 0.05;

    #[test]
    fn any_input_is_scored_in_range_without_panicking() {
        let long = "terrible ".repeat(100_000);
        for text in [
            "",
            "   \n\t ",
            "!!!???！！？？",
            "'''",
            "n't",
            "\u{0}\u{1F621}\u{FE0F}\u{200D}",
            "ｆｕｌｌｗｉｄｔｈ",
            "a\u{301}\u{301}\u{301}",
            "😡".repeat(10_000).as_str(),
            long.as_str(),
            "不不不不不不不不好",
            "太太太太太太差",
        ] {
            let score = s(text);
            assert!((-1.0..=1.0).contains(&score), "{score}");
            assert_eq!(score, s(text), "deterministic");
        }
        // Only the first MAX_CHARS characters are read.
        let tail = format!("{}garbage!!!", "x ".repeat(MAX_CHARS));
        assert_eq!(s(&tail), 0.0);
    }
}
