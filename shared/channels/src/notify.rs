//! Telling the agents about an escalation: by email with the whole ticket, by
//! a chat incoming webhook with a short summary, or both.
//!
//! Settings (how the application loads them is its business):
//!
//! ```json
//! { "from": "Switchboard <switchboard@shop.example>", "agents": "support-team@shop.example",
//!   "priority_agents": "Duty manager <duty@shop.example>, lead@shop.example" }
//! { "url": "https://hooks.slack.com/services/…" }
//! ```
//!
//! The chat webhook body is `{"text": "…"}`, which Slack and Microsoft Teams
//! incoming webhooks accept as is; for Discord, use the channel webhook URL
//! with `/slack` appended (Discord's Slack-compatible endpoint).

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, To};
use lettre::message::{Mailbox, Mailboxes};
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{AgentNotifier, EscalationTicket, Role, SendError, Tier, Turn};

use crate::ConfigError;
use crate::email::{EmailTransport, domain_of};
use crate::kit::sender::{self as outbound, ApiErrors, STATUS_ONLY, Sender, permanent};

const EMAIL: &str = "agent-email";
const WEBHOOK: &str = "agent-webhook";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifierConfig {
    /// The sender of the notifications.
    pub from: String,
    /// The agents' address, or a comma-separated list.
    pub agents: String,
    /// Where VIP and priority tickets go instead, when set.
    #[serde(default)]
    pub priority_agents: Option<String>,
}

/// Emails each ticket, with the transcript, to the agents.
pub struct EmailAgentNotifier {
    from: Mailbox,
    agents: Mailboxes,
    priority_agents: Option<Mailboxes>,
    message_id_domain: String,
    transport: Arc<dyn EmailTransport>,
}

impl EmailAgentNotifier {
    pub fn new(
        config: EmailNotifierConfig,
        transport: Arc<dyn EmailTransport>,
    ) -> Result<Self, ConfigError> {
        let unusable = |detail: &str| ConfigError::Unusable {
            channel: "notify".into(),
            detail: detail.into(),
        };
        let from: Mailbox = config
            .from
            .trim()
            .parse()
            .map_err(|_| unusable("from is not an email address"))?;
        let mailboxes = |value: &str, what: &str| {
            value
                .trim()
                .parse::<Mailboxes>()
                .ok()
                .filter(|list| list.iter().next().is_some())
                .ok_or_else(|| unusable(&format!("{what} is not a list of email addresses")))
        };
        let agents = mailboxes(&config.agents, "agents")?;
        let priority_agents = config
            .priority_agents
            .as_deref()
            .map(|value| mailboxes(value, "priority_agents"))
            .transpose()?;
        let message_id_domain =
            domain_of(from.email.as_ref()).ok_or_else(|| unusable("from has no domain"))?;
        Ok(Self {
            from,
            agents,
            priority_agents,
            message_id_domain,
            transport,
        })
    }

    /// The notification mail for `ticket`.
    pub fn render(&self, ticket: &EscalationTicket) -> Result<Message, SendError> {
        let urgent = is_urgent(ticket);
        let recipients = match (&self.priority_agents, urgent) {
            (Some(priority), true) => priority.clone(),
            _ => self.agents.clone(),
        };
        let subject = format!(
            "{} Escalation: {} on {}",
            tags(ticket),
            ticket.reason.as_str().replace('_', " "),
            one_line(&ticket.channel)
        );
        let header = |name: &'static str, value: &str| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), one_line(value))
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .mailbox(To::from(recipients))
            .subject(subject)
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::new_v4(),
                self.message_id_domain
            )))
            .raw_header(header("X-Switchboard-Ticket", &ticket.ticket_id))
            .raw_header(header(
                "X-Switchboard-Conversation",
                ticket.conversation.as_str(),
            ))
            // A notification is machine-made: agents' auto-responders must not answer it.
            .raw_header(header("Auto-Submitted", "auto-generated"));
        if let Some(id) = &ticket.correlation_id {
            builder = builder.raw_header(header("X-Switchboard-Correlation", id));
        }
        if urgent {
            builder = builder
                .raw_header(header("X-Priority", "1"))
                .raw_header(header("Importance", "high"));
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(email_body(ticket))
            .map_err(|error| permanent(EMAIL, format!("notification could not be built: {error}")))
    }
}

