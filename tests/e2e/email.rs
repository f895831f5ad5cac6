use std::time::Duration;

use switchboard_e2e::*;

fn mailgun_headers() -> Vec<(&'static str, String)> {
    vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )]
}

#[tokio::test(flavor = "multi_thread")]
async fn mailgun_inbound_mail_gets_a_threaded_automated_reply() {
    let server = Server::start(Options::default()).await;
    let form = mailgun_form(
        "Dana <dana@customer.test>",
        "Returns",
        "Hello, how do I return an item I bought last week?",
        "<first-1@customer.test>",
        &[("References", "<root-0@customer.test>")],
    );
    let (status, _) = server
        .post("/webhooks/mailgun", &mailgun_headers(), form)
        .await;
    assert_eq!(status, 200);

    let mails = server.smtp.wait_for(1).await;
    let reply = &mails[0];
    assert_eq!(
        mail_header(reply, "X-Envelope-To").as_deref(),
        Some("dana@customer.test")
    );
    assert!(
        mail_header(reply, "From")
            .unwrap()
            .contains(SUPPORT_ADDRESS)
    );
    assert_eq!(
        mail_header(reply, "Subject").as_deref(),
        Some("Re: Returns")
    );
    assert_eq!(
        mail_header(reply, "In-Reply-To").as_deref(),
        Some("<first-1@customer.test>")
    );
    assert_eq!(
        mail_header(reply, "References").as_deref(),
        Some("<root-0@customer.test> <first-1@customer.test>")
    );
    assert_eq!(
        mail_header(reply, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(mail_header(reply, "Message-ID").is_some());
    let text = mail_text(reply);
    assert!(text.contains("30 days"), "the FAQ answer: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn automated_bulk_and_list_mail_gets_no_reply() {
    let server = Server::start(Options::default()).await;
    let robots = [
        ("Auto-Submitted", "auto-replied"),
        ("List-Id", "<news.shop.test>"),
        ("Precedence", "bulk"),
    ];
    for (n, (name, value)) in robots.iter().enumerate() {
        let form = mailgun_form(
            "robot@customer.test",
            "Out of office",
            "How do I return an item?",
            &format!("<robot-{n}@customer.test>"),
            &[(name, value)],
        );
        let (status, _) = server
            .post("/webhooks/mailgun", &mailgun_headers(), form)
            .await;
        assert_eq!(status, 200, "accepted, then ignored ({name})");
    }
    // Mail from a mailer daemon and from ourselves: no reply either.
    for (n, from) in ["MAILER-DAEMON@customer.test", SUPPORT_ADDRESS]
        .iter()
        .enumerate()
    {
        let form = mailgun_form(
            from,
            "Returns",
            "How do I return an item?",
            &format!("<loop-{n}@x.test>"),
            &[],
        );
        assert_eq!(
            server
                .post("/webhooks/mailgun", &mailgun_headers(), form)
                .await
                .0,
            200
        );
    }
    // A person's mail afterwards is answered, and it is the only reply.
    let form = mailgun_form(
        "erin@customer.test",
        "Returns",
        "How do I return an item?",
        "<person@customer.test>",
        &[],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), form)
            .await
            .0,
        200
    );
    let mails = server.smtp.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails_after = server.smtp.messages();
    assert_eq!(
        mails_after.len(),
        1,
        "only the person is answered: {mails_after:?}"
    );
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("erin@customer.test")
    );
    assert_eq!(server.queued_total("inbound").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_mailgun_posts_are_refused() {
    let server = Server::start(Options::default()).await;
    let form = mailgun_form(
        "mallory@customer.test",
        "Hi",
        "How do I return an item?",
        "<forged@x.test>",
        &[],
    )
    .replace("signature=", "signature=00");
    let (status, body) = server
        .post("/webhooks/mailgun", &mailgun_headers(), form)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(server.queued_total("inbound").await, 0);
}

/// A channel's sample mail from `customer`, signed as its provider would.
fn provider_mail(name: &str, customer: &str, text: &str) -> switchboard_channels::WebhookRequest {
    remember_text(text);
    let channel = channel(name);
    let now_ms = now_secs() * 1000;
    let mut request = channel.sample(customer, text, now_ms);
    *request.uri_mut() = format!("/webhooks/{name}").parse().unwrap();
    channel.sign(&mut request, now_ms).unwrap();
    request
}

/// The mails sent to `address` so far.
fn mails_to(server: &Server, address: &str) -> Vec<String> {
    server
        .smtp
        .messages()
        .into_iter()
        .filter(|mail| mail_header(mail, "X-Envelope-To").as_deref() == Some(address))
        .collect()
}

async fn wait_for_mails_to(server: &Server, address: &str, count: usize) -> Vec<String> {
    eventually(
        &format!("{count} mail(s) to {address}"),
        Duration::from_secs(30),
        || {
            let mails = mails_to(server, address);
            (mails.len() >= count).then_some(mails)
        },
    )
    .await
}

/// The conversation token in one of our replies' `Message-ID` (`<sb.{token}.…@…>`).
fn conversation_token(mail: &str) -> String {
    let id = mail_header(mail, "Message-ID").unwrap();
    let token = id.trim_start_matches("<sb.").split('.').next().unwrap();
    assert_eq!(token.len(), 20, "{id}");
    token.to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sendgrid_postmark_and_ses_mail_get_threaded_automated_replies() {
    let server = Server::start(Options::default()).await;
    for name in ["postmark", "sendgrid", "ses"] {
        let customer = format!("{name}-customer@customer.test");
        let request = provider_mail(
            name,
            &customer,
            "Hello, how do I return an item I bought last week?",
        );
        let (status, body) = server.post_request(&request).await;
        assert_eq!(status, 200, "{name}: {body}");
        // The provider's retry of the same delivery is queued once.
        assert_eq!(server.post_request(&request).await.0, 200, "{name}: retry");
        let reply = &wait_for_mails_to(&server, &customer, 1).await[0];
        assert_eq!(
            mail_header(reply, "Subject").as_deref(),
            Some("Re: Question"),
            "{name}"
        );
        assert!(
            mail_header(reply, "In-Reply-To")
                .unwrap()
                .starts_with("<sample-"),
            "{name}"
        );
        assert_eq!(
            mail_header(reply, "Auto-Submitted").as_deref(),
            Some("auto-replied")
        );
        let token = conversation_token(reply);
        assert_eq!(
            mail_header(reply, "Reply-To").as_deref(),
            Some(format!("support+{token}@shop.test").as_str()),
            "{name}"
        );
        assert!(
            mail_text(reply).contains("30 days"),
            "{name}: the FAQ answer"
        );
        // Unsigned, the same post is refused.
        let mut forged = request.clone();
        forged.headers_mut().remove("authorization");
        let forged = match name {
            "ses" => {
                let body = String::from_utf8(forged.body().to_vec()).unwrap();
                *forged.body_mut() = body.replace("return an item", "return a car").into();
                forged
            }
            _ => forged,
        };
        assert_eq!(server.post_request(&forged).await.0, 401, "{name}: forged");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in ["postmark", "sendgrid", "ses"] {
        let customer = format!("{name}-customer@customer.test");
        assert_eq!(
            mails_to(&server, &customer).len(),
            1,
            "{name}: one reply, retries deduplicated"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outlook_reply_without_ids_joins_the_existing_conversation() {
    let server = Server::start(Options::default()).await;
    let customer = "jane@customer.test";
    let first = mailgun_form(
        "Jane Doe <jane@customer.test>",
        "Order 42",
        "Hello, how do I return an item I bought last week?",
        "<first-42@mail.customer.test>",
        &[],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), first)
            .await
            .0,
        200
    );
    let first_reply = wait_for_mails_to(&server, customer, 1).await.remove(0);
    let token = conversation_token(&first_reply);
    // Outlook: `RE:` subject, no In-Reply-To, no References.
    let outlook = mailgun_form(
        "Jane Doe <jane@customer.test>",
        "RE: Order 42",
        "And how long does shipping take?",
        "<AM6PR01MB42@eurprd01.prod.outlook.test>",
        &[
            ("Thread-Topic", "Order 42"),
            ("X-Mailer", "Microsoft Outlook 16.0"),
        ],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), outlook)
            .await
            .0,
        200
    );
    let replies = wait_for_mails_to(&server, customer, 2).await;
    let second = replies
        .iter()
        .find(|mail| {
            mail_header(mail, "In-Reply-To").as_deref()
                == Some("<AM6PR01MB42@eurprd01.prod.outlook.test>")
        })
        .expect("the Outlook mail is answered");
    assert_eq!(conversation_token(second), token, "same conversation");
    assert_eq!(
        mail_header(second, "Subject").as_deref(),
        Some("Re: Order 42")
    );
    // Another subject is another conversation.
    let other = mailgun_form(
        customer,
        "Invoice",
        "How long does shipping take?",
        "<inv@customer.test>",
        &[],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), other)
            .await
            .0,
        200
    );
    let replies = wait_for_mails_to(&server, customer, 3).await;
    let third = replies
        .iter()
        .find(|mail| mail_header(mail, "In-Reply-To").as_deref() == Some("<inv@customer.test>"))
        .unwrap();
    assert_ne!(conversation_token(third), token);
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_office_and_list_mail_through_postmark_get_no_reply() {
    let server = Server::start(Options::default()).await;
    let customer = "away@customer.test";
    let postmark = channel("postmark");
    let now_ms = now_secs() * 1000;
    // Postmark gives the subject beside the headers: a responder's title
    // there counts as much as a header does.
    for (n, (header, subject)) in [
        (Some(("Auto-Submitted", "auto-replied")), None),
        (Some(("List-Id", "<news.customer.test>")), None),
        (Some(("X-Failed-Recipients", "gone@customer.test")), None),
        (
            Some((
                "Content-Type",
                "multipart/report; report-type=delivery-status",
            )),
            None,
        ),
        (None, Some("Automatic reply: How do I return an item?")),
    ]
    .iter()
    .enumerate()
    {
        let mut request = postmark.sample(customer, "How do I return an item?", now_ms);
        let mut body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        if let Some((name, value)) = header {
            body["Headers"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({ "Name": name, "Value": value }));
        }
        if let Some(subject) = subject {
            body["Subject"] = (*subject).into();
        }
        body["MessageID"] = format!("robot-{n}").into();
        *request.body_mut() = body.to_string().into();
        *request.uri_mut() = "/webhooks/postmark".parse().unwrap();
        postmark.sign(&mut request, now_ms).unwrap();
        assert_eq!(
            server.post_request(&request).await.0,
            200,
            "accepted, then ignored"
        );
    }
    let person = provider_mail(
        "postmark",
        "person@customer.test",
        "How do I return an item?",
    );
    assert_eq!(server.post_request(&person).await.0, 200);
    wait_for_mails_to(&server, "person@customer.test", 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(mails_to(&server, customer).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_eleventh_automated_reply_to_one_sender_in_a_day_is_not_sent() {
    let server = Server::start(Options::default()).await;
    let customer = "flood@customer.test";
    for n in 0..11 {
        let form = mailgun_form(
            customer,
            &format!("Question {n}"),
            "Hello, how do I return an item I bought last week?",
            &format!("<flood-{n}@customer.test>"),
            &[],
        );
        assert_eq!(
            server
                .post("/webhooks/mailgun", &mailgun_headers(), form)
                .await
                .0,
            200
        );
    }
    wait_for_mails_to(&server, customer, 10).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.queue("inbound").await["done"].as_u64() != Some(11) {
        assert!(std::time::Instant::now() < deadline, "all eleven processed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        mails_to(&server, customer).len(),
        10,
        "the cap is ten a day"
    );
    // The eleventh shows as withheld, not delivered, to the agents.
    let export = server
        .get_json(
            &format!("/api/customers/mailgun:{customer}/export"),
            ADMIN_TOKEN,
        )
        .await;
    let states: Vec<String> = export["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["deliveries"].as_array().cloned().unwrap_or_default())
        .map(|d| d["state"].as_str().unwrap().to_owned())
        .collect();
    let count = |state: &str| states.iter().filter(|s| *s == state).count();
    assert_eq!(
        (count("delivered"), count("withheld")),
        (10, 1),
        "{states:?}"
    );
    // Another sender is still answered.
    let other = mailgun_form(
        "calm@customer.test",
        "Returns",
        "How do I return an item?",
        "<calm@customer.test>",
        &[],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), other)
            .await
            .0,
        200
    );
    wait_for_mails_to(&server, "calm@customer.test", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_reply_goes_to_our_own_address_or_a_machine_whatever_reply_to_says() {
    let server = Server::start(Options::default()).await;
    // (From, Reply-To): where the reply would go is ours or a machine's.
    let cases = [
        ("dana@customer.test", Some(SUPPORT_ADDRESS)),
        (
            "dana@customer.test",
            Some("Mail System <MAILER-DAEMON@mx.customer.test>"),
        ),
        ("dana@customer.test", Some("support+orders@shop.test")),
        ("support+x@shop.test", None),
    ];
    for (n, (from, reply_to)) in cases.iter().enumerate() {
        let extra: Vec<(&str, &str)> = reply_to.iter().map(|r| ("Reply-To", *r)).collect();
        let form = mailgun_form(
            from,
            "Returns",
            "How do I return an item?",
            &format!("<reply-to-{}@x.test>", "n".repeat(n + 1)),
            &extra,
        );
        assert_eq!(
            server
                .post("/webhooks/mailgun", &mailgun_headers(), form)
                .await
                .0,
            200
        );
    }
    // A person's Reply-To is honoured, and that is the only reply.
    let form = mailgun_form(
        "dana@customer.test",
        "Returns",
        "How do I return an item?",
        "<reply-to-person-at-home@customer.test>",
        &[("Reply-To", "Dana <dana@home.test>")],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &mailgun_headers(), form)
            .await
            .0,
        200
    );
    let mails = server.smtp.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server.smtp.messages().len(),
        1,
        "{:?}",
        server.smtp.messages()
    );
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("dana@home.test")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postmark_customers_answer_is_threaded_under_its_own_message_id() {
    let server = Server::start(Options::default()).await;
    let customer = "threads@customer.test";
    let first = provider_mail(
        "postmark",
        customer,
        "Hello, how do I return an item I bought last week?",
    );
    assert_eq!(server.post_request(&first).await.0, 200);
    let ours = wait_for_mails_to(&server, customer, 1).await.remove(0);
    let first_id = mail_header(&ours, "In-Reply-To").unwrap();
    let our_id = mail_header(&ours, "Message-ID").unwrap();
    // The customer answers; Postmark's `MessageID` is its own, the mail's
    // ids are among `Headers`.
    let mut answer = provider_mail("postmark", customer, "And how long does shipping take?");
    let mut body: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
    body["Subject"] = "Re: Question".into();
    body["Headers"] = serde_json::json!([
        { "Name": "Message-ID", "Value": "<answer-2@customer.test>" },
        { "Name": "In-Reply-To", "Value": our_id },
        { "Name": "References", "Value": format!("{first_id} {our_id}") },
    ]);
    *answer.body_mut() = body.to_string().into();
    assert_eq!(server.post_request(&answer).await.0, 200);
    let replies = wait_for_mails_to(&server, customer, 2).await;
    let next = replies
        .iter()
        .find(|mail| {
            mail_header(mail, "In-Reply-To").as_deref() == Some("<answer-2@customer.test>")
        })
        .expect("the answer is answered under its own Message-ID");
    assert_eq!(
        mail_header(next, "References"),
        Some(format!("{first_id} {our_id} <answer-2@customer.test>"))
    );
    assert_eq!(conversation_token(next), conversation_token(&ours));
}
