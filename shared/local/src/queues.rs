//! `switchboard queue dead-letters` for a terminal.

use switchboard_pipeline::report::date_time;
use switchboard_sqlite::DeadLetter;

/// The dead letters as a table (UTC times), with how many more there are
/// than `listed` shows, out of `total`.
pub fn dead_letter_table(listed: &[DeadLetter], total: u64) -> String {
    if listed.is_empty() {
        return "No dead letters.\n".into();
    }
    let mut out = format!(
        "{:<19}  {:>8}  {:>8}  {:<16}  {:<16}  {:<9}  {:<16}  {}\n",
        "QUEUE", "ID", "ATTEMPTS", "ENQUEUED (UTC)", "FAILED (UTC)", "KIND", "CAUSE", "ERROR"
    );
    for dead in listed {
        out.push_str(&format!(
            "{:<19}  {:>8}  {:>8}  {:<16}  {:<16}  {:<9}  {:<16}  {}\n",
            dead.queue,
            dead.id,
            dead.attempts,
            date_time(dead.enqueued_at_ms),
            dead.failed_at_ms.map_or_else(|| "-".to_owned(), date_time),
            if dead.permanent {
                "for good"
            } else {
                "retried"
            },
            dead.cause.as_deref().unwrap_or("-"),
            dead.error.as_deref().unwrap_or("-"),
        ));
    }
    let more = total.saturating_sub(listed.len() as u64);
    if more > 0 {
        out.push_str(&format!("... and {more} more (--limit)\n"));
    }
    out.push_str("Put a queue's back in line: switchboard queue redrive QUEUE\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_per_dead_letter_and_a_count_of_the_rest() {
        let dead = DeadLetter {
            queue: "outbound",
            id: 7,
            group: "email:support:thread".into(),
            dedupe_id: "reply-1".into(),
            attempts: 1,
            enqueued_at_ms: 1_764_338_700_000,
            failed_at_ms: Some(1_764_338_760_000),
            permanent: true,
            cause: Some("send:email".into()),
            error: Some("550 no such user".into()),
            redrives: 0,
        };
        let table = dead_letter_table(std::slice::from_ref(&dead), 3);
        let row = table.lines().nth(1).unwrap();
        for part in [
            "outbound",
            " 7 ",
            "2025-11-28 14:05",
            "2025-11-28 14:06",
            "for good",
            "send:email",
            "550 no such user",
        ] {
            assert!(row.contains(part), "{part}: {row}");
        }
        assert!(table.contains("and 2 more"), "{table}");
        assert_eq!(dead_letter_table(&[], 0), "No dead letters.\n");
    }
}