#[async_trait]
impl AgentNotifier for EmailAgentNotifier {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        let message = self.render(ticket)?;
        let outcome = self.transport.send(message).await;
        match &outcome {
            Ok(()) => {
                tracing::info!(notifier = EMAIL, ticket = %ticket.ticket_id, "agents notified")
            }
            Err(error) => tracing::warn!(
                notifier = EMAIL,
                ticket = %ticket.ticket_id,
                transient = error.is_transient(),
                "agent notification failed"
            ),
        }
        outcome
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatWebhookConfig {
    /// The incoming webhook URL; it is a credential, so it is kept secret.
    pub url: switchboard_domain::Secret,
}

/// Posts a one-paragraph summary of each ticket to a chat incoming webhook.
pub struct ChatWebhookNotifier {
    url: switchboard_domain::Secret,
    http: reqwest::Client,
}

impl ChatWebhookNotifier {
    pub fn new(config: ChatWebhookConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        outbound::http_url("url", config.url.expose()).map_err(|error| ConfigError::Unusable {
            channel: "notify".into(),
            detail: error.0,
        })?;
        Ok(Self {
            url: config.url.expose().trim().into(),
            http,
        })
    }

    /// The chat message for `ticket`.
    pub fn summary(ticket: &EscalationTicket) -> String {
        let mut text = format!(
            "{} Escalation on {}: {}\n",
            tags(ticket),
            one_line(&ticket.channel),
            ticket.reason.describe()
        );
        let _ = writeln!(
            text,
            "Customer: {} · tier {} · reply expected within {}",
            customer(ticket),
            ticket.tier.as_str(),
            one_line(&ticket.expected_response)
        );
        let _ = writeln!(
            text,
            "Ticket {} · conversation {}",
            one_line(&ticket.ticket_id),
            ticket.conversation
        );
        if let Some(id) = &ticket.correlation_id {
            let _ = writeln!(text, "Correlation id: {}", one_line(id));
        }
        // Chat rooms are wider than the agents' mailbox: personal data is masked.
        let question = switchboard_domain::redact::redact(ticket.question.trim());
        for line in outbound::clip(&question, 300).lines() {
            let _ = writeln!(text, "> {line}");
        }
        text.trim_end().to_owned()
    }
}

#[async_trait]
impl AgentNotifier for ChatWebhookNotifier {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        let body = json!({ "text": Self::summary(ticket) });
        let sender = Sender::new(WEBHOOK, self.http.clone(), STATUS_ONLY);
        let call = self.http.post(self.url.expose()).json(&body);
        sender.call(&ticket.ticket_id, call).await.map(|_| ())
    }
}

/// The chat platforms whose incoming webhooks the agents can be notified on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatPlatform {
    /// Slack incoming webhook: Block Kit with a `text` fallback.
    Slack,
    /// Feishu / Lark custom bot: an interactive card; signed with the bot's
    /// secret when it has one (`timestamp` and `sign` in the body).
    Feishu,
    /// DingTalk custom robot: markdown; signed with the robot's `SEC…`
    /// secret when it has one (`timestamp` and `sign` in the URL).
    Dingtalk,
    /// Microsoft Teams (Workflows or incoming webhook): an Adaptive Card.
    Teams,
}

impl ChatPlatform {
    fn name(self) -> &'static str {
        match self {
            ChatPlatform::Slack => "notify-slack",
            ChatPlatform::Feishu => "notify-feishu",
            ChatPlatform::Dingtalk => "notify-dingtalk",
            ChatPlatform::Teams => "notify-teams",
        }
    }

    /// How the platform reports a refusal inside a 200 answer.
    fn errors(self) -> ApiErrors {
        match self {
            ChatPlatform::Slack | ChatPlatform::Teams => STATUS_ONLY,
            ChatPlatform::Feishu => ApiErrors {
                ok: Some("/code"),
                code: "/code",
                // Too many requests.
                transient: "11232",
                stale_token: "",
                retry_after: None,
            },
            ChatPlatform::Dingtalk => ApiErrors {
                ok: Some("/errcode"),
                code: "/errcode",
                // Sending too fast (20 a minute per robot).
                transient: "130101",
                stale_token: "",
                retry_after: None,
            },
        }
    }
}

