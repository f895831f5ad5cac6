//! `switchboard bench pipeline`: the whole local pipeline in one process, as
//! `serve` runs it (ingress, the embedded queue with its durability, the
//! workers, a 1,000-entry knowledge base), on a temporary database, with the
//! replies caught in process instead of going to a provider. Prints JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use serde_json::{Value, json};
use switchboard_app::Config;
use switchboard_app::local::Local;
use switchboard_domain::{Clock, OutboundReply, ReplySender, SendError, SystemClock};
use switchboard_faq::{KbEntry, KnowledgeBase};
use switchboard_pipeline::outbound::OutboundSender;
use tokio::sync::{Notify, Semaphore, watch};

use super::{BenchError, memory};
use crate::runner;

/// The channel the customers write on (the shortest signature check: the
/// figures are the pipeline's, not a provider's).
const CHANNEL: &str = "telegram";
const KB_ENTRIES: usize = 1_000;

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Messages in all (at least 1).
    #[arg(long, default_value_t = 5_000, value_parser = switchboard_faq::cli::at_least_one)]
    pub messages: usize,
    /// Customers writing them (each writes in turn; conversations run in
    /// parallel), at least 1; more than `--messages` count as that many.
    #[arg(long, default_value_t = 500, value_parser = switchboard_faq::cli::at_least_one)]
    pub customers: usize,
    /// Webhook requests in flight at once (at least 1).
    #[arg(long, default_value_t = 64, value_parser = switchboard_faq::cli::at_least_one)]
    pub concurrency: usize,
    /// Jobs the conversation worker and the outbound sender each have under
    /// way at once (default: as configured, `[workers] concurrency` and
    /// `outbound_concurrency`).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Offer the messages at this steady rate (messages/s, spread evenly)
    /// instead of all at once: the latencies are then those of a server
    /// keeping up, not of a queue building up. Without it, `--concurrency`
    /// requests are in flight until every message is offered.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of messages per second"
        )),
    }
}

/// When each conversation's replies arrived, in order.
#[derive(Default)]
struct RecordingSender {
    replies: Mutex<HashMap<String, Vec<Instant>>>,
    count: std::sync::atomic::AtomicUsize,
    arrived: Notify,
}

#[async_trait]
impl ReplySender for RecordingSender {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let now = Instant::now();
        if let Ok(mut replies) = self.replies.lock() {
            replies
                .entry(reply.conversation_id.clone())
                .or_default()
                .push(now);
        }
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.arrived.notify_waiters();
        Ok(())
    }
}

/// A knowledge base of support questions ("How do I change my delivery
/// address?") and what the customers ask (the same with other words).
fn knowledge_base() -> (KnowledgeBase, Vec<String>) {
    const ACTIONS: [(&str, &str); 20] = [
        ("change", "update"),
        ("cancel", "stop"),
        ("track", "follow"),
        ("return", "send back"),
        ("pay for", "settle"),
        ("reset", "renew"),
        ("find", "locate"),
        ("delete", "remove"),
        ("add", "include"),
        ("check", "verify"),
        ("upgrade", "improve"),
        ("share", "send"),
        ("download", "save"),
        ("print", "get a paper copy of"),
        ("repair", "fix"),
        ("replace", "swap"),
        ("book", "reserve"),
        ("transfer", "move"),
        ("split", "divide"),
        ("report", "flag"),
    ];
    const THINGS: [&str; 50] = [
        "delivery address",
        "order",
        "parcel",
        "invoice",
        "password",
        "gift card",
        "receipt",
        "account",
        "payment card",
        "subscription",
        "warranty",
        "loyalty points",
        "coupon",
        "shipping label",
        "email address",
        "phone number",
        "wishlist",
        "bank details",
        "appointment",
        "booking",
        "voucher",
        "refund",
        "membership",
        "basket",
        "review",
        "profile picture",
        "newsletter",
        "username",
        "billing plan",
        "device",
        "licence",
        "ticket",
        "reservation",
        "seat",
        "table",
        "delivery slot",
        "return label",
        "store credit",
        "payment plan",
        "security question",
        "two-factor login",
        "shared account",
        "family plan",
        "gift wrap",
        "order note",
        "pickup point",
        "pre-order",
        "backorder",
        "rental",
        "trade-in",
    ];
    let mut entries = Vec::with_capacity(KB_ENTRIES);
    let mut queries = Vec::with_capacity(KB_ENTRIES);
    for (index, (action, thing)) in THINGS
        .iter()
        .flat_map(|thing| ACTIONS.iter().map(move |action| (action, thing)))
        .enumerate()
    {
        let (verb, synonym) = action;
        // A product name of its own per entry, so that every question has a
        // confident answer: the bench measures the pipeline, not the
        // matcher's recall (the FAQ benchmark does that).
        const SYLLABLES: [&str; 10] = [
            "ka", "lo", "mi", "ter", "pan", "dor", "shi", "vel", "ro", "na",
        ];
        let product: String = [index % 10, index / 10 % 10, index / 100 % 10]
            .iter()
            .map(|&digit| SYLLABLES[digit])
            .collect();
        entries.push(KbEntry {
            id: format!("faq-{index:04}"),
            question: format!("How do I {verb} my {thing} for the {product} plan?"),
            answer: format!(
                "To {verb} your {thing} on {product}, open Settings and follow the steps."
            ),
            paraphrases: vec![
                format!("Can I {verb} the {thing} of {product}?"),
                format!("I want to {synonym} my {product} {thing}"),
            ],
            ..KbEntry::default()
        });
        queries.push(format!(
            "How do I {verb} my {thing} for the {product} plan?"
        ));
    }
    (KnowledgeBase { entries }, queries)
}

