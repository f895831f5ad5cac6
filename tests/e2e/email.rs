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