/// Which tickets a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketFilter {
    #[default]
    All,
    /// VIP and urgent tickets (and service-level breaches) only.
    Priority,
    /// The others only (pair it with a `priority` webhook).
    Standard,
}

/// One `[[notify.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatHookConfig {
    pub platform: ChatPlatform,
    /// The incoming webhook URL; a credential, so kept secret.
    pub url: switchboard_domain::Secret,
    /// The signing secret of a Feishu bot or DingTalk robot.
    #[serde(default)]
    pub secret: Option<switchboard_domain::Secret>,
    #[serde(default)]
    pub tickets: TicketFilter,
}

/// Posts each ticket to a chat platform's incoming webhook in its format.
pub struct ChatHookNotifier {
    platform: ChatPlatform,
    url: switchboard_domain::Secret,
    secret: Option<switchboard_domain::Secret>,
    tickets: TicketFilter,
    /// `<public_url>/api/conversations/` when the server's URL is known.
    link_base: Option<String>,
    http: reqwest::Client,
    clock: Arc<dyn switchboard_domain::Clock>,
}

/// What every platform's message says.
struct Card {
    title: String,
    urgent: bool,
    facts: Vec<(&'static str, String)>,
    question: String,
    link: Option<String>,
}

impl ChatHookNotifier {
    pub fn new(
        config: ChatHookConfig,
        public_url: Option<&str>,
        http: reqwest::Client,
        clock: Arc<dyn switchboard_domain::Clock>,
    ) -> Result<Self, ConfigError> {
        let unusable = |detail: String| ConfigError::Unusable {
            channel: "notify".into(),
            detail,
        };
        outbound::http_url("url", config.url.expose()).map_err(|error| unusable(error.0))?;
        if config
            .secret
            .as_ref()
            .is_some_and(|secret| secret.expose().trim().is_empty())
        {
            return Err(unusable("secret is empty".into()));
        }
        if config.secret.is_some()
            && matches!(config.platform, ChatPlatform::Slack | ChatPlatform::Teams)
        {
            return Err(unusable(
                "Slack and Teams webhooks are not signed: leave secret out".into(),
            ));
        }
        Ok(Self {
            platform: config.platform,
            url: config.url.expose().trim().into(),
            secret: config.secret,
            tickets: config.tickets,
            link_base: public_url
                .map(|url| format!("{}/api/conversations/", url.trim_end_matches('/'))),
            http,
            clock,
        })
    }

    fn wants(&self, ticket: &EscalationTicket) -> bool {
        match self.tickets {
            TicketFilter::All => true,
            TicketFilter::Priority => is_urgent(ticket),
            TicketFilter::Standard => !is_urgent(ticket),
        }
    }

    fn card(&self, ticket: &EscalationTicket) -> Card {
        let waiting_ms = self.clock.now_ms().saturating_sub(ticket.created_at_ms);
        let question = switchboard_domain::redact::redact(ticket.question.trim());
        Card {
            title: format!(
                "{} {} on {}",
                tags(ticket),
                if ticket.reason == switchboard_domain::EscalationReason::SlaBreach {
                    "SLA breach"
                } else {
                    "Escalation"
                },
                one_line(&ticket.channel)
            ),
            urgent: is_urgent(ticket),
            facts: vec![
                ("Summary", ticket.reason.describe().to_owned()),
                ("Customer", customer(ticket)),
                ("Tier", ticket.tier.as_str().to_owned()),
                ("Reason", ticket.reason.as_str().to_owned()),
                ("Waiting", waiting(waiting_ms)),
                (
                    "Promised",
                    format!("within {}", one_line(&ticket.expected_response)),
                ),
                ("Conversation", ticket.conversation.to_string()),
            ],
            question: outbound::clip(&question, 300),
            link: self.link_base.as_ref().map(|base| {
                format!(
                    "{base}{}",
                    utf8_percent_encode(ticket.conversation.as_str())
                )
            }),
        }
    }

