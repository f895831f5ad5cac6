//! The customer's new text only: the quoted history and the signature that
//! mail clients append are removed. Covers Gmail and Apple Mail (`On … wrote:`,
//! also wrapped over two lines), Outlook (`-----Original Message-----`, the
//! underscore rule and the `From:`/`Sent:` block), Chinese clients (QQ Mail
//! and Foxmail's `原始邮件`, `发件人:`/`发送时间:`, `在 … 写道：`), `>` quotes,
//! the `-- ` signature separator and "Sent from my phone" lines.

/// Lines that end the new text wherever they stand.
const CUT_MARKERS: &[&str] = &[
    "-----original message-----",
    "----- original message -----",
    "-----原始邮件-----",
    "------------------ 原始邮件 ------------------",
    "------------------ original ------------------",
    "---- 回复的原邮件 ----",
    "begin forwarded message:",
];

/// Forward markers: what follows is the forwarded mail.
const FORWARD_MARKERS: &[&str] = &[
    "---------- forwarded message ---------",
    "-------- forwarded message --------",
    "-------- original message --------",
    "---------- 转发的邮件 ---------",
    "-------- 转发邮件信息 --------",
];

/// Header lines that open a quoted mail, paired with a line that follows it.
const HEADER_BLOCKS: &[(&str, &[&str])] = &[
    ("from:", &["sent:", "date:", "to:", "subject:"]),
    (
        "发件人:",
        &["发送时间:", "时间:", "日期:", "收件人:", "主题:"],
    ),
    (
        "发件人：",
        &["发送时间：", "时间：", "日期：", "收件人：", "主题："],
    ),
];

/// Signature lines phones and apps add.
const SENT_FROM: &[&str] = &[
    "sent from my",
    "get outlook for",
    "sent from mail for windows",
    "发自我的",
    "来自我的",
    "发自 ",
];

/// The new text of a mail body: everything before the first quote marker,
/// without `>` lines or the signature; for a forwarded mail with nothing
/// written above it, the forwarded text.
pub fn new_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let lower = line.trim().to_lowercase();
        if FORWARD_MARKERS
            .iter()
            .any(|marker| lower.starts_with(marker))
        {
            if kept.iter().all(|line| line.trim().is_empty()) {
                return forwarded(&lines[index + 1..]);
            }
            break;
        }
        if is_quote_start(&lines, index, &lower) {
            break;
        }
        if lower == "--" && line.starts_with("--") {
            break;
        }
        if !line.trim_start().starts_with('>') {
            kept.push(line);
        }
        index += 1;
    }
    while kept.last().is_some_and(|line| {
        let lower = line.trim().to_lowercase();
        lower.is_empty() || SENT_FROM.iter().any(|s| lower.starts_with(s))
    }) {
        kept.pop();
    }
    kept.join("\n").trim().to_owned()
}

fn is_quote_start(lines: &[&str], index: usize, lower: &str) -> bool {
    if CUT_MARKERS.iter().any(|marker| lower.starts_with(marker)) {
        return true;
    }
    let next = |offset: usize| {
        lines
            .get(index + offset)
            .map(|line| line.trim().to_lowercase())
            .unwrap_or_default()
    };
    // Outlook's rule of underscores, then its header block.
    if lower.len() >= 20 && lower.chars().all(|c| c == '_') {
        return true;
    }
    // `On Mon, 1 Jan 2024 at 10:00, Jane <jane@x> wrote:`, maybe over two lines.
    if lower.starts_with("on ")
        && (lower.ends_with("wrote:") || (lower.len() < 120 && next(1).ends_with("wrote:")))
    {
        return true;
    }
    // `在 2024年1月2日 周二 10:00，Jane <jane@x> 写道：`
    if lower.starts_with('在') && (lower.ends_with("写道：") || lower.ends_with("写道:")) {
        return true;
    }
    // A header block of the quoted mail: `From:` with `Sent:` etc. below it.
    HEADER_BLOCKS.iter().any(|(first, following)| {
        lower.starts_with(first)
            && (1..=4).any(|offset| following.iter().any(|f| next(offset).starts_with(f)))
    })
}

/// The text of a forwarded mail: its header block skipped.
fn forwarded(lines: &[&str]) -> String {
    let start = lines
        .iter()
        .position(|line| line.trim().is_empty())
        .map_or(0, |blank| blank + 1);
    new_text(&lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_history_and_signatures_are_removed() {
        let cases = [
            (
                "Still nothing.\n\nOn Mon, 3 Jun 2024 at 10:00, Shop <support@shop.example> wrote:\n> Your order left.",
                "Still nothing.",
            ),
            (
                "Thanks!\n\nOn Mon, 3 Jun 2024 at 10:00, Shop Support <support@shop.example>\nwrote:\n> x",
                "Thanks!",
            ),
            (
                "Please cancel.\r\n\r\n-----Original Message-----\r\nFrom: Shop\r\nSent: Monday",
                "Please cancel.",
            ),
            (
                "Where?\n\n________________________________\nFrom: Shop <support@shop.example>\nSent: 3 June 2024 10:00",
                "Where?",
            ),
            (
                "收到，谢谢！\n\n------------------ 原始邮件 ------------------\n发件人: \"Shop\"<support@shop.example>;\n发送时间: 2024年6月3日",
                "收到，谢谢！",
            ),
            (
                "还没到。\n\n发件人：Shop Support\n发送时间：2024年6月3日 10:00\n收件人：我",
                "还没到。",
            ),
            (
                "好的\n\n在 2024年6月3日 10:00，Shop <support@shop.example> 写道：\n> 已发货",
                "好的",
            ),
            (
                "Hi,\nmy parcel?\n\n-- \nJane Doe\nACME Ltd",
                "Hi,\nmy parcel?",
            ),
            ("Broken zip.\n\nSent from my iPhone", "Broken zip."),
            ("坏了\n\n发自我的iPhone", "坏了"),
            ("> quoted only\nMy answer", "My answer"),
        ];
        for (body, expected) in cases {
            assert_eq!(new_text(body), expected, "{body}");
        }
    }

    #[test]
    fn forwarded_mail_keeps_the_note_or_the_forwarded_text() {
        assert_eq!(
            new_text(
                "See below, wrong item.\n\n---------- Forwarded message ---------\nFrom: x\n\nOrder 1"
            ),
            "See below, wrong item."
        );
        assert_eq!(
            new_text(
                "---------- Forwarded message ---------\nFrom: x\nDate: y\n\nMy order 42 never came."
            ),
            "My order 42 never came."
        );
    }

    #[test]
    fn ordinary_text_is_kept() {
        let text = "From: the warehouse, I think.\nOn time? No.";
        assert_eq!(new_text(text), text);
    }
}
