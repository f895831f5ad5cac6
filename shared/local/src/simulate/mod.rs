//! `switchboard simulate`: posts a correctly signed sample webhook to a
//! running server, so a newcomer can watch the whole loop. The request is the
//! channel's own sample, signed with the channel's own scheme.

mod reply;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use switchboard_app::Config;
use switchboard_app::local::DevSecrets;
use switchboard_channels::{ChannelDeps, SharedChannel, Verified, registry};
use switchboard_domain::{Clock, SessionStatus, SessionStore, SystemClock};
use switchboard_sqlite::SqliteStore;

use crate::output::Stdout;
use reply::{Addressee, reply_text};

/// The exit status when no reply to the simulated message came in time.
pub const NO_REPLY_STATUS: u8 = 3;

/// The exit status of bad usage, as clap's.
const USAGE_STATUS: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 the reply was printed (or the conversation is with a \
    person, so the bot stays quiet); 1 an error (server refused or unreachable); 2 bad usage \
    (an empty --text, or a --customer the channel does not accept); 3 no reply to this customer's conversation within --wait seconds (the message may have been \
    handed over or dropped)."
)]
pub struct SimulateArgs {
    /// The channel, as in /webhooks/{channel} (see README: Channels).
    #[arg(long)]
    pub channel: String,
    /// What the customer writes (not empty: no channel delivers an empty message).
    #[arg(long, value_parser = not_blank)]
    pub text: String,
    /// The customer's id on the channel (an email address for email channels).
    #[arg(long)]
    pub customer: Option<String>,
    /// Server base URL; defaults to the configured public URL.
    #[arg(long)]
    pub server: Option<String>,
    /// Seconds to wait for the reply (development mode only).
    #[arg(long, default_value_t = 15)]
    pub wait: u64,
}

/// `--text`: a blank message is a typo; the channels drop it unanswered.
fn not_blank(text: &str) -> Result<String, String> {
    match text.trim().is_empty() {
        true => Err("the customer's message is empty; write what the customer says".into()),
        false => Ok(text.to_owned()),
    }
}

/// The channel as the server runs it: configured, else development mode's.
fn channel(config: &Config, name: &str) -> anyhow::Result<(SharedChannel, Option<DevSecrets>)> {
    if registry::spec(name).is_none() {
        let known: Vec<_> = registry::known_channels().collect();
        bail!("unknown channel {name:?}; one of {}", known.join(", "));
    }
    let (settings, dev) = if config.is_development() {
        let dev = DevSecrets::load(&config.data_dir)
            .context("no development secrets yet: start `switchboard serve` first")?;
        (
            dev.channel_settings(&config.public_url(), &config.email.from),
            Some(dev),
        )
    } else {
        (config.channels.0.clone(), None)
    };
    let settings = settings
        .get(name)
        .with_context(|| format!("channel {name} is not configured"))?;
    let channel = registry::build(name, settings, &ChannelDeps::offline())?;
    Ok((channel, dev))
}

/// Posts the sample and, in development mode, waits for and prints the reply.
pub async fn run(config: &Config, args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let (channel, dev) = channel(config, &args.channel)?;
    let is_email = registry::spec(&args.channel)
        .is_some_and(|spec| spec.function == switchboard_channels::kit::Function::IngressEmail);
    let default_customer = if is_email {
        "customer@example.com"
    } else {
        "10001"
    };
    let customer = args.customer.as_deref().unwrap_or(default_customer);
    let base = args.server.clone().unwrap_or_else(|| config.public_url());
    let now_ms = SystemClock.now_ms();
    let mut request = channel.sample(customer, &args.text, now_ms);
    let with_query = |request: &switchboard_channels::WebhookRequest| {
        let query = request.uri().query().map(|q| format!("?{q}"));
        format!(
            "{base}/webhooks/{}{}",
            args.channel,
            query.unwrap_or_default()
        )
    };
    let public_url = with_query(&request);
    request
        .extensions_mut()
        .insert(switchboard_channels::PublicUrl(public_url));
    channel.sign(&mut request, now_ms)?;
    // Signing may add to the query (WeChat, WeCom) and encrypt the body.
    let url = with_query(&request);
    let verified = channel
        .verify(&request, now_ms)
        .unwrap_or_else(|_| Verified::assume(&request));
    // Our own sample not parsing means the customer id does not fit the
    // channel (Telegram's are numbers, email's are addresses): a usage error.
    let Some(message) = channel
        .parse(&request, &verified)
        .ok()
        .and_then(|mut messages| messages.pop())
    else {
        let kind = if is_email {
            "an email address"
        } else {
            "an id of the channel's own form"
        };
        eprintln!(
            "error: --customer {customer:?} is not a customer {} accepts: give {kind} (for example {default_customer})",
            args.channel
        );
        return Ok(ExitCode::from(USAGE_STATUS));
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = config
        .server
        .admin_token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .or_else(|| dev.as_ref().map(|dev| dev.admin_token.clone()));
    let before = dev_replies(&client, &base, token.as_deref())
        .await
        .map(|r| r.len());
    let mut post = client
        .request(request.method().clone(), &url)
        .body(request.body().clone());
    for (name, value) in request.headers() {
        post = post.header(name, value);
    }
    let response = post
        .send()
        .await
        .with_context(|| format!("posting to {base}; is `switchboard serve` running?"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    writeln!(Stdout, "webhook answered {status}: {body}")?;
    if !status.is_success() {
        bail!("the server refused the webhook");
    }
    let Some(before) = before else {
        writeln!(
            Stdout,
            "(replies go to the configured provider; development mode shows them here)"
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    if is_email {
        let outbox = config.data_dir.join("outbox");
        writeln!(Stdout, "email replies are written to {}", outbox.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Only a reply to this conversation answers it (a timer may answer another meanwhile).
    let addressee = Addressee::of(&message);
    let ours = |record: &&Value| addressee.is_addressed(record);
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait);
    while std::time::Instant::now() < deadline {
        let replies = dev_replies(&client, &base, token.as_deref()).await;
        let new = replies.as_deref().and_then(|replies| replies.get(before..));
        let answers: Vec<&Value> = new.into_iter().flatten().filter(ours).collect();
        if !answers.is_empty() {
            for reply in answers {
                let text = reply_text(&reply["payload"]);
                writeln!(
                    Stdout,
                    "reply on {}: {text}",
                    reply["channel"].as_str().unwrap_or_default()
                )?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Why nothing came: most often, a person has the conversation.
    if let Ok(store) = SqliteStore::open(&config.database_path())
        && let Ok(Some(session)) = store.load(&message.conversation_key()).await
        && session.status == SessionStatus::Escalated
    {
        writeln!(
            Stdout,
            "no reply from the bot: conversation {} is with a person, so the bot only forwards \
             messages to the agents (see {}). An agent answers with POST /api/conversations/{}/reply.",
            session.key,
            config.data_dir.join("outbox").display(),
            session.key
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        Stdout,
        "no reply within {} s (the message may have been handed over or dropped)",
        args.wait
    )?;
    Ok(ExitCode::from(NO_REPLY_STATUS))
}

async fn dev_replies(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Option<Vec<Value>> {
    let mut request = client.get(format!("{base}/dev/replies"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let value: Value = response.json().await.ok()?;
    value["replies"].as_array().cloned()
}