    /// The request body for `ticket`, in the platform's format, signed where
    /// the platform signs (Feishu in the body), at `now_ms`.
    pub fn body(&self, ticket: &EscalationTicket, now_ms: i64) -> serde_json::Value {
        let card = self.card(ticket);
        match self.platform {
            ChatPlatform::Slack => slack_body(&card),
            ChatPlatform::Teams => teams_body(&card),
            ChatPlatform::Dingtalk => dingtalk_body(&card),
            ChatPlatform::Feishu => {
                let mut body = feishu_body(&card);
                if let Some(secret) = &self.secret {
                    let timestamp = now_ms.div_euclid(1000).to_string();
                    body["timestamp"] = json!(timestamp);
                    body["sign"] = json!(feishu_sign(secret.expose(), &timestamp));
                }
                body
            }
        }
    }

    /// The URL to post to: DingTalk's carries `timestamp` and `sign`.
    pub fn url(&self, now_ms: i64) -> String {
        match (&self.secret, self.platform) {
            (Some(secret), ChatPlatform::Dingtalk) => {
                let timestamp = now_ms.to_string();
                let mut url = match reqwest::Url::parse(self.url.expose()) {
                    Ok(url) => url,
                    Err(_) => return self.url.expose().to_owned(),
                };
                url.query_pairs_mut()
                    .append_pair("timestamp", &timestamp)
                    .append_pair("sign", &dingtalk_sign(secret.expose(), &timestamp));
                url.into()
            }
            _ => self.url.expose().to_owned(),
        }
    }
}

#[async_trait]
impl AgentNotifier for ChatHookNotifier {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        if !self.wants(ticket) {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let sender = Sender::new(
            self.platform.name(),
            self.http.clone(),
            self.platform.errors(),
        );
        let call = self
            .http
            .post(self.url(now_ms))
            .json(&self.body(ticket, now_ms));
        sender.call(&ticket.ticket_id, call).await.map(|_| ())
    }
}

/// Feishu custom bot: base64 of HMAC-SHA256 keyed with `timestamp + "\n" +
/// secret` over nothing.
pub fn feishu_sign(secret: &str, timestamp: &str) -> String {
    use base64::Engine;
    let key = format!("{timestamp}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(crate::kit::signature::digest(
        crate::kit::signature::Mac::Hmac(crate::kit::signature::Digest::Sha256),
        key.as_bytes(),
        b"",
    ))
}

/// DingTalk custom robot: base64 of HMAC-SHA256 keyed with the secret over
/// `timestamp + "\n" + secret` (the URL encoding is the query's).
pub fn dingtalk_sign(secret: &str, timestamp: &str) -> String {
    use base64::Engine;
    let message = format!("{timestamp}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(crate::kit::signature::digest(
        crate::kit::signature::Mac::Hmac(crate::kit::signature::Digest::Sha256),
        secret.as_bytes(),
        message.as_bytes(),
    ))
}

/// Percent-encodes a conversation key for a URL path.
fn utf8_percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// "45 s", "12 min", "3 h 5 min".
fn waiting(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn plain_text(card: &Card) -> String {
    let mut text = format!("{}\n", card.title);
    for (name, value) in &card.facts {
        let _ = writeln!(text, "{name}: {value}");
    }
    for line in card.question.lines() {
        let _ = writeln!(text, "> {line}");
    }
    if let Some(link) = &card.link {
        let _ = writeln!(text, "{link}");
    }
    text.trim_end().to_owned()
}

fn slack_body(card: &Card) -> serde_json::Value {
    let fields: Vec<serde_json::Value> = card
        .facts
        .iter()
        .map(|(name, value)| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(value)) }))
        .collect();
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": outbound::clip(&card.title, 150) } }),
        // Slack shows at most 10 fields in a section.
        json!({ "type": "section", "fields": fields }),
    ];
    if !card.question.is_empty() {
        let quoted: Vec<String> = card
            .question
            .lines()
            .map(|line| format!("> {}", slack_escape(line)))
            .collect();
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": quoted.join("\n") } }),
        );
    }
    if let Some(link) = &card.link {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("<{link}|Open the conversation>") } }));
    }
    json!({ "text": plain_text(card), "blocks": blocks })
}

