//! Speed of the agents' waiting list with 1,000 conversations waiting for a
//! person (an agents' console polls it), on the embedded SQLite store:
//! `GET /api/conversations?status=waiting` minus HTTP, i.e. the store's
//! summaries read, sorted VIP first then oldest, and the first 100 shaped.
//!
//! The console's poll asks for all 1,000, serialized: the second figure.
//!
//! `cargo bench -p switchboard-pipeline --bench waiting_list`
//! (`--profile dev` for a quick upper bound without a release build)

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_domain::*;
use switchboard_pipeline::desk::AgentDesk;
use switchboard_sqlite::SqliteStore;

const WAITING: usize = 1_000;
/// Turns per conversation: a long-ish exchange, which the list must not read.
const TURNS: usize = 40;

fn waiting_session(i: usize) -> Session {
    let message: InboundMessage = serde_json::from_value(serde_json::json!({
        "channel": "telegram", "account_id": "bot", "customer_id": i.to_string(),
        "conversation_id": i.to_string(), "provider_message_id": format!("m{i}"),
        "sent_at_ms": 0, "kind": "text", "text": "hi"
    }))
    .unwrap();
    let mut session = Session::start(&message, Language::En, 0);
    for turn in 0..TURNS {
        session.push(Turn {
            role: if turn % 2 == 0 {
                Role::Customer
            } else {
                Role::Bot
            },
            text: "Where is my order? It was due last week and the tracking page says nothing. "
                .repeat(3),
            at_ms: (i * 100 + turn) as i64,
            message_id: Some(format!("m{i}-{turn}")),
            faq_entry: None,
            confidence: None,
            agent: None,
        });
    }
    session.status = SessionStatus::Escalated;
    session.handover = Some(Handover {
        at_ms: (i * 100) as i64,
        tier: if i.is_multiple_of(10) {
            Tier::Vip
        } else {
            Tier::Regular
        },
        reason: EscalationReason::NoConfidentMatch,
        priority: i.is_multiple_of(10),
        claimed_by: None,
        agent_answered_at_ms: None,
        breached_at_ms: None,
        first_response_due_ms: None,
        resolved_at_ms: None,
        candidates: Vec::new(),
    });
    session
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile_dir();
    let store = SqliteStore::open(&dir.join("bench.sqlite3")).unwrap();
    runtime.block_on(async {
        for i in 0..WAITING {
            store.save(&waiting_session(i)).await.unwrap();
        }
    });
    let desk = AgentDesk {
        sessions: Arc::new(store.clone()),
        customers: Arc::new(store.clone()),
        feedback: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        clock: Arc::new(SystemClock),
        sla: SlaPolicy::default(),
        csat: Default::default(),
    };
    let list = runtime.block_on(desk.waiting(100)).unwrap();
    assert_eq!((list.total, list.conversations.len()), (WAITING, 100));
    assert_eq!(list.conversations[0].tier, "vip");
    let mut group = c.benchmark_group("waiting_list");
    group.sample_size(30);
    group.bench_function("1000 waiting, first 100", |b| {
        b.iter(|| runtime.block_on(desk.waiting(100)).unwrap())
    });
    // What the agents' console asks for on every poll: all of them, as JSON.
    group.bench_function("1000 waiting, all 1000 as JSON (the console's poll)", |b| {
        b.iter(|| serde_json::to_vec(&runtime.block_on(desk.waiting(1000)).unwrap()).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("switchboard-waiting-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

criterion_group!(benches, bench);
criterion_main!(benches);
