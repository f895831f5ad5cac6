//! Faults survived: the server killed at random while it works, and the chat
//! API and the SMTP server down for minutes. Every message answered 2xx is
//! answered once, its turns are in the transcript, and nothing is left in the
//! dead letters. Each test prints its figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_domain::{ConversationKey, Role, SessionStore};
use switchboard_e2e::*;
use switchboard_sqlite::SqliteStore;

const QUESTIONS: [&str; 3] = [
    "How long does shipping take?",
    "What are your opening hours?",
    "How do I return an item?",
];

fn bot_id() -> String {
    let token = telegram_bot_token();
    token.split(':').next().unwrap().to_owned()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator, seeded from the clock (the seed is
/// printed, and `SWITCHBOARD_FAULT_SEED` replays a run).
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = env_number("SWITCHBOARD_FAULT_SEED", now_secs() as u64);
        println!("seed {seed}");
        Self(seed.wrapping_mul(6364136223846793005).wrapping_add(1))
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// Posts as a provider does: again and again until the answer is 2xx
/// (connection refused while the server is down, 503 while it cannot queue).
async fn deliver(base: &str, path: &str, headers: &[(&str, String)], body: &[u8]) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut request = client.post(format!("{base}{path}")).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Ok(response) = request.send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deliver_telegram(base: &str, update: &Value) {
    let headers = [
        ("content-type", "application/json".to_owned()),
        (
            "x-telegram-bot-api-secret-token",
            setting("telegram", "secret_token"),
        ),
    ];
    deliver(
        base,
        "/webhooks/telegram",
        &headers,
        update.to_string().as_bytes(),
    )
    .await;
}

fn mailgun_headers() -> [(&'static str, String); 1] {
    [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )]
}

/// Customer and bot turns per Telegram chat, from the server's database.
async fn transcript_turns(server: &Server, chat: i64) -> (usize, usize) {
    let store = SqliteStore::open(&server.database_path()).unwrap();
    let key = ConversationKey::new("telegram", &bot_id(), &chat.to_string());
    let Some(session) = store.load(&key).await.unwrap() else {
        return (0, 0);
    };
    let count = |role| session.turns.iter().filter(|t| t.role == role).count();
    (count(Role::Customer), count(Role::Bot))
}

/// Totals over every queue: (dead now, ever dead-lettered, ever redriven).
fn dead_letters(server: &Server) -> (u64, u64, u64) {
    server.queue_stats().iter().fold((0, 0, 0), |(d, t, r), q| {
        (
            d + q["dead"].as_u64().unwrap(),
            t + q["dead_lettered_total"].as_u64().unwrap(),
            r + q["redriven_total"].as_u64().unwrap(),
        )
    })
}

/// Telegram replies per chat.
fn replies_per_chat(server: &Server) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for reply in server.standin.matching("/sendMessage", |_| true) {
        if let Some(chat) = reply.body["chat_id"].as_i64() {
            *counts.entry(chat).or_default() += 1;
        }
    }
    counts
}

/// (lost, duplicates) given how many messages each chat sent, each of which
/// earns exactly one reply.
fn lost_and_duplicates(
    sent: &BTreeMap<i64, usize>,
    replies: &BTreeMap<i64, usize>,
) -> (usize, usize) {
    sent.iter().fold((0, 0), |(lost, dup), (chat, n)| {
        let got = replies.get(chat).copied().unwrap_or(0);
        (lost + n.saturating_sub(got), dup + got.saturating_sub(*n))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_server_at_random_points_loses_and_repeats_nothing() {
    let messages = env_number("SWITCHBOARD_CRASH_MESSAGES", 300) as i64;
    let kills = env_number("SWITCHBOARD_CRASH_KILLS", 6);
    let customers = 30i64;
    let per_customer = messages / customers;
    let mut random = Random::new();
    let mut server = Server::start(Options::default()).await;
    let started = Instant::now();

    // Each customer writes in turn, about one message a second, while the
    // server is killed (SIGKILL: mid-request, mid-job, mid-send) and restarted.
    let mut senders = Vec::new();
    let mut sent = BTreeMap::new();
    for customer in 0..customers {
        let chat = 70_000 + customer;
        sent.insert(chat, per_customer as usize);
        let base = server.base.clone();
        let pause = Duration::from_millis(600 + random.below(800));
        senders.push(tokio::spawn(async move {
            for n in 0..per_customer {
                let update_id = 700_000 + customer * 1_000 + n;
                let text = QUESTIONS[((customer + n) % 3) as usize];
                deliver_telegram(&base, &telegram_update(update_id, chat, text)).await;
                tokio::time::sleep(pause).await;
            }
        }));
    }
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(700 + random.below(1_800))).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(random.below(500))).await;
        server.restart(Options::default()).await;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted_after = started.elapsed();

    // Everything accepted is answered (or dead-lettered as uncertain): within
    // the visibility timeout (5 s) of the last restart, and a little work.
    let deadline = Instant::now() + Duration::from_secs(60);
    while lost_and_duplicates(&sent, &replies_per_chat(&server)).0 as u64 > dead_letters(&server).0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Late repeats would show up now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let replies = replies_per_chat(&server);
    let (lost, duplicates) = lost_and_duplicates(&sent, &replies);
    let (dead, dead_lettered, _) = dead_letters(&server);
    let mut missing_turns = 0;
    for (chat, n) in &sent {
        let (customer_turns, bot_turns) = transcript_turns(&server, *chat).await;
        missing_turns += n.saturating_sub(customer_turns) + n.saturating_sub(bot_turns);
    }
    // A kill while a reply is being sent leaves nothing that tells whether
    // the provider got it: such a reply is not sent again but dead-lettered
    // as uncertain (and shown failed on the conversation). Nothing repeats.
    let uncertain = server.log().matches("\"delivery_uncertain\":true").count();
    println!(
        "crash test: {kills} kills during {messages} messages from {customers} customers \
         (all accepted after {:.1} s, done after {:.1} s): lost {lost}, duplicate replies \
         {duplicates}, replies interrupted while sending and dead-lettered as uncertain \
         {uncertain}, dead letters {dead} (ever {dead_lettered}), transcript turns missing \
         {missing_turns}",
        accepted_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if duplicates > 0 {
        // What was repeated, for the one who has to find out why.
        for (chat, n) in &sent {
            if replies.get(chat).copied().unwrap_or(0) > *n {
                let texts: Vec<String> = server
                    .standin
                    .matching("/sendMessage", |r| {
                        r.body["chat_id"].as_i64() == Some(*chat)
                    })
                    .iter()
                    .map(|r| {
                        r.body["text"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(60)
                            .collect()
                    })
                    .collect();
                println!("chat {chat}: {texts:#?}");
            }
        }
        let log_path =
            std::env::temp_dir().join(format!("switchboard-crash-{}.log", std::process::id()));
        let _ = std::fs::write(&log_path, server.log());
        println!("server log kept at {}", log_path.display());
    }
    assert_eq!(duplicates, 0, "replies per chat: {replies:?}");
    assert!(
        lost as u64 <= dead && dead <= uncertain as u64,
        "{lost} without a reply, {dead} dead letters, {uncertain} uncertain: {replies:?}"
    );
    assert_eq!(missing_turns, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chat_api_and_smtp_down_for_two_minutes_loses_and_repeats_nothing() {
    let outage = Duration::from_secs(env_number("SWITCHBOARD_OUTAGE_SECS", 120));
    let mut server = Server::start(Options::default()).await;
    server.standin.set_down(true);
    server.smtp.stop();
    let started = Instant::now();

    let mut sent = BTreeMap::new();
    let mut escalated = Vec::new();
    let mut mailed = Vec::new();
    let base = server.base.clone();
    // Messages arrive at the start of the outage and two thirds into it:
    // questions the FAQ answers (a Telegram reply each), questions it cannot
    // (a Telegram reply and an email to the agents), and emails (a reply by SMTP).
    for wave in 0..2i64 {
        if wave == 1 {
            tokio::time::sleep((outage * 2 / 3).saturating_sub(started.elapsed())).await;
        }
        for n in 0..8i64 {
            let chat = 80_000 + wave * 100 + n;
            let update = telegram_update(800_000 + chat, chat, QUESTIONS[(n % 3) as usize]);
            deliver_telegram(&base, &update).await;
            sent.insert(chat, 1);
        }
        for n in 0..2i64 {
            let chat = 81_000 + wave * 100 + n;
            let update = telegram_update(800_000 + chat, chat, "Do you repair blenders from 1987?");
            deliver_telegram(&base, &update).await;
            sent.insert(chat, 1);
            escalated.push(chat);
        }
        for n in 0..3usize {
            let from = format!("customer{wave}{n}@mail.test");
            let form = mailgun_form(
                &from,
                "Returns",
                "How do I return an item?",
                &format!(
                    "<outage-{}@mail.test>",
                    "w".repeat(wave as usize * 3 + n + 1)
                ),
                &[],
            );
            deliver(
                &base,
                "/webhooks/mailgun",
                &mailgun_headers(),
                form.as_bytes(),
            )
            .await;
            mailed.push(from);
        }
    }
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;
    let refused = server.standin.refused_while_down();
    let still_dead = dead_letters(&server);
    server.standin.set_down(false);
    server.smtp.restart();
    let back = Instant::now();

    // Within one backoff step (at most 5 s here) everything goes out.
    let expected_mails = escalated.len() + mailed.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (lost_and_duplicates(&sent, &replies_per_chat(&server)).0 > 0
        || server.smtp.messages().len() < expected_mails)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered_after = back.elapsed();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let replies = replies_per_chat(&server);
    let (lost, duplicates) = lost_and_duplicates(&sent, &replies);
    let mut mail_to: BTreeMap<String, usize> = BTreeMap::new();
    for mail in server.smtp.messages() {
        *mail_to
            .entry(mail_header(&mail, "X-Envelope-To").unwrap_or_default())
            .or_default() += 1;
    }
    let mail_lost = mailed
        .iter()
        .filter(|from| !mail_to.contains_key(from.as_str()))
        .count();
    let mail_duplicates = mailed
        .iter()
        .map(|from| {
            mail_to
                .get(from.as_str())
                .copied()
                .unwrap_or(0)
                .saturating_sub(1)
        })
        .sum::<usize>();
    let agent_mails = mail_to.get("agents@shop.test").copied().unwrap_or(0);
    let (dead, dead_lettered, _) = dead_letters(&server);
    let mut missing_turns = 0;
    for chat in sent.keys() {
        let (customer_turns, bot_turns) = transcript_turns(&server, *chat).await;
        missing_turns += 1usize.saturating_sub(customer_turns) + 1usize.saturating_sub(bot_turns);
    }
    println!(
        "outage test: chat API and SMTP down {:.0} s ({refused} calls refused), {} chat messages, \
         {} emails, {} escalations: lost {}, duplicate replies {}, agent emails {agent_mails}, \
         dead letters {dead} (ever {dead_lettered}; during the outage {still_dead:?}), transcript \
         turns missing {missing_turns}, all out {:.1} s after the outage",
        outage.as_secs_f64(),
        sent.len(),
        mailed.len(),
        escalated.len(),
        lost + mail_lost,
        duplicates + mail_duplicates,
        recovered_after.as_secs_f64()
    );
    assert!(refused > 0, "the outage was real");
    assert_eq!((lost, duplicates), (0, 0), "replies per chat: {replies:?}");
    assert_eq!((mail_lost, mail_duplicates), (0, 0), "mail: {mail_to:?}");
    assert_eq!(agent_mails, escalated.len(), "one email per escalation");
    assert_eq!((dead, dead_lettered), (0, 0));
    assert_eq!(missing_turns, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_the_mail_server_refuses_is_dead_lettered_at_once_and_stays_there() {
    // The reply leaves by the outbound queue: its refusal is dead-lettered there.
    let server = Server::start(Options::default()).await;
    let form = mailgun_form(
        "nosuchuser@customer.test",
        "Returns",
        "How do I return an item?",
        "<refused@customer.test>",
        &[],
    );
    deliver(
        &server.base,
        "/webhooks/mailgun",
        &mailgun_headers(),
        form.as_bytes(),
    )
    .await;
    let outbound = eventually("the refusal dead-lettered", Duration::from_secs(20), || {
        let stats = server.queue_stats();
        let outbound = stats
            .iter()
            .find(|q| q["queue"] == "outbound")
            .unwrap()
            .clone();
        (outbound["dead"] == 1).then_some(outbound)
    })
    .await;
    assert_eq!(outbound["dead_permanent"], 1);
    // Dead letters are tried again every 2 s here, but not this one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = server.log();
    let alarms: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"alarm\":\"dead_letter\""))
        .collect();
    assert_eq!(alarms.len(), 1, "{log}");
    assert!(
        alarms[0].contains("\"attempts\":1") && alarms[0].contains("\"permanent\":true"),
        "at once, after one attempt: {}",
        alarms[0]
    );
    assert!(
        alarms[0].contains("\"cause\":\"send:mailgun\"")
            || alarms[0].contains("\"cause\":\"send:email\""),
        "{}",
        alarms[0]
    );
    let stats = server.queue_stats();
    let outbound = stats.iter().find(|q| q["queue"] == "outbound").unwrap();
    assert_eq!(
        (
            outbound["dead"].as_u64(),
            outbound["redriven_total"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(server.smtp.messages().is_empty());

    // `queue dead-letters` lists it: ids, attempts, times, cause, error; no body.
    let list = |args: &[&str]| {
        std::process::Command::new(switchboard_e2e::switchboard_bin())
            .arg("--config")
            .arg(server.config_path())
            .args(["queue", "dead-letters"])
            .args(args)
            .output()
            .unwrap()
    };
    for args in [&["--json"][..], &["--queue", "outbound"][..]] {
        let out = list(args);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(rows.len(), 1, "{text}");
        let dead = rows[0].as_object().unwrap();
        let mut keys: Vec<&str> = dead.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attempts",
                "cause",
                "dedupe_id",
                "enqueued_at_ms",
                "error",
                "failed_at_ms",
                "group",
                "id",
                "permanent",
                "queue",
                "redrives"
            ]
        );
        assert_eq!(
            (&dead["queue"], &dead["attempts"], &dead["permanent"]),
            (
                &Value::from("outbound"),
                &Value::from(1),
                &Value::from(true)
            )
        );
        assert!(dead["failed_at_ms"].as_i64().unwrap() >= dead["enqueued_at_ms"].as_i64().unwrap());
        assert!(dead["error"].as_str().unwrap().contains("550"), "{text}");
        assert!(!text.contains("return an item"), "{text}");
    }
    let out = list(&["--queue", "inbound"]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let out = list(&["--queue", "outbox"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown queue \"outbox\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_redriven_once_their_cause_has_cleared() {
    // Three attempts (1 s, 2 s apart): a 10 s outage outlasts them.
    let options = Options {
        max_attempts: 3,
        ..Options::default()
    };
    let server = Server::start(options).await;
    server.standin.set_down(true);
    for chat in [90_001i64, 90_002, 90_003] {
        deliver_telegram(&server.base, &telegram_update(chat, chat, QUESTIONS[0])).await;
    }
    let dead = eventually("all three dead-lettered", Duration::from_secs(30), || {
        let (dead, _, _) = dead_letters(&server);
        (dead == 3).then_some(dead)
    })
    .await;
    assert_eq!(dead, 3);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        dead_letters(&server).0,
        3,
        "still down: trials fail, nothing comes back"
    );
    server.standin.set_down(false);
    let (_, ever, redriven) = eventually("dead letters redriven", Duration::from_secs(30), || {
        let figures = dead_letters(&server);
        (figures.0 == 0 && figures.2 == 3).then_some(figures)
    })
    .await;
    assert_eq!((ever, redriven), (3, 3), "visible in queue stats");
    let replies = eventually("every message answered", Duration::from_secs(20), || {
        let replies = replies_per_chat(&server);
        (replies.values().sum::<usize>() >= 3).then_some(replies)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replies_per_chat(&server), replies);
    assert!(replies.values().all(|n| *n == 1), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_email_is_processed() {
    use switchboard_channels::email::{CUT_MARKER, MAX_TEXT_CHARS};
    let server = Server::start(Options::default()).await;
    let customer = "frank@customer.test";
    let filler = "The blender I bought makes noise. ".repeat(3_500);
    // About 100 KiB of text each (sent twice in the form): the customer's
    // text is cut to 20,000 characters, so the queued messages stay small,
    // but a hand-over's ticket carries the whole transcript and every
    // follow-up grows it past what an SQS message holds.
    let mail = |n: usize, ask: &str| {
        mailgun_form(
            customer,
            "Returns",
            &format!("Mail {n}: {ask} {filler}"),
            &format!("<large-{n}@customer.test>"),
            &[("References", "<large-1@customer.test>")],
        )
    };
    let first = mail(1, "How do I return an item?");
    assert!(first.len() > 200 * 1024 && first.len() < 1024 * 1024);
    let (status, body) = server
        .post("/webhooks/mailgun", &mailgun_headers(), first)
        .await;
    assert_eq!(status, 200, "{body}");
    let to_frank = || {
        server
            .smtp
            .messages()
            .into_iter()
            .filter(|m| mail_header(m, "X-Envelope-To").as_deref() == Some(customer))
            .collect::<Vec<String>>()
    };
    let reply = eventually("the reply", Duration::from_secs(30), || {
        to_frank().into_iter().next()
    })
    .await;
    // Our reply's Message-ID carries the conversation: `<sb.{token}.…@…>`.
    let id = mail_header(&reply, "Message-ID").unwrap();
    let token = id.trim_start_matches("<sb.").split('.').next().unwrap();
    let key = ConversationKey::new("mailgun", SUPPORT_ADDRESS, token);

    const MAILS: usize = 7;
    for n in 2..=MAILS {
        let (status, body) = server
            .post(
                "/webhooks/mailgun",
                &mailgun_headers(),
                mail(n, "I want to talk to a human about my return."),
            )
            .await;
        assert_eq!(status, 200, "{n}: {body}");
    }
    // The agents hear of the last follow-up: its ticket went aside and came back.
    let last = format!("Mail {MAILS}: I want to talk to a human");
    eventually(
        "the last follow-up at the agents",
        Duration::from_secs(60),
        || {
            server.smtp.messages().into_iter().find(|m| {
                mail_header(m, "X-Envelope-To").is_some_and(|to| to.contains("agents@"))
                    && mail_text(m).contains(&last)
            })
        },
    )
    .await;
    let log = server.log();
    let aside: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("large body stored aside"))
        .collect();
    assert!(!aside.is_empty(), "a ticket stored aside");
    assert!(
        aside.iter().all(|line| line.contains("escalation")),
        "only tickets are that large now: {aside:?}"
    );
    assert_eq!(dead_letters(&server), (0, 0, 0));

    // Every customer turn is cut at 20,000 characters and says so.
    let store = SqliteStore::open(&server.database_path()).unwrap();
    let session = store.load(&key).await.unwrap().expect("the conversation");
    let turns: Vec<&str> = session
        .turns
        .iter()
        .filter(|t| t.role == Role::Customer)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(turns.len(), MAILS);
    for (n, text) in turns.iter().enumerate() {
        let kept = text.strip_suffix(CUT_MARKER).expect("marked as cut");
        assert!(kept.starts_with(&format!("Mail {}: ", n + 1)), "{n}");
        assert!(kept.chars().count() <= MAX_TEXT_CHARS, "{n}");
    }
}