fn feishu_body(card: &Card) -> serde_json::Value {
    let mut content = String::new();
    for (name, value) in &card.facts {
        let _ = writeln!(content, "**{name}**: {value}");
    }
    for line in card.question.lines() {
        let _ = writeln!(content, "> {line}");
    }
    let mut elements =
        vec![json!({ "tag": "div", "text": { "tag": "lark_md", "content": content.trim_end() } })];
    if let Some(link) = &card.link {
        elements.push(json!({ "tag": "action", "actions": [{
            "tag": "button", "type": "primary", "url": link,
            "text": { "tag": "plain_text", "content": "Open the conversation" } }] }));
    }
    json!({
        "msg_type": "interactive",
        "card": {
            "config": { "wide_screen_mode": true },
            "header": {
                "template": if card.urgent { "red" } else { "blue" },
                "title": { "tag": "plain_text", "content": card.title },
            },
            "elements": elements,
        }
    })
}

fn dingtalk_body(card: &Card) -> serde_json::Value {
    let mut text = format!("#### {}\n\n", card.title);
    for (name, value) in &card.facts {
        let _ = writeln!(text, "- **{name}**: {value}");
    }
    for line in card.question.lines() {
        let _ = write!(text, "\n> {line}\n");
    }
    if let Some(link) = &card.link {
        let _ = write!(text, "\n[Open the conversation]({link})\n");
    }
    json!({ "msgtype": "markdown", "markdown": { "title": card.title, "text": text } })
}

