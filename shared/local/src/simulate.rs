//! `switchboard simulate`: posts a correctly signed sample webhook to a
//! running server, so a newcomer can watch the whole loop.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use switchboard_channels::verify::hmac_sha256;
use switchboard_domain::{Clock, SystemClock};

use crate::config::Config;
use crate::dev::DevSecrets;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// telegram, slack, webchat or mailgun.
    #[arg(long)]
    pub channel: String,
    /// What the customer writes.
    #[arg(long)]
    pub text: String,
    /// The customer's id on the channel (an email address for mailgun).
    #[arg(long)]
    pub customer: Option<String>,
    /// Server base URL; defaults to the configured public URL.
    #[arg(long)]
    pub server: Option<String>,
    /// Seconds to wait for the reply (development mode only).
    #[arg(long, default_value_t = 15)]
    pub wait: u64,
}

/// A signed request, ready to post.
pub struct SignedRequest {
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The string value of a channel setting, from the config or development secrets.
fn setting(config: &Config, channel: &str, key: &str) -> anyhow::Result<String> {
    if let Some(value) = config
        .channels
        .0
        .get(channel)
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
    {
        return Ok(value.to_owned());
    }
    if config.is_development() {
        let secrets = DevSecrets::load(&config.data_dir)
            .context("no development secrets yet: start `switchboard serve` first")?;
        let dev = secrets.channel_settings(&config.public_url(), &config.email.from);
        if let Some(value) = dev
            .get(channel)
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
        {
            return Ok(value.to_owned());
        }
    }
    bail!("channel {channel} has no {key} configured")
}

/// Builds the sample webhook a provider would send for this message.
pub fn sample_request(
    config: &Config,
    channel: &str,
    customer: &str,
    text: &str,
    now_secs: i64,
) -> anyhow::Result<SignedRequest> {
    let unique = now_secs * 1000 + i64::from(rand::random::<u16>() % 1000);
    Ok(match channel {
        "telegram" => {
            let customer_id: i64 = customer
                .parse()
                .context("a telegram customer id is a number")?;
            let body = json!({
                "update_id": unique,
                "message": {
                    "message_id": unique % 1_000_000,
                    "from": { "id": customer_id, "is_bot": false, "first_name": "Sam" },
                    "chat": { "id": customer_id, "type": "private", "first_name": "Sam" },
                    "date": now_secs,
                    "text": text,
                }
            });
            SignedRequest {
                content_type: "application/json",
                headers: vec![(
                    "X-Telegram-Bot-Api-Secret-Token".into(),
                    setting(config, "telegram", "secret_token")?,
                )],
                body: body.to_string().into_bytes(),
            }
        }
        "slack" => {
            let body = json!({
                "token": "sample",
                "team_id": "T0SAMPLE",
                "api_app_id": "A0SAMPLE",
                "type": "event_callback",
                "event_id": format!("Ev{unique}"),
                "event_time": now_secs,
                "event": {
                    "type": "message",
                    "channel": format!("D{customer}"),
                    "channel_type": "im",
                    "user": customer,
                    "text": text,
                    "ts": format!("{now_secs}.{:06}", unique % 1_000_000),
                }
            })
            .to_string();
            let secret = setting(config, "slack", "signing_secret")?;
            let timestamp = now_secs.to_string();
            let mac = hmac_sha256(
                secret.as_bytes(),
                &[b"v0:", timestamp.as_bytes(), b":", body.as_bytes()],
            );
            SignedRequest {
                content_type: "application/json",
                headers: vec![
                    ("X-Slack-Request-Timestamp".into(), timestamp),
                    (
                        "X-Slack-Signature".into(),
                        format!("v0={}", hex::encode(mac)),
                    ),
                ],
                body: body.into_bytes(),
            }
        }
        "webchat" => {
            let body = json!({
                "conversation_id": format!("chat-{customer}"),
                "customer_id": customer,
                "message_id": format!("m-{unique}"),
                "text": text,
            })
            .to_string();
            let secret = setting(config, "webchat", "signing_secret")?;
            let timestamp = now_secs.to_string();
            let mac = hmac_sha256(
                secret.as_bytes(),
                &[timestamp.as_bytes(), b".", body.as_bytes()],
            );
            SignedRequest {
                content_type: "application/json",
                headers: vec![
                    ("X-Switchboard-Timestamp".into(), timestamp),
                    (
                        "X-Switchboard-Signature".into(),
                        format!("v1={}", hex::encode(mac)),
                    ),
                ],
                body: body.into_bytes(),
            }
        }
        "mailgun" => {
            let key = setting(config, "mailgun", "signing_key")?;
            let recipient = setting(config, "mailgun", "from_address")
                .unwrap_or_else(|_| config.email.from.clone());
            let timestamp = now_secs.to_string();
            let token = format!("{:050}", unique);
            let signature = hex::encode(hmac_sha256(
                key.as_bytes(),
                &[timestamp.as_bytes(), token.as_bytes()],
            ));
            let message_id = format!("<sample-{unique}@customer.example>");
            let headers = json!([
                ["From", customer],
                ["To", recipient],
                ["Subject", "Question"],
                ["Message-Id", message_id],
            ])
            .to_string();
            let body = form_encode(&[
                ("sender", customer),
                ("from", customer),
                ("recipient", &recipient),
                ("subject", "Question"),
                ("body-plain", text),
                ("stripped-text", text),
                ("message-headers", &headers),
                ("Message-Id", &message_id),
                ("timestamp", &timestamp),
                ("token", &token),
                ("signature", &signature),
            ]);
            SignedRequest {
                content_type: "application/x-www-form-urlencoded",
                headers: vec![],
                body: body.into_bytes(),
            }
        }
        other => bail!("simulate knows telegram, slack, webchat and mailgun, not {other:?}"),
    })
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Posts the sample and, in development mode, waits for and prints the reply.
pub async fn run(config: &Config, args: &SimulateArgs) -> anyhow::Result<()> {
    let default_customer = if args.channel == "mailgun" {
        "customer@example.com"
    } else {
        "10001"
    };
    let customer = args.customer.as_deref().unwrap_or(default_customer);
    let base = args.server.clone().unwrap_or_else(|| config.public_url());
    let request = sample_request(
        config,
        &args.channel,
        customer,
        &args.text,
        SystemClock.now_ms() / 1000,
    )?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let before = dev_reply_count(&client, &base).await;

    let mut post = client
        .post(format!("{base}/webhooks/{}", args.channel))
        .header("content-type", request.content_type)
        .body(request.body);
    for (name, value) in &request.headers {
        post = post.header(name, value);
    }
    let response = post
        .send()
        .await
        .with_context(|| format!("posting to {base}; is `switchboard serve` running?"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("webhook answered {status}: {body}");
    if !status.is_success() {
        bail!("the server refused the webhook");
    }
    let Some(before) = before else {
        println!("(replies go to the configured provider; development mode shows them here)");
        return Ok(());
    };
    if args.channel == "mailgun" {
        println!(
            "email replies are written to {}",
            config.data_dir.join("outbox").display()
        );
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait);
    while std::time::Instant::now() < deadline {
        if let Some(replies) = dev_replies(&client, &base).await
            && replies.len() > before
        {
            for reply in &replies[before..] {
                let text = reply["payload"]["text"].as_str().unwrap_or_default();
                println!(
                    "reply on {}: {text}",
                    reply["channel"].as_str().unwrap_or_default()
                );
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no reply within {} s", args.wait)
}

async fn dev_replies(client: &reqwest::Client, base: &str) -> Option<Vec<Value>> {
    let response = client
        .get(format!("{base}/dev/replies"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let value: Value = response.json().await.ok()?;
    value["replies"].as_array().cloned()
}

async fn dev_reply_count(client: &reqwest::Client, base: &str) -> Option<usize> {
    dev_replies(client, base).await.map(|r| r.len())
}