/// CPU seconds this process has used, in all and on the store's writer
/// thread: figures the machine's other load does not change (wall-clock
/// rates do, on a shared machine).
fn cpu_seconds() -> (f64, f64) {
    let ticks = 100.0; // USER_HZ, the unit of /proc's times on Linux
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which is in parentheses.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let (user, system): (f64, f64) =
                (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
            Some((user + system) / ticks)
        })
        .unwrap_or(0.0);
    // schedstat's first field: nanoseconds on a CPU.
    let writer = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "sqlite-writer")
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1e9;
    (process, writer)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e3
}

pub async fn run(args: &PipelineArgs) -> Result<Value, BenchError> {
    let fail = |what: &str, error: &dyn std::fmt::Display| {
        BenchError::Pipeline(format!("{what}: {error}"))
    };
    let (messages, customers) = (
        args.messages.max(1),
        args.customers.clamp(1, args.messages.max(1)),
    );
    let dir = tempfile::tempdir().map_err(|e| fail("temporary directory", &e))?;
    let (kb, queries) = knowledge_base();
    let kb_path = dir.path().join("kb.jsonl");
    let jsonl: String = kb
        .entries
        .iter()
        .map(|entry| serde_json::to_string(entry).unwrap_or_default() + "\n")
        .collect();
    std::fs::write(&kb_path, jsonl).map_err(|e| fail("writing the knowledge base", &e))?;

    let mut config = Config::default();
    config.data_dir = dir.path().to_owned();
    config.knowledge_base = Some(kb_path);
    if let Some(jobs) = args.workers {
        config.workers.concurrency = jobs;
        config.workers.outbound_concurrency = jobs;
    }
    let mut local = Local::open(config).await.map_err(|e| fail("opening", &e))?;
    let recorder = Arc::new(RecordingSender::default());
    let outbound = &local.app.outbound;
    local.app.outbound = Arc::new(OutboundSender {
        replies: recorder.clone(),
        sessions: outbound.sessions.clone(),
        idempotency: outbound.idempotency.clone(),
        payloads: outbound.payloads.clone(),
        clock: outbound.clock.clone(),
        retry: outbound.retry,
    });
    let local = Arc::new(local);
    let (stop, stopped) = watch::channel(false);
    let workers = runner::spawn_workers(&local, stopped)
        .await
        .map_err(|e| fail("starting the workers", &e))?;
    let channel =
        local.app.channels.get(CHANNEL).cloned().ok_or_else(|| {
            BenchError::Pipeline(format!("no {CHANNEL} channel in development mode"))
        })?;

    // Signed requests, made before the clock starts; ids unique per message.
    let now_ms = SystemClock.now_ms();
    let mut requests: Vec<Vec<switchboard_channels::WebhookRequest>> = vec![Vec::new(); customers];
    for n in 0..messages {
        let customer = n % customers;
        let text = &queries[(n * 7_919) % queries.len()];
        let mut request =
            channel.sample(&format!("{}", 500_000 + customer), text, now_ms + n as i64);
        channel
            .sign(&mut request, now_ms)
            .map_err(|e| fail("signing", &e))?;
        requests[customer].push(request);
    }

    // When each accepted message was sent, and when it was accepted.
    let accepted_at: Arc<Mutex<HashMap<String, Vec<(Instant, Instant)>>>> = Arc::default();
    let ingress_ms: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let writes_before = local.store.write_stats();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(customers);
    // Message n is offered at n / rate seconds; a customer's messages go in
    // order, each once the one before is answered (as a provider does).
    let offered_at = |n: usize| {
        args.rate.map(|rate| {
            tokio::time::Instant::from_std(started) + Duration::from_secs_f64(n as f64 / rate)
        })
    };
    for (customer, batch) in requests.into_iter().enumerate() {
        let (local, accepted_at, ingress_ms, refused, gate) = (
            local.clone(),
            accepted_at.clone(),
            ingress_ms.clone(),
            refused.clone(),
            gate.clone(),
        );
        let conversation = format!("{}", 500_000 + customer);
        let schedule: Vec<_> = (0..batch.len())
            .map(|k| offered_at(k * customers + customer))
            .collect();
        senders.push(tokio::spawn(async move {
            for (request, at) in batch.into_iter().zip(schedule) {
                let _permit = match at {
                    Some(at) => {
                        tokio::time::sleep_until(at).await;
                        None
                    }
                    None => match gate.acquire().await {
                        Ok(permit) => Some(permit),
                        Err(_) => return,
                    },
                };
                let sent = Instant::now();
                let reply = local.app.ingress.handle(CHANNEL, request).await;
                let done = Instant::now();
                if reply.status().is_success() {
                    if let Ok(mut accepted) = accepted_at.lock() {
                        accepted
                            .entry(conversation.clone())
                            .or_default()
                            .push((sent, done));
                    }
                    if let Ok(mut times) = ingress_ms.lock() {
                        times.push(done - sent);
                    }
                } else {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    for sender in senders {
        sender.await.map_err(|e| fail("a sender task", &e))?;
    }
    let all_accepted = started.elapsed();
    let accepted_count = messages - refused.load(std::sync::atomic::Ordering::SeqCst);

    // Every accepted message earns one reply.
    let deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(messages as u64 * 20);
    while recorder.count.load(std::sync::atomic::Ordering::SeqCst) < accepted_count
        && Instant::now() < deadline
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), recorder.arrived.notified()).await;
    }
    let all_replied = started.elapsed();
    let writes = local.store.write_stats();
    let cpu_after = cpu_seconds();
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }

    // Accept-to-reply, matched in order within each conversation.
    let mut latencies = Vec::with_capacity(messages);
    let mut from_offer = Vec::with_capacity(messages);
    let replies = recorder
        .replies
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let accepted = accepted_at.lock().map(|a| a.clone()).unwrap_or_default();
    for (conversation, accepts) in &accepted {
        let Some(answers) = replies.get(conversation) else {
            continue;
        };
        for ((sent, accept), answer) in accepts.iter().zip(answers) {
            // The reply may come before the webhook's answer (the worker
            // starts once the message is queued): then 0.
            latencies.push(answer.saturating_duration_since(*accept));
            from_offer.push(answer.saturating_duration_since(*sent));
        }
    }
    latencies.sort();
    from_offer.sort();
    let mut ingress = ingress_ms.lock().map(|t| t.clone()).unwrap_or_default();
    ingress.sort();
    let replied = recorder.count.load(std::sync::atomic::Ordering::SeqCst);
    Ok(json!({
        "messages": messages,
        "customers": customers,
        "kb_entries": KB_ENTRIES,
        "concurrency": args.concurrency,
        // Offered messages/s (`--rate`); null: all at once.
        "rate": args.rate,
        "workers": local.app.config.workers.concurrency,
        "accepted": accepted_count,
        "replied": replied,
        "messages_per_s": replied as f64 / all_replied.as_secs_f64(),
        "accepted_per_s": accepted_count as f64 / all_accepted.as_secs_f64(),
        "accept_to_reply_ms": { "p50": percentile(&latencies, 0.50), "p99": percentile(&latencies, 0.99), "max": percentile(&latencies, 1.0) },
        // From the webhook request's start to the reply: what the customer waits.
        "request_to_reply_ms": { "p50": percentile(&from_offer, 0.50), "p99": percentile(&from_offer, 0.99), "max": percentile(&from_offer, 1.0) },
        "ingress_ms": { "p50": percentile(&ingress, 0.50), "p99": percentile(&ingress, 0.99) },
        "seconds": all_replied.as_secs_f64(),
        // Per message: store calls, transactions (one per batch of calls)
        // and fsyncs of the log (each covering every commit before it).
        "store_per_message": {
            "calls": (writes.calls - writes_before.calls) as f64 / messages as f64,
            "transactions": (writes.transactions - writes_before.transactions) as f64 / messages as f64,
            "fsyncs": (writes.fsyncs - writes_before.fsyncs) as f64 / messages as f64,
        },
        // CPU time per message, from the first request to the last reply:
        // the whole process, and the store's writer thread (which no other
        // thread can help). On n free cores the pipeline cannot go faster than
        // n / process or 1 / store_writer messages per millisecond.
        "cpu_ms_per_message": {
            "process": (cpu_after.0 - cpu_before.0) * 1e3 / messages as f64,
            "store_writer": (cpu_after.1 - cpu_before.1) * 1e3 / messages as f64,
        },
        "peak_rss_mb": memory().peak_mb,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knowledge_base_has_a_thousand_distinct_questions() {
        let (kb, queries) = knowledge_base();
        assert_eq!(kb.entries.len(), KB_ENTRIES);
        assert_eq!(queries.len(), KB_ENTRIES);
        let distinct: std::collections::HashSet<_> =
            kb.entries.iter().map(|e| &e.question).collect();
        assert_eq!(distinct.len(), KB_ENTRIES);
    }

    #[test]
    fn a_rate_is_a_positive_number_of_messages_per_second() {
        assert_eq!(parse_rate("2000"), Ok(2000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.50), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