fn teams_body(card: &Card) -> serde_json::Value {
    let facts: Vec<serde_json::Value> = card
        .facts
        .iter()
        .map(|(name, value)| json!({ "title": name, "value": value }))
        .collect();
    let mut body = vec![
        json!({ "type": "TextBlock", "text": card.title, "weight": "Bolder", "size": "Medium", "wrap": true,
                "color": if card.urgent { "Attention" } else { "Default" } }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if !card.question.is_empty() {
        body.push(
            json!({ "type": "TextBlock", "text": card.question, "wrap": true, "isSubtle": true }),
        );
    }
    let actions: Vec<serde_json::Value> = card
        .link
        .iter()
        .map(|link| json!({ "type": "Action.OpenUrl", "title": "Open the conversation", "url": link }))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}

/// Notifies through every notifier in turn, and fails if any of them fails.
/// All are tried even after a failure. When several fail, a transient failure
/// is reported in preference to a permanent one, so that the caller retries.
pub struct MultiNotifier {
    notifiers: Vec<Arc<dyn AgentNotifier>>,
}

impl MultiNotifier {
    pub fn new(notifiers: Vec<Arc<dyn AgentNotifier>>) -> Self {
        Self { notifiers }
    }
}

#[async_trait]
impl AgentNotifier for MultiNotifier {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        let mut failure: Option<SendError> = None;
        for notifier in &self.notifiers {
            if let Err(error) = notifier.notify(ticket).await {
                let replace = match &failure {
                    None => true,
                    Some(previous) => !previous.is_transient() && error.is_transient(),
                };
                if replace {
                    failure = Some(error);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

fn is_urgent(ticket: &EscalationTicket) -> bool {
    ticket.priority || ticket.tier == Tier::Vip
}

/// `[Switchboard][VIP]`, `[Switchboard][Priority]` or `[Switchboard]`.
fn tags(ticket: &EscalationTicket) -> String {
    match (ticket.tier, ticket.priority) {
        (Tier::Vip, _) => "[Switchboard][VIP]".into(),
        (_, true) => "[Switchboard][Priority]".into(),
        _ => "[Switchboard]".into(),
    }
}

fn customer(ticket: &EscalationTicket) -> String {
    match ticket
        .customer_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        Some(name) => format!("{} ({})", one_line(name), one_line(&ticket.customer_id)),
        None => one_line(&ticket.customer_id),
    }
}

fn email_body(ticket: &EscalationTicket) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "A conversation needs a person.\n");
    let _ = writeln!(body, "Ticket:            {}", one_line(&ticket.ticket_id));
    let _ = writeln!(body, "Channel:           {}", one_line(&ticket.channel));
    let _ = writeln!(body, "Conversation:      {}", ticket.conversation);
    if let Some(id) = &ticket.correlation_id {
        let _ = writeln!(body, "Correlation id:    {}", one_line(id));
    }
    let _ = writeln!(body, "Customer:          {}", customer(ticket));
    let _ = writeln!(body, "Tier:              {}", ticket.tier.as_str());
    let _ = writeln!(
        body,
        "Priority:          {}",
        if is_urgent(ticket) { "yes" } else { "no" }
    );
    let _ = writeln!(body, "Reason:            {}", ticket.reason.describe());
    let _ = writeln!(body, "Language:          {}", ticket.language.code());
    let _ = writeln!(
        body,
        "Expected response: within {}",
        one_line(&ticket.expected_response)
    );
    let _ = writeln!(
        body,
        "Opened:            {}",
        format_utc(ticket.created_at_ms)
    );

    let _ = writeln!(body, "\nQuestion:");
    write_indented(&mut body, &ticket.question);

    let _ = writeln!(body, "\nTranscript:");
    if ticket.transcript.is_empty() {
        let _ = writeln!(body, "    (empty)");
    }
    for turn in &ticket.transcript {
        write_turn(&mut body, turn);
    }

    let _ = writeln!(body, "\nFAQ candidates:");
    if ticket.candidates.is_empty() {
        let _ = writeln!(body, "    (none)");
    }
    for (rank, candidate) in ticket.candidates.iter().enumerate() {
        let _ = writeln!(
            body,
            "    {}. [{}] confidence {:.2}: {}",
            rank + 1,
            one_line(&candidate.entry_id),
            candidate.confidence,
            one_line(&candidate.question)
        );
    }
    body
}

fn write_turn(body: &mut String, turn: &Turn) {
    let role = match turn.role {
        Role::Customer => "customer",
        Role::Bot => "bot",
        Role::Agent => "agent",
    };
    let mut lines = turn.text.lines();
    let first = lines.next().unwrap_or_default();
    let _ = match &turn.agent {
        Some(agent) => write!(
            body,
            "[{}] {role} {}: {first}",
            format_utc(turn.at_ms),
            one_line(agent)
        ),
        None => write!(body, "[{}] {role}: {first}", format_utc(turn.at_ms)),
    };
    if let (Some(entry), Some(confidence)) = (&turn.faq_entry, turn.confidence) {
        let _ = write!(body, "  (FAQ {} at {confidence:.2})", one_line(entry));
    }
    body.push('\n');
    for line in lines {
        let _ = writeln!(body, "    {line}");
    }
}

fn write_indented(body: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(body, "    {line}");
    }
}

/// Control characters (line breaks included) become spaces, for one-line fields.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `2023-11-14 22:13:20 UTC` for unix milliseconds.
fn format_utc(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| "(an impossible time) UTC".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use switchboard_domain::{ConversationKey, EscalationReason, FaqCandidate, Language};

    use super::*;

    use crate::email::RecordingTransport as Recorder;

    fn ticket(tier: Tier, priority: bool) -> EscalationTicket {
        let turn = |role, text: &str, at_ms, faq: Option<(&str, f32)>| Turn {
            role,
            text: text.into(),
            at_ms,
            message_id: None,
            faq_entry: faq.map(|(entry, _)| entry.into()),
            confidence: faq.map(|(_, confidence)| confidence),
            agent: None,
        };
        EscalationTicket {
            ticket_id: "tk-0042".into(),
            conversation: ConversationKey::new("telegram", "123456", "777"),
            channel: "telegram".into(),
            customer_id: "777".into(),
            customer_name: Some("Jane Doe".into()),
            tier,
            reason: EscalationReason::AskedForHuman,
            priority,
            language: Language::En,
            question: "Can I talk to a person?\nIt's about order 991.".into(),
            transcript: vec![
                turn(
                    Role::Customer,
                    "Where is order 991?",
                    1_700_000_000_000,
                    None,
                ),
                turn(
                    Role::Bot,
                    "Orders ship within 2 days.",
                    1_700_000_005_000,
                    Some(("shipping", 0.81)),
                ),
                turn(
                    Role::Customer,
                    "Can I talk to a person?\nIt's about order 991.",
                    1_700_000_060_000,
                    None,
                ),
            ],
            candidates: vec![
                FaqCandidate {
                    entry_id: "shipping".into(),
                    question: "How long does shipping take?".into(),
                    answer: "2 days".into(),
                    confidence: 0.41,
                },
                FaqCandidate {
                    entry_id: "returns".into(),
                    question: "How do I return an item?".into(),
                    answer: "…".into(),
                    confidence: 0.12,
                },
            ],
            expected_response: "15 minutes".into(),
            created_at_ms: 1_700_000_061_000,
            correlation_id: None,
        }
    }

    fn notifier(recorder: Arc<Recorder>) -> EmailAgentNotifier {
        EmailAgentNotifier::new(
            EmailNotifierConfig {
                from: "Switchboard <switchboard@shop.example>".into(),
                agents: "team@shop.example, second@shop.example".into(),
                priority_agents: Some("Duty <duty@shop.example>".into()),
            },
            recorder,
        )
        .unwrap()
    }

    fn unfolded(message: &Message) -> String {
        String::from_utf8(message.formatted())
            .unwrap()
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ")
    }

    #[tokio::test]
    async fn vip_ticket_email_has_headers_transcript_and_candidates() {
        let recorder = Arc::new(Recorder::default());
        let vip = EscalationTicket {
            correlation_id: Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()),
            ..ticket(Tier::Vip, false)
        };
        notifier(recorder.clone()).notify(&vip).await.unwrap();
        let message = recorder.0.lock().unwrap().remove(0);
        let headers = message.headers();
        assert_eq!(
            headers.get_raw("X-Switchboard-Correlation"),
            Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert!(
            unfolded(&message).contains("Correlation id:    0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(
            headers.get_raw("Subject"),
            Some("[Switchboard][VIP] Escalation: asked for human on telegram")
        );
        assert_eq!(headers.get_raw("X-Switchboard-Ticket"), Some("tk-0042"));
        assert_eq!(
            headers.get_raw("X-Switchboard-Conversation"),
            Some("telegram:123456:777")
        );
        assert_eq!(headers.get_raw("Auto-Submitted"), Some("auto-generated"));
        assert_eq!(headers.get_raw("X-Priority"), Some("1"));
        let text = unfolded(&message);
        assert!(
            text.contains("\r\nTo: Duty <duty@shop.example>\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"));

        let body = email_body(&ticket(Tier::Vip, false));
        for expected in [
            "Ticket:            tk-0042",
            "Customer:          Jane Doe (777)",
            "Tier:              vip",
            "Priority:          yes",
            "Reason:            the customer asked for a person",
            "Expected response: within 15 minutes",
            "Opened:            2023-11-14 22:14:21 UTC",
            "Question:\n    Can I talk to a person?\n    It's about order 991.\n",
            "[2023-11-14 22:13:20 UTC] customer: Where is order 991?\n",
            "[2023-11-14 22:13:25 UTC] bot: Orders ship within 2 days.  (FAQ shipping at 0.81)\n",
            "[2023-11-14 22:14:20 UTC] customer: Can I talk to a person?\n    It's about order 991.\n",
            "    1. [shipping] confidence 0.41: How long does shipping take?\n",
            "    2. [returns] confidence 0.12: How do I return an item?\n",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
    }

    #[test]
    fn standard_tickets_go_to_the_agents() {
        let message = notifier(Arc::default())
            .render(&ticket(Tier::Regular, false))
            .unwrap();
        let text = unfolded(&message);
        assert!(
            text.contains("\r\nTo: team@shop.example, second@shop.example\r\n"),
            "{text}"
        );
        assert_eq!(
            message.headers().get_raw("Subject"),
            Some("[Switchboard] Escalation: asked for human on telegram")
        );
        assert!(message.headers().get_raw("X-Priority").is_none());
        let priority = notifier(Arc::default())
            .render(&ticket(Tier::New, true))
            .unwrap();
        assert!(
            priority
                .headers()
                .get_raw("Subject")
                .unwrap()
                .starts_with("[Switchboard][Priority] ")
        );
        assert!(unfolded(&priority).contains("\r\nTo: Duty <duty@shop.example>\r\n"));
    }

    #[test]
    fn header_values_cannot_be_injected() {
        let mut evil = ticket(Tier::Regular, false);
        evil.ticket_id = "t1\r\nBcc: victim@x.example".into();
        let text = unfolded(&notifier(Arc::default()).render(&evil).unwrap());
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }

    #[test]
    fn config_is_checked() {
        let make = |from: &str, agents: &str, priority: Option<&str>| {
            EmailAgentNotifier::new(
                EmailNotifierConfig {
                    from: from.into(),
                    agents: agents.into(),
                    priority_agents: priority.map(Into::into),
                },
                Arc::new(Recorder::default()),
            )
        };
        assert!(make("s@x.example", "a@x.example", None).is_ok());
        assert!(make("nobody", "a@x.example", None).is_err());
        assert!(make("s@x.example", "", None).is_err());
        assert!(make("s@x.example", "a@x.example", Some("not an address")).is_err());
        assert!(
            ChatWebhookNotifier::new(
                ChatWebhookConfig {
                    url: "hooks.example/x".into()
                },
                reqwest::Client::new()
            )
            .is_err()
        );
    }

    #[test]
    fn chat_summary_is_short_and_quotes_the_question() {
        let summary = ChatWebhookNotifier::summary(&ticket(Tier::Vip, false));
        assert_eq!(
            summary,
            "[Switchboard][VIP] Escalation on telegram: the customer asked for a person\n\
             Customer: Jane Doe (777) · tier vip · reply expected within 15 minutes\n\
             Ticket tk-0042 · conversation telegram:123456:777\n\
             > Can I talk to a person?\n\
             > It's about order 991."
        );
    }

    #[test]
    fn chat_summary_masks_personal_data() {
        let mut ticket = ticket(Tier::Regular, false);
        ticket.question = "call me on +44 7700 900123 or ann@example.com".into();
        let summary = ChatWebhookNotifier::summary(&ticket);
        assert!(!summary.contains("900123"), "{summary}");
        assert!(!summary.contains("ann@example.com"), "{summary}");
        assert!(summary.contains("> call me on "), "{summary}");
    }

    struct Fake {
        calls: AtomicUsize,
        outcome: fn() -> Result<(), SendError>,
    }

    #[async_trait]
    impl AgentNotifier for Fake {
        async fn notify(&self, _ticket: &EscalationTicket) -> Result<(), SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.outcome)()
        }
    }

    fn fake(outcome: fn() -> Result<(), SendError>) -> Arc<Fake> {
        Arc::new(Fake {
            calls: AtomicUsize::new(0),
            outcome,
        })
    }

    #[tokio::test]
    async fn multi_notifier_tries_all_and_prefers_transient_failures() {
        let ok = fake(|| Ok(()));
        let broken = fake(|| Err(permanent("x", "gone")));
        let flaky = fake(|| {
            Err(SendError::Transient {
                channel: "y".into(),
                detail: "later".into(),
                source: None,
            })
        });
        let all_ok = MultiNotifier::new(vec![ok.clone(), ok.clone()]);
        all_ok.notify(&ticket(Tier::New, false)).await.unwrap();
        assert_eq!(ok.calls.load(Ordering::SeqCst), 2);

        let mixed = MultiNotifier::new(vec![broken.clone(), flaky.clone(), ok.clone()]);
        let error = mixed.notify(&ticket(Tier::New, false)).await.unwrap_err();
        assert!(error.is_transient());
        assert_eq!(
            (
                broken.calls.load(Ordering::SeqCst),
                flaky.calls.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
        assert_eq!(ok.calls.load(Ordering::SeqCst), 3);

        let permanent_only = MultiNotifier::new(vec![ok.clone(), broken.clone()]);
        assert!(
            !permanent_only
                .notify(&ticket(Tier::New, false))
                .await
                .unwrap_err()
                .is_transient()
        );
        MultiNotifier::new(Vec::new())
            .notify(&ticket(Tier::New, false))
            .await
            .unwrap();
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000_999), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(-1_000), "1969-12-31 23:59:59 UTC");
        assert!(format_utc(i64::MAX).ends_with(" UTC"));
        assert!(format_utc(i64::MIN).ends_with(" UTC"));
    }
}
