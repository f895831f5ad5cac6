//! The load script's driver (`tests/load.sh`): N signed messages from M
//! customers (Telegram and Slack, every second customer on each) to a real
//! `switchboard serve` on loopback, with provider retries mixed in (the same
//! update or event id resent, racing the first delivery), while the server is
//! killed (SIGKILL) and restarted K times. Then it waits for the queues to
//! drain and prints accepted, answered, duplicates (sent and dropped), lost
//! and duplicate replies; it exits 1 if a message is lost or answered twice.
//!
//! `load [--messages N] [--customers M] [--duplicate-rate R] [--kills K] [--seed S]`
//!
//! Telegram's and Slack's APIs take no idempotency key: when a kill falls
//! while a reply is being sent, nothing can tell whether the provider got it.
//! Such a reply is not sent again: it goes to the dead letters as
//! `delivery_uncertain` (alarmed, shown failed on the conversation). Those
//! are counted apart; they are not lost (a person can see them), and every
//! other dead letter, lost message or duplicate reply fails the run.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard_e2e::*;

/// Questions the FAQ answers with confidence: one reply each, never a hand-over.
const QUESTIONS: [&str; 3] = [
    "How long does shipping take?",
    "What are your opening hours?",
    "How do I return an item?",
];

struct Settings {
    messages: usize,
    customers: usize,
    duplicate_rate: f64,
    kills: usize,
    seed: u64,
}

fn settings() -> Result<Settings, String> {
    let mut settings = Settings {
        messages: 300,
        customers: 40,
        duplicate_rate: 0.1,
        kills: 2,
        seed: now_secs() as u64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
        };
        match flag.as_str() {
            "--messages" => settings.messages = number()? as usize,
            "--customers" => settings.customers = number()? as usize,
            "--kills" => settings.kills = number()? as usize,
            "--seed" => settings.seed = number()?,
            "--duplicate-rate" => {
                settings.duplicate_rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|rate| (0.0..=1.0).contains(rate))
                    .ok_or_else(|| format!("--duplicate-rate: {value:?} is not between 0 and 1"))?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if settings.customers == 0 || settings.messages < settings.customers {
        return Err("--messages must be at least --customers, and both above 0".into());
    }
    Ok(settings)
}

/// xorshift64*, so that a run's choices replay from its printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn chance(&mut self, rate: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= rate && rate > 0.0
    }
}

/// One customer's conversation: the chat (Telegram) or DM channel (Slack).
#[derive(Clone)]
enum Customer {
    Telegram { chat: i64 },
    Slack { user: String, channel: String },
}

impl Customer {
    fn new(index: usize) -> Self {
        match index % 2 {
            0 => Customer::Telegram {
                chat: 90_000 + index as i64,
            },
            _ => Customer::Slack {
                user: format!("ULOAD{index}"),
                channel: format!("DLOAD{index}"),
            },
        }
    }

    /// Where the stand-in records its replies, and the key of its conversation.
    fn conversation(&self) -> String {
        match self {
            Customer::Telegram { chat } => format!("telegram:{chat}"),
            Customer::Slack { channel, .. } => format!("slack:{channel}"),
        }
    }

    /// The webhook path, headers and body of message `id`, signed now (a
    /// provider signs each attempt anew).
    fn request(&self, id: u64, text: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
        let (name, body) = match self {
            Customer::Telegram { chat } => (
                "telegram",
                telegram_update(id as i64, *chat, text).to_string(),
            ),
            Customer::Slack { user, channel } => (
                "slack",
                slack_event(
                    &format!("EvLoad{id}"),
                    user,
                    channel,
                    &format!("1700000000.{id:06}"),
                    text,
                ),
            ),
        };
        let request = signed_request(name, "application/json", &[], body, now_secs() * 1000);
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        (
            format!("/webhooks/{name}"),
            headers,
            request.body().to_vec(),
        )
    }
}

