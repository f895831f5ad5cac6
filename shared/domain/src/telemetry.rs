//! What the pipeline counts and measures, through the `metrics` facade. The
//! stages call these functions and know nothing about where the figures go:
//! on Lambda an exporter writes them as CloudWatch embedded metrics
//! (`switchboard-lambda`); where no recorder is installed (the local server,
//! tests) they cost a branch and go nowhere.
//!
//! One dimension at most per metric (`channel` or `queue`); the exporter adds
//! the function's name. Metric names are a contract with the dashboard in
//! `template.yaml`.

use metrics::{counter, histogram};

pub const MESSAGES_RECEIVED: &str = "messages_received";
pub const MESSAGES_ANSWERED: &str = "messages_answered";
pub const MESSAGES_ESCALATED: &str = "messages_escalated";
pub const REPLY_FAILURES: &str = "reply_failures";
pub const TICKETS_NOTIFIED: &str = "tickets_notified";
pub const DEAD_LETTERS: &str = "dead_letters";
pub const FAQ_CONFIDENCE: &str = "faq_confidence";
pub const PROCESSING_MS: &str = "processing_ms";

/// The counters' names, for exporters that declare units up front.
pub const COUNTERS: [&str; 6] = [
    MESSAGES_RECEIVED,
    MESSAGES_ANSWERED,
    MESSAGES_ESCALATED,
    REPLY_FAILURES,
    TICKETS_NOTIFIED,
    DEAD_LETTERS,
];

/// A customer message accepted by ingress and queued (duplicates not counted).
pub fn message_received(channel: &str) {
    counter!(MESSAGES_RECEIVED, "channel" => channel.to_owned()).increment(1);
}

/// The worker answered from the FAQ (with or without offering a person).
pub fn message_answered(channel: &str) {
    counter!(MESSAGES_ANSWERED, "channel" => channel.to_owned()).increment(1);
}

/// The worker handed the conversation to the agents.
pub fn message_escalated(channel: &str) {
    counter!(MESSAGES_ESCALATED, "channel" => channel.to_owned()).increment(1);
}

/// A reply to a customer failed (it is retried or dead-lettered).
pub fn reply_failed(channel: &str) {
    counter!(REPLY_FAILURES, "channel" => channel.to_owned()).increment(1);
}

/// The agents were told about a ticket.
pub fn ticket_notified(channel: &str) {
    counter!(TICKETS_NOTIFIED, "channel" => channel.to_owned()).increment(1);
}

/// A job gave up for good and went to its queue's dead letters.
pub fn dead_lettered(queue: &str) {
    counter!(DEAD_LETTERS, "queue" => queue.to_owned()).increment(1);
}

/// The best FAQ candidate's calibrated confidence (0 to 1) for a question.
pub fn faq_confidence(channel: &str, confidence: f32) {
    histogram!(FAQ_CONFIDENCE, "channel" => channel.to_owned()).record(f64::from(confidence));
}

/// How long the worker took over one message, milliseconds.
pub fn processing_time(channel: &str, elapsed: std::time::Duration) {
    histogram!(PROCESSING_MS, "channel" => channel.to_owned())
        .record(elapsed.as_secs_f64() * 1000.0);
}
