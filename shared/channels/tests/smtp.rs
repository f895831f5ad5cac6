//! `SmtpTransport` against a minimal plain-text SMTP server on 127.0.0.1 that
//! records the envelope and the message, and answers `RCPT TO` as told.

use std::sync::{Arc, Mutex};

use switchboard_channels::email::{EmailTransport, SmtpConfig, SmtpTransport, build_reply};
use switchboard_domain::EmailThread;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Default, Clone)]
struct Delivery {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// Serves SMTP sessions until the test ends; `rcpt_reply` is the answer to
/// every `RCPT TO` (e.g. `250 OK`, `550 no such user`, `451 try later`).
async fn start_server(rcpt_reply: &'static str) -> (u16, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let store = deliveries.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let mut current = Delivery::default();
                write.write_all(b"220 localhost test SMTP\r\n").await.ok();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let command = line.trim_end().to_owned();
                    let upper = command.to_ascii_uppercase();
                    let answer: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-localhost\r\n250 8BITMIME".into()
                    } else if let Some(from) = upper.strip_prefix("MAIL FROM:") {
                        current = Delivery {
                            mail_from: from.to_ascii_lowercase(),
                            ..Delivery::default()
                        };
                        "250 OK".into()
                    } else if upper.starts_with("RCPT TO:") {
                        current
                            .rcpt_to
                            .push(command["RCPT TO:".len()..].to_ascii_lowercase());
                        rcpt_reply.into()
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.ok();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        current.data = data;
                        store.lock().unwrap().push(std::mem::take(&mut current));
                        "250 queued".into()
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.ok();
                        return;
                    } else {
                        // RSET, NOOP and anything else.
                        "250 OK".into()
                    };
                    write
                        .write_all(format!("{answer}\r\n").as_bytes())
                        .await
                        .ok();
                }
            });
        }
    });
    (port, deliveries)
}

fn transport(port: u16) -> SmtpTransport {
    let config: SmtpConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": port, "tls": "none", "timeout_secs": 5
    }))
    .unwrap();
    SmtpTransport::new(config).unwrap()
}

fn message() -> lettre::Message {
    let thread = EmailThread {
        message_id: "<m1@customer.example>".into(),
        references: Vec::new(),
        subject: "Where is my order?".into(),
        reply_to: "Jane <jane@customer.example>".into(),
        to: "support@shop.example".into(),
    };
    build_reply(
        &thread,
        "support@shop.example",
        "It ships today.",
        "shop.example",
        None,
        true,
    )
    .unwrap()
}

#[tokio::test]
async fn smtp_delivers_the_reply() {
    let (port, deliveries) = start_server("250 OK").await;
    transport(port).send(message()).await.unwrap();
    let delivered = deliveries.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].mail_from, "<support@shop.example>");
    assert_eq!(delivered[0].rcpt_to, ["<jane@customer.example>"]);
    let data = &delivered[0].data;
    assert!(
        data.contains("Subject: Re: Where is my order?\r\n"),
        "{data}"
    );
    assert!(data.contains("In-Reply-To: <m1@customer.example>\r\n"));
    assert!(data.contains("Auto-Submitted: auto-replied\r\n"));
    assert!(data.contains("It ships today."));
}

#[tokio::test]
async fn smtp_rejections_are_classified() {
    let (port, _) = start_server("550 5.1.1 no such user").await;
    let error = transport(port).send(message()).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("550"));

    let (port, _) = start_server("451 4.3.0 try again later").await;
    assert!(
        transport(port)
            .send(message())
            .await
            .unwrap_err()
            .is_transient()
    );
}

#[tokio::test]
async fn smtp_connection_failure_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(
        transport(port)
            .send(message())
            .await
            .unwrap_err()
            .is_transient()
    );
}