#[derive(Default)]
struct Counters {
    /// Deliveries answered 2xx (first deliveries and resends).
    accepted: AtomicUsize,
    /// Attempts refused (connection refused while down, 503) and tried again.
    retried: AtomicUsize,
}

/// Posts as a provider does: again until the answer is 2xx.
async fn deliver(
    client: &reqwest::Client,
    base: &str,
    customer: &Customer,
    id: u64,
    text: &str,
    counters: &Counters,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (path, headers, body) = customer.request(id, text);
        let mut request = client.post(format!("{base}{path}")).body(body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            Ok(response) if response.status().is_client_error() => {
                return Err(format!("{path}: refused with {}", response.status()));
            }
            _ => counters.retried.fetch_add(1, Ordering::SeqCst),
        };
        if Instant::now() > deadline {
            return Err(format!("{path}: not accepted within 180 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replies the stand-in received, per conversation.
fn replies(server: &Server) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for reply in server.standin.requests() {
        let key = if reply.path.ends_with("/sendMessage") {
            reply.body["chat_id"]
                .as_i64()
                .map(|chat| format!("telegram:{chat}"))
        } else if reply.path.ends_with("/chat.postMessage") {
            reply.body["channel"]
                .as_str()
                .map(|channel| format!("slack:{channel}"))
        } else {
            None
        };
        if let Some(key) = key {
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

/// (answered, lost, duplicate replies): each message earns exactly one reply.
fn tally(sent: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) -> (usize, usize, usize) {
    sent.iter()
        .fold((0, 0, 0), |(answered, lost, repeated), (key, n)| {
            let got = got.get(key).copied().unwrap_or(0);
            (
                answered + got.min(*n),
                lost + n.saturating_sub(got),
                repeated + got.saturating_sub(*n),
            )
        })
}

/// Items not yet done in any queue: (waiting or in flight, dead).
fn unfinished(server: &Server) -> (u64, u64) {
    server.queue_stats().iter().fold((0, 0), |(open, dead), q| {
        let n = |k: &str| q[k].as_u64().unwrap_or(0);
        (open + n("ready") + n("in_flight"), dead + n("dead"))
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(problem) => {
            eprintln!("load: {problem}");
            return ExitCode::from(2);
        }
    };
    let mut random = Random(settings.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    println!(
        "load: {} messages from {} customers (Telegram and Slack), duplicate rate {}, {} kills, seed {}",
        settings.messages,
        settings.customers,
        settings.duplicate_rate,
        settings.kills,
        settings.seed
    );
    let mut server = Server::start(Options::default()).await;
    let counters = Arc::new(Counters::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let started = Instant::now();

    // Every customer writes their messages in order, a short random pause
    // apart; a message chosen as a duplicate is resent at once, racing the
    // first delivery, as a provider's retry after a timeout does.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates_sent = 0usize;
    let mut senders = Vec::new();
    for index in 0..settings.customers {
        let customer = Customer::new(index);
        let count = settings.messages / settings.customers
            + usize::from(index < settings.messages % settings.customers);
        sent.insert(customer.conversation(), count);
        let plan: Vec<(u64, bool, u64)> = (0..count)
            .map(|n| {
                let duplicate = random.chance(settings.duplicate_rate);
                duplicates_sent += usize::from(duplicate);
                let id = 900_000 + (index * 10_000 + n) as u64;
                (id, duplicate, 20 + random.below(300))
            })
            .collect();
        let (base, counters, client) = (server.base.clone(), counters.clone(), client.clone());
        senders.push(tokio::spawn(async move {
            for (n, (id, duplicate, pause_ms)) in plan.into_iter().enumerate() {
                let text = QUESTIONS[(index + n) % QUESTIONS.len()];
                let first = deliver(&client, &base, &customer, id, text, &counters);
                if duplicate {
                    let again = deliver(&client, &base, &customer, id, text, &counters);
                    let (first, again) = tokio::join!(first, again);
                    first?;
                    again?;
                } else {
                    first.await?;
                }
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            Ok::<(), String>(())
        }));
    }

    // Kill and restart at even steps through the deliveries.
    let total = settings.messages + duplicates_sent;
    for kill in 1..=settings.kills {
        let at = total * kill / (settings.kills + 1);
        while counters.accepted.load(Ordering::SeqCst) < at
            && senders.iter().any(|sender| !sender.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill();
        println!(
            "killed (SIGKILL) after {} accepted deliveries, at {:.1} s",
            counters.accepted.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(random.below(500))).await;
        server.restart(Options::default()).await;
    }
    let mut failures = Vec::new();
    for sender in senders {
        match sender.await {
            Ok(Ok(())) => {}
            Ok(Err(problem)) => failures.push(problem),
            Err(panic) => failures.push(format!("a sender panicked: {panic}")),
        }
    }
    let accepted_after = started.elapsed();

    // Drained: every message answered and nothing waiting or in flight.
    let deadline = Instant::now() + Duration::from_secs(120 + settings.messages as u64 / 10);
    loop {
        let (_, lost, _) = tally(&sent, &replies(&server));
        let (open, dead) = unfinished(&server);
        if (lost as u64 <= dead && open == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_after = started.elapsed();
    // A late repeat (a job taken over after its lease) would show up now.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let got = replies(&server);
    let (answered, lost, duplicate_replies) = tally(&sent, &got);
    let (open, dead) = unfinished(&server);
    let log = server.log();
    let dropped = log.matches("duplicate dropped").count();
    let uncertain = log.matches("\"delivery_uncertain\":true").count();
    println!(
        "sent: {} messages + {duplicates_sent} duplicates",
        settings.messages
    );
    println!(
        "accepted: {} deliveries answered 2xx ({} attempts refused while the server was down, retried)",
        counters.accepted.load(Ordering::SeqCst),
        counters.retried.load(Ordering::SeqCst)
    );
    println!("answered: {answered} of {}", settings.messages);
    println!(
        "duplicates: sent {duplicates_sent}, dropped {dropped} (at ingress; includes deliveries a kill cut off after queueing)"
    );
    // A reply dead-lettered as uncertain is not lost: it waits for a person.
    let lost = (lost as u64).saturating_sub(dead.min(uncertain as u64));
    println!("lost: {lost}");
    println!("duplicate replies: {duplicate_replies}");
    println!(
        "uncertain: {uncertain} (interrupted while sending: dead-lettered and shown failed, not sent twice)"
    );
    println!("queues: {open} waiting or in flight, {dead} dead letters");
    println!(
        "time: all accepted after {:.1} s, drained after {:.1} s ({:.1} messages/s)",
        accepted_after.as_secs_f64(),
        drained_after.as_secs_f64(),
        settings.messages as f64 / drained_after.as_secs_f64()
    );
    for problem in &failures {
        println!("failure: {problem}");
    }
    for (conversation, n) in &sent {
        let got = got.get(conversation).copied().unwrap_or(0);
        if got != *n {
            println!("uneven: {conversation}: {n} messages, {got} replies");
        }
    }
    let ok = failures.is_empty()
        && lost == 0
        && duplicate_replies == 0
        && open == 0
        && dead <= uncertain as u64;
    if !ok {
        // The server's log and database, for a look at what went wrong.
        let kept = std::env::temp_dir().join(format!("switchboard-load-{}", settings.seed));
        let _ = std::fs::create_dir_all(&kept);
        let _ = std::fs::copy(
            server.dir.path().join("server.log"),
            kept.join("server.log"),
        );
        for suffix in ["", "-wal"] {
            let name = format!("switchboard.sqlite3{suffix}");
            let _ = std::fs::copy(
                server.database_path().with_file_name(&name),
                kept.join(name),
            );
        }
        println!("the server's log and database: {}", kept.display());
    }
    println!("load: {}", if ok { "passed" } else { "FAILED" });
    match ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
