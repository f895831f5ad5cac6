//! The agents' API against `switchboard serve`: the waiting list, claims,
//! replies queued once per `Idempotency-Key` and delivered by the outbound
//! sender (through provider outages, or into the dead letters), customers'
//! tiers, clear refusals, and the OpenAPI document checked by
//! openapi-spec-validator and schemathesis.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::{
    AGENT_TOKEN, Options, Server, eventually, mail_header, mail_text, mailgun_form, remember_text,
    telegram_bot_token, telegram_update, until,
};

/// An agents' API call with the agent token; answers the status and JSON.
async fn api(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(AGENT_TOKEN);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn conversation(chat_id: i64) -> String {
    let bot = telegram_bot_token();
    format!("telegram:{}:{chat_id}", bot.split(':').next().unwrap())
}

/// Posts a customer's message and waits until its conversation waits for a person.
async fn hand_over(server: &Server, update_id: i64, chat_id: i64, text: &str) -> Value {
    let (status, _) = server
        .post_telegram(&telegram_update(update_id, chat_id, text))
        .await;
    assert_eq!(status, 200);
    let key = conversation(chat_id);
    waiting_one(server, |c| c["key"] == key.as_str()).await
}

/// Waits until the waiting list shows a conversation that `matches`.
async fn waiting_one(server: &Server, matches: impl Fn(&Value) -> bool) -> Value {
    let matches = &matches;
    until(
        "the hand-over listed",
        Duration::from_secs(20),
        || async move {
            let (_, list) = api(
                server,
                "GET",
                "/api/conversations?status=waiting",
                &[],
                None,
            )
            .await;
            let all = list["conversations"].as_array()?;
            all.iter().find(|c| matches(c)).cloned()
        },
    )
    .await
}

/// The delivery of the agent's reply `reply_id`, as the conversation shows it.
async fn delivery(server: &Server, key: &str, reply_id: &str) -> Value {
    let (status, view) = api(
        server,
        "GET",
        &format!("/api/conversations/{key}"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    view["turns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["message_id"] == reply_id)
        .map(|t| t["delivery"].clone())
        .unwrap_or(Value::Null)
}

async fn delivered_state(server: &Server, key: &str, reply_id: &str, state: &str) -> Value {
    until(
        &format!("reply {reply_id} {state}"),
        Duration::from_secs(30),
        || async {
            let delivery = delivery(server, key, reply_id).await;
            (delivery["state"] == state).then_some(delivery)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_posted_twice_with_one_key_is_delivered_once_and_a_second_claim_conflicts() {
    let server = Server::start(Options::default()).await;
    let listed = hand_over(&server, 71_001, 7101, "I want to talk to a human please").await;
    let key = conversation(7101);
    assert_eq!(listed["reason"], "asked_for_human");
    assert_eq!(listed["tier"], "new");
    assert_eq!(listed["customer"], "telegram:7101");
    assert!(
        listed["first_response_due_ms"].as_i64().unwrap()
            > listed["handed_over_at_ms"].as_i64().unwrap()
    );
    assert!(
        listed["preview"]
            .as_str()
            .unwrap()
            .contains("talk to a human")
    );

    // Claims: the first agent, again (fine), another agent (409).
    let claim_path = format!("/api/conversations/{key}/claim");
    let claim = |agent: &'static str| {
        api(
            &server,
            "POST",
            &claim_path,
            &[],
            Some(json!({ "agent": agent })),
        )
    };
    let (status, view) = claim("lee").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["handover"]["claimed_by"], "lee");
    assert_eq!(claim("lee").await.0, 200);
    let (status, refused) = claim("ann").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("conflict")),
        "{refused}"
    );

    // A reply needs an Idempotency-Key; with one, twice, it is queued once.
    let text = "Lee here: your refund is on its way.";
    remember_text(text);
    let path = format!("/api/conversations/{key}/reply");
    let (status, answer) = api(&server, "POST", &path, &[], Some(json!({ "text": text }))).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request")),
        "{answer}"
    );
    let reply = || {
        api(
            &server,
            "POST",
            &path,
            &[("idempotency-key", "ticket-7101-1")],
            Some(json!({ "text": text, "agent": "lee" })),
        )
    };
    let (first, second) = tokio::join!(reply(), reply());
    let accepted: Vec<&Value> = [&first, &second]
        .into_iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, v)| v)
        .collect();
    assert!(!accepted.is_empty(), "{first:?} {second:?}");
    let (status, again) = reply().await;
    assert_eq!(status, 202, "{again}");
    let reply_id = again["reply_id"].as_str().unwrap().to_owned();
    for answer in accepted {
        assert_eq!(answer["reply_id"], reply_id.as_str(), "the same reply");
    }
    let delivered = delivered_state(&server, &key, &reply_id, "delivered").await;
    assert_eq!(delivered["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<_> = server
        .telegram_replies(7101)
        .into_iter()
        .filter(|r| r.body["text"] == text)
        .collect();
    assert_eq!(sent.len(), 1, "delivered once");
    let (_, again) = reply().await;
    assert_eq!(again["state"], "delivered", "a repeat shows the state now");
    // The key reused for another text is refused, and nothing more is sent.
    let (status, refused) = api(
        &server,
        "POST",
        &path,
        &[("idempotency-key", "ticket-7101-1")],
        Some(json!({ "text": "Lee again: and a voucher.", "agent": "lee" })),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("already used for another reply"),
        "{refused}"
    );

    // The conversation: transcript, hand-over answered, still with a person.
    let (_, view) = api(
        &server,
        "GET",
        &format!("/api/conversations/{key}"),
        &[],
        None,
    )
    .await;
    assert_eq!(view["status"], "escalated");
    assert!(view["handover"]["agent_answered_at_ms"].is_i64(), "{view}");
    assert_eq!(view["handover"]["waiting_ms"], 0);
    let roles: Vec<&str> = view["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["customer", "bot", "agent"]);
    // The transcript keeps what the customer received, and who wrote it.
    assert_eq!(view["turns"][2]["text"], text, "{view}");
    assert_eq!(view["turns"][2]["agent"], "lee", "{view}");
    // The bot's reply too: sent at once, recorded by then or by the retry
    // when it went out before the worker had saved the new conversation.
    let bot_reply = view["turns"][1]["message_id"].as_str().unwrap().to_owned();
    delivered_state(&server, &key, &bot_reply, "delivered").await;

    // Resolving takes it off the list.
    let (status, view) = api(
        &server,
        "POST",
        &format!("/api/conversations/{key}/resolve"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("resolved")),
        "{view}"
    );
    let (_, list) = api(
        &server,
        "GET",
        "/api/conversations?status=waiting",
        &[],
        None,
    )
    .await;
    assert_eq!(list["total"], 0, "{list}");

    // Clear refusals.
    for (method, path, body, expected) in [
        (
            "GET",
            "/api/conversations/telegram:1:nobody".to_owned(),
            None,
            404,
        ),
        ("GET", "/api/conversations/not-a-key".to_owned(), None, 400),
        (
            "GET",
            "/api/conversations?status=open".to_owned(),
            None,
            400,
        ),
        ("GET", "/api/conversations?limit=0".to_owned(), None, 400),
        ("DELETE", "/api/conversations".to_owned(), None, 405),
        (
            "POST",
            format!("/api/conversations/{key}/claim"),
            Some(json!({ "agent": 5 })),
            400,
        ),
        (
            "PUT",
            "/api/customers/telegram:7101".to_owned(),
            Some(json!({ "tier": "gold" })),
            422,
        ),
        (
            "PUT",
            "/api/customers/no-colon".to_owned(),
            Some(json!({ "tier": "vip" })),
            400,
        ),
        (
            "PUT",
            "/api/customers/telegram:7101".to_owned(),
            Some(json!({ "level": "vip" })),
            400,
        ),
    ] {
        let (status, answer) = api(&server, method, &path, &[], body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["reason"].is_string(), "{method} {path}: {answer}");
    }
    let (status, _) = api(
        &server,
        "POST",
        "/api/conversations/telegram:1:nobody/reply",
        &[("idempotency-key", "k")],
        Some(json!({ "text": "hi" })),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_the_provider_refuses_twice_is_delivered_once_and_one_it_always_refuses_shows_as_failed()
 {
    let server = Server::start(Options {
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    hand_over(&server, 72_001, 7201, "I want to talk to a human").await;
    let key = conversation(7201);
    // The bot's notice is out before the provider starts refusing.
    eventually("the hand-over notice", Duration::from_secs(20), || {
        (!server.telegram_replies(7201).is_empty()).then_some(())
    })
    .await;
    let path = format!("/api/conversations/{key}/reply");

    // 503, 503, then 200: delivered once, on the third attempt.
    server.standin.fail_next(2);
    let text = "Lee here: checking your order now.";
    remember_text(text);
    let (status, accepted) = api(
        &server,
        "POST",
        &path,
        &[("idempotency-key", "a")],
        Some(json!({ "text": text })),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let reply_id = accepted["reply_id"].as_str().unwrap();
    let delivered = delivered_state(&server, &key, reply_id, "delivered").await;
    assert_eq!(delivered["attempts"], 3, "{delivered}");
    assert_eq!(server.standin.refused_while_down(), 2);
    let sent = server
        .telegram_replies(7201)
        .into_iter()
        .filter(|r| r.body["text"] == text)
        .count();
    assert_eq!(sent, 1);

    // Always refused: three attempts, then the dead letters, shown as failed.
    server.standin.set_down(true);
    let text = "Lee here: one more thing.";
    remember_text(text);
    let (status, accepted) = api(
        &server,
        "POST",
        &path,
        &[("idempotency-key", "b")],
        Some(json!({ "text": text })),
    )
    .await;
    assert_eq!(status, 202);
    let reply_id = accepted["reply_id"].as_str().unwrap();
    let failed = delivered_state(&server, &key, reply_id, "failed").await;
    // Three attempts (a later trial of the dead letter may add one).
    assert!(failed["attempts"].as_u64().unwrap() >= 3, "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("telegram"),
        "{failed}"
    );
    let stats = server.queue_stats();
    let outbound = stats.iter().find(|q| q["queue"] == "outbound").unwrap();
    assert_eq!(outbound["dead_lettered_total"], 1, "{outbound}");
    assert!(server.log().contains("\"alarm\":\"dead_letter\""));
    server.standin.set_down(false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vip_set_through_the_api_is_escalated_at_once_and_listed_first() {
    let server = Server::start(Options::default()).await;
    // A regular customer waits first.
    hand_over(&server, 73_001, 7301, "I want to talk to a human").await;
    // Another customer, answered by the bot, is made a VIP.
    let (status, _) = server
        .post_telegram(&telegram_update(
            73_002,
            7302,
            "What are your opening hours?",
        ))
        .await;
    assert_eq!(status, 200);
    eventually("answered", Duration::from_secs(20), || {
        (!server.telegram_replies(7302).is_empty()).then_some(())
    })
    .await;
    let (status, stored) = api(
        &server,
        "PUT",
        "/api/customers/telegram:7302",
        &[],
        Some(json!({ "tier": "vip" })),
    )
    .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored,
        json!({ "customer": "telegram:7302", "tier": "vip" })
    );

    // Their next question the FAQ cannot answer goes to a person at once.
    let listed = hand_over(
        &server,
        73_003,
        7302,
        "Do you sell replacement parts for the 1987 model?",
    )
    .await;
    assert_eq!(listed["tier"], "vip");
    assert_eq!(listed["reason"], "vip_unanswered");
    assert_eq!(listed["priority"], true);
    let (_, list) = api(
        &server,
        "GET",
        "/api/conversations?status=waiting",
        &[],
        None,
    )
    .await;
    let keys: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [conversation(7302), conversation(7301)],
        "VIP first, then the oldest"
    );
    // Made a VIP while waiting: the older of two VIPs, now first.
    let (status, _) = api(
        &server,
        "PUT",
        "/api/customers/telegram:7301",
        &[],
        Some(json!({ "tier": "vip" })),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = api(
        &server,
        "GET",
        "/api/conversations?status=waiting",
        &[],
        None,
    )
    .await;
    let firsts: Vec<(&str, &str)> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["tier"].as_str().unwrap()))
        .collect();
    let (first, second) = (conversation(7301), conversation(7302));
    assert_eq!(firsts, [(first.as_str(), "vip"), (second.as_str(), "vip")]);
    // The VIP's ticket goes to the priority address, marked VIP. (7301's
    // explicit ask for a person is urgent, so its ticket went there too.)
    let mails = server.smtp.wait_for(2).await;
    let vip = mails
        .iter()
        .find(|m| {
            mail_header(m, "X-Envelope-To").as_deref() == Some("vip-agents@shop.test")
                && mail_header(m, "X-Switchboard-Conversation").as_deref() == Some(second.as_str())
        })
        .expect("the VIP ticket at the priority address");
    assert!(mail_text(vip).contains("Tier:              vip"), "{vip}");
}

/// The served OpenAPI document validates, and schemathesis, generating
/// requests from it with an agent token, finds no 5xx
/// (`tests/services/api_check.py`).
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_validates_and_generated_requests_find_no_server_error() {
    let server = Server::start(Options::default()).await;
    hand_over(&server, 74_001, 7401, "I want to talk to a human").await;
    let python = std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/services/api_check.py");
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(base)
            .env("SWITCHBOARD_API_TOKEN", AGENT_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Item 7a: an agent's email reply is a person's: threaded like the bot's,
/// but without the automatic-reply headers the bot's replies carry.
#[tokio::test(flavor = "multi_thread")]
async fn an_agents_email_reply_is_not_marked_automatic() {
    let server = Server::start(Options::default()).await;
    let form = mailgun_form(
        "Erin <erin@customer.test>",
        "Broken blender",
        "I want to talk to a human about my blender",
        "<erin-1@customer.test>",
        &[],
    );
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let (status, _) = server.post("/webhooks/mailgun", &headers, form).await;
    assert_eq!(status, 200);
    let listed = waiting_one(&server, |c| c["customer"] == "mailgun:erin@customer.test").await;
    let to_erin = |mails: &[String]| -> Vec<String> {
        mails
            .iter()
            .filter(|m| mail_header(m, "X-Envelope-To").as_deref() == Some("erin@customer.test"))
            .cloned()
            .collect()
    };
    // The bot's notice that a person will answer: automatic.
    let notice = until("the bot's notice", Duration::from_secs(20), || async {
        to_erin(&server.smtp.messages()).first().cloned()
    })
    .await;
    assert_eq!(
        mail_header(&notice, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );

    let text = "Erin, Lee here: a new blender is on its way.";
    remember_text(text);
    let key = listed["key"].as_str().unwrap();
    let (status, accepted) = api(
        &server,
        "POST",
        &format!("/api/conversations/{key}/reply"),
        &[("idempotency-key", "erin-1")],
        Some(json!({ "text": text, "agent": "Lee" })),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let replies = until("the agent's mail", Duration::from_secs(20), || async {
        let mails = to_erin(&server.smtp.messages());
        (mails.len() == 2).then_some(mails)
    })
    .await;
    let reply = replies
        .iter()
        .find(|m| mail_text(m).contains("new blender"))
        .unwrap();
    assert_eq!(mail_header(reply, "Auto-Submitted"), None, "{reply}");
    assert_eq!(
        mail_header(reply, "X-Auto-Response-Suppress"),
        None,
        "{reply}"
    );
    assert_eq!(
        mail_header(reply, "In-Reply-To").as_deref(),
        Some("<erin-1@customer.test>")
    );
    assert_eq!(
        mail_header(reply, "Subject").as_deref(),
        Some("Re: Broken blender")
    );
}

/// Issue 17: a conversation shows the customer's earlier ones. An email
/// customer gets one conversation per thread; each thread lists the other,
/// newest first, by its first line, and another customer's thread is not
/// among them.
#[tokio::test(flavor = "multi_thread")]
async fn an_email_customers_other_threads_are_listed_with_a_conversation() {
    let server = Server::start(Options::default()).await;
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let mut keys = Vec::new();
    for (from, subject, text, id) in [
        (
            "Erin <erin@customer.test>",
            "Broken kettle",
            "I want to talk to a human about my kettle",
            "<erin-kettle@customer.test>",
        ),
        (
            "Finn <finn@customer.test>",
            "Late parcel",
            "I want to talk to a human about my parcel",
            "<finn-parcel@customer.test>",
        ),
        (
            "Erin <erin@customer.test>",
            "Wrong invoice",
            "I want to talk to a human about my invoice",
            "<erin-invoice@customer.test>",
        ),
    ] {
        let form = mailgun_form(from, subject, text, id, &[]);
        let (status, _) = server.post("/webhooks/mailgun", &headers, form).await;
        assert_eq!(status, 200);
        let listed = waiting_one(&server, |c| {
            c["preview"] == text && !keys.contains(&c["key"])
        })
        .await;
        keys.push(listed["key"].clone());
    }
    let (kettle, invoice) = (keys[0].as_str().unwrap(), keys[2].as_str().unwrap());
    assert_ne!(kettle, invoice, "two threads, two conversations");

    let earlier = |key: &str| {
        let path = format!("/api/conversations/{key}");
        let server = &server;
        async move {
            let (status, view) = api(server, "GET", &path, &[], None).await;
            assert_eq!(status, 200, "{view}");
            view["earlier"].as_array().unwrap().clone()
        }
    };
    let from_invoice = earlier(invoice).await;
    assert_eq!(from_invoice.len(), 1, "{from_invoice:?}");
    assert_eq!(from_invoice[0]["key"], kettle);
    assert_eq!(
        from_invoice[0]["first_line"],
        "I want to talk to a human about my kettle"
    );
    assert_eq!(from_invoice[0]["status"], "escalated");
    assert_eq!(from_invoice[0]["channel"], "mailgun");
    let from_kettle = earlier(kettle).await;
    assert_eq!(from_kettle.len(), 1, "{from_kettle:?}");
    assert_eq!(from_kettle[0]["key"], invoice);

    // Resolved, the kettle thread is still listed, as resolved.
    let (status, _) = api(
        &server,
        "POST",
        &format!("/api/conversations/{kettle}/resolve"),
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(earlier(invoice).await[0]["status"], "resolved");
    // Finn sees none of Erin's.
    assert!(earlier(keys[1].as_str().unwrap()).await.is_empty());
}
