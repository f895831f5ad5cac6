//! Masks personal data in free text: e-mail addresses, phone numbers, payment
//! card numbers (Luhn-checked) and Chinese resident identity numbers (checksum
//! and birth date checked). Used wherever customer text leaves the
//! conversation it belongs to: the unanswered-question log, reports, chat
//! notifications, and stored transcripts when `[privacy] redact_transcripts`.
//!
//! Each match becomes a placeholder (`[email]`, `[phone]`, `[card]`,
//! `[id number]`) rather than a partial mask, so that the same question asked
//! by different people groups together in the reports.
//!
//! Numbers are judged by their shape: a bare run of digits that is neither a
//! valid card, a valid ID number nor a Chinese mobile number is left alone,
//! because customers quote order and tracking numbers that agents need.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex_lite::Regex;

pub const EMAIL: &str = "[email]";
pub const PHONE: &str = "[phone]";
pub const CARD: &str = "[card]";
pub const ID_NUMBER: &str = "[id number]";

static EMAIL_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}").expect("valid")
});

/// Digits with the separators people put in phone and card numbers, an
/// optional leading `+`, and a possible trailing ID check letter. Digits
/// glued to letters or other digits on either side are not taken (the crate
/// has no look-around, so the neighbours are checked in [`redact`]).
static NUMBER_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+?\(?[0-9][0-9]*(?:(?:[ .\-]|\) ?|[ ]?\()[0-9]+)*[0-9Xx]?").expect("valid")
});

/// Text with personal data replaced by placeholders; borrowed when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    // Each pattern needs its one character (`@`, an ASCII digit): text
    // without it (most messages) skips regex-lite's search, slower than regex's.
    let emails_done = if text.contains('@') {
        EMAIL_PATTERN.replace_all(text, EMAIL)
    } else {
        Cow::Borrowed(text)
    };
    if !emails_done.bytes().any(|b| b.is_ascii_digit()) {
        return emails_done;
    }
    let mut out = String::new();
    let mut last = 0;
    let source = emails_done.as_ref();
    for found in NUMBER_PATTERN.find_iter(source) {
        let before = source[..found.start()].chars().next_back();
        let after = source[found.end()..].chars().next();
        if before.is_some_and(|c| c.is_ascii_alphanumeric())
            || after.is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        if let Some(placeholder) = classify(found.as_str()) {
            out.push_str(&source[last..found.start()]);
            out.push_str(placeholder);
            last = found.end();
        }
    }
    if last == 0 {
        return emails_done;
    }
    out.push_str(&source[last..]);
    Cow::Owned(out)
}

/// What a number-shaped piece of text is, if it is personal data.
fn classify(candidate: &str) -> Option<&'static str> {
    let digits: Vec<u8> = candidate
        .bytes()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect();
    let check_letter = candidate.ends_with(['X', 'x']);
    let separated = candidate
        .bytes()
        .any(|b| matches!(b, b' ' | b'-' | b'.' | b'(' | b')'));
    if !separated && is_resident_id(&digits, check_letter) {
        return Some(ID_NUMBER);
    }
    if check_letter {
        return None;
    }
    if (13..=19).contains(&digits.len())
        && luhn_valid(&digits)
        && !candidate.contains(['(', ')', '+'])
    {
        return Some(CARD);
    }
    let international = candidate.starts_with('+');
    let chinese_mobile = digits.len() == 11 && digits[0] == 1 && (3..=9).contains(&digits[1]);
    if (7..=15).contains(&digits.len())
        && (international
            || chinese_mobile
            || (separated && !looks_like_date_or_address(candidate)))
    {
        return Some(PHONE);
    }
    None
}

/// Dates (2026-11-02, 02.11.2026) and dotted addresses or versions
/// (192.168.10.1) have phone-like digit counts but are not phone numbers.
fn looks_like_date_or_address(candidate: &str) -> bool {
    let groups: Vec<&str> = candidate.split(['-', '.']).collect();
    let all_digits = groups
        .iter()
        .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    if !all_digits {
        return false;
    }
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let date = matches!(lengths.as_slice(), [4, 1..=2, 1..=2] | [1..=2, 1..=2, 4]);
    let dotted =
        candidate.contains('.') && !candidate.contains('-') && lengths.iter().all(|&l| l <= 3);
    date || dotted
}

/// The Luhn (mod 10) check that every payment card number passes.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A mainland China resident identity number (GB 11643-1999): 17 digits, a
/// plausible birth date at positions 7-14, and an ISO 7064 MOD 11-2 check
/// character (0-9 or X).
fn is_resident_id(digits: &[u8], check_letter: bool) -> bool {
    let body_len = if check_letter { 17 } else { 18 };
    if digits.len() != body_len {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let (year, month, day) = (number(6..10), number(10..12), number(12..14));
    if !(1800..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    // Check characters for remainders 0..=10; 10 stands for X.
    const CHECK: [u8; 11] = [1, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2];
    let expected = CHECK[(sum % 11) as usize];
    if check_letter {
        expected == 10
    } else {
        expected == digits[17]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked() {
        assert_eq!(
            redact("write to Jane.Doe+orders@mail.example.co.uk please"),
            "write to [email] please"
        );
        assert_eq!(
            redact("我的邮箱是 wang@qq.com 谢谢"),
            "我的邮箱是 [email] 谢谢"
        );
    }

    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(redact("call me on +1 (415) 555-0134"), "call me on [phone]");
        assert_eq!(redact("call 415-555-0134 today"), "call [phone] today");
        assert_eq!(
            redact("我的手机13800138000，请回电"),
            "我的手机[phone]，请回电"
        );
        assert_eq!(redact("+44 20 7946 0958"), "[phone]");
        assert_eq!(redact("电话 010-62345678"), "电话 [phone]");
    }

    #[test]
    fn card_numbers_are_masked_only_when_luhn_valid() {
        assert_eq!(
            redact("card 4111 1111 1111 1111 was charged"),
            "card [card] was charged"
        );
        assert_eq!(redact("card 4111-1111-1111-1111"), "card [card]");
        assert_eq!(redact("5555555555554444"), "[card]");
        // Same shape, wrong check digit: an order number, kept.
        assert_eq!(redact("order 4111111111111112"), "order 4111111111111112");
    }

    #[test]
    fn chinese_resident_ids_are_masked_when_the_checksum_holds() {
        // A well-formed number (test value; checksum computed by hand).
        assert_eq!(
            redact("身份证 11010519491231002X 已提交"),
            "身份证 [id number] 已提交"
        );
        assert_eq!(redact("ID 110105194912310021"), "ID 110105194912310021");
        assert_eq!(redact("ID 440524188001010014"), "ID [id number]");
    }

    #[test]
    fn order_numbers_and_ordinary_text_are_kept() {
        for text in [
            "Where is order 12345678?",
            "I ordered 3 items on 2026-11-02",
            "订单号 20261128001 还没发货",
            "tracking 1Z999AA10123456784",
            "version 1.2.3",
            "server 192.168.10.1 is down",
            "delivered 02.11.2026",
            "How long does shipping take?",
        ] {
            assert_eq!(redact(text), text, "{text}");
        }
    }

    #[test]
    fn nothing_to_mask_borrows() {
        assert!(matches!(redact("hello"), Cow::Borrowed(_)));
    }

    #[test]
    fn hostile_input_is_linear_and_never_panics() {
        let long = "1 ".repeat(50_000) + &"@".repeat(10_000) + &"+(".repeat(10_000);
        let _ = redact(&long);
        let _ = redact("\u{0}+\u{10FFFF}9");
    }
}
