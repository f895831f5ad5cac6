//! The conversation worker: one queued customer message in, a reply or an
//! escalation out, and both turns in the transcript.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_domain::telemetry;
use switchboard_domain::{
    Claim, Clock, CustomerStore, Decision, EscalationReason, EscalationTicket, GapLog, Handover,
    IdempotencyStore, InboundMessage, JobLease, Language, MessageKind, OutboundReply, PayloadStore,
    QueueItem, QueueName, QueueProducer, ReplySender, Role, RoutingPolicy, Session, SessionStatus,
    SessionStore, StoreError, Tier, Turn, texts,
};
use tracing::{Instrument, info, info_span, warn};

use crate::faq::Faq;
use crate::ingress::{QueuedMessage, new_correlation_id};
use crate::{DEDUPE_RETENTION_MS, JobError, payload, stable_id};

/// Attempts at saving a session that others keep changing.
const SAVE_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Confidence bands per language, as `english` and `chinese` tables.
    #[serde(flatten)]
    pub routing: RoutingPolicy,
    /// Customers treated as VIP, as `channel:customer_id`.
    pub vip_customers: HashSet<String>,
    /// What VIPs are promised after a hand-over.
    pub priority_response_minutes: u32,
    pub standard_response_minutes: u32,
    /// FAQ candidates considered, and shown to agents on escalation.
    pub candidates: usize,
    /// Mask personal data in stored transcripts (`[privacy] redact_transcripts`).
    #[serde(skip)]
    pub redact_transcripts: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            routing: RoutingPolicy::default(),
            vip_customers: HashSet::new(),
            priority_response_minutes: 15,
            standard_response_minutes: 240,
            candidates: 3,
            redact_transcripts: false,
        }
    }
}

/// What happened to a message, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    AnsweredOfferingHuman,
    Escalated(EscalationReason),
    /// Edits and deletes are recorded without a reply.
    Recorded,
    /// Seen before: nothing done.
    Duplicate,
}

pub struct ConversationWorker {
    pub sessions: Arc<dyn SessionStore>,
    pub customers: Arc<dyn CustomerStore>,
    pub gaps: Arc<dyn GapLog>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn QueueProducer>,
    pub replies: Arc<dyn ReplySender>,
    /// Where bodies too large for the queue are kept.
    pub payloads: Arc<dyn PayloadStore>,
    pub faq: Arc<Faq>,
    pub clock: Arc<dyn Clock>,
    pub settings: WorkerSettings,
}

/// The decision for one message, before anything is sent or stored.
struct Plan {
    outcome: Outcome,
    reply_text: Option<String>,
    ticket: Option<EscalationTicket>,
    bot_turn: Option<Turn>,
    status: SessionStatus,
    record_gap: bool,
}

impl ConversationWorker {
    /// Processes one delivery of a job from the inbound queue. Claims taken
    /// for it last as long as the delivery's lease, so that after a crash the
    /// next delivery takes the work over as soon as the queue hands it out.
    pub async fn handle(&self, body: &[u8], job: &JobLease) -> Result<Outcome, JobError> {
        let body = payload::resolve(self.payloads.as_ref(), body).await?;
        let queued: QueuedMessage =
            serde_json::from_slice(&body).map_err(|error| JobError::Permanent(Box::new(error)))?;
        // Every line logged for this message, the reply's included, carries its id.
        let correlation_id = queued.correlation_id.unwrap_or_else(new_correlation_id);
        let span = info_span!("message", correlation_id = %correlation_id);
        self.handle_message(&queued.message, &correlation_id, job)
            .instrument(span)
            .await
    }

    async fn handle_message(
        &self,
        message: &InboundMessage,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<Outcome, JobError> {
        let started = std::time::Instant::now();
        let work_key = format!("work:{}", message.dedupe_key());
        let now_ms = self.clock.now_ms();
        match self
            .idempotency
            .claim(&work_key, now_ms, job.claim_ms(now_ms))
            .await?
        {
            Claim::Acquired | Claim::TakenOver => {}
            Claim::Done => return Ok(Outcome::Duplicate),
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "another attempt is processing this message".into(),
                ));
            }
        }
        match self.process(message, correlation_id, job).await {
            Ok(outcome) => {
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency.complete(&work_key, keep_until).await?;
                match outcome {
                    Outcome::Answered | Outcome::AnsweredOfferingHuman => {
                        telemetry::message_answered(&message.channel)
                    }
                    Outcome::Escalated(_) => telemetry::message_escalated(&message.channel),
                    Outcome::Recorded | Outcome::Duplicate => {}
                }
                telemetry::processing_time(&message.channel, started.elapsed());
                info!(
                    channel = %message.channel,
                    message_id = %message.provider_message_id,
                    outcome = ?outcome,
                    attempt = job.attempt,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "message processed"
                );
                Ok(outcome)
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(&work_key).await {
                    warn!(error = %release_error, "could not release work claim");
                }
                // In the message's span, unlike the queue's own retry line.
                warn!(
                    channel = %message.channel,
                    message_id = %message.provider_message_id,
                    attempt = job.attempt,
                    retryable = error.is_retryable(),
                    error = %error,
                    "message not processed"
                );
                Err(error)
            }
        }
    }

    async fn process(
        &self,
        message: &InboundMessage,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<Outcome, JobError> {
        let now_ms = self.clock.now_ms();
        let key = message.conversation_key();
        let existing = self.sessions.load(&key).await?;
        if existing
            .as_ref()
            .is_some_and(|s| s.has_customer_message(&message.provider_message_id))
        {
            return Ok(Outcome::Duplicate);
        }
        let language = if message.text.trim().is_empty() {
            existing.as_ref().map(|s| s.language).unwrap_or_default()
        } else {
            Language::detect(&message.text)
        };
        let previous = self
            .customers
            .record_contact(&message.customer_key(), now_ms)
            .await?;
        let tier = if self
            .settings
            .vip_customers
            .contains(&message.customer_key())
        {
            Tier::Vip
        } else if previous.is_some() {
            Tier::Regular
        } else {
            Tier::New
        };
        let session = existing.unwrap_or_else(|| Session::start(message, language, now_ms));
        let mut plan = self.plan(message, &session, tier, language, now_ms);
        if let Some(ticket) = &mut plan.ticket {
            ticket.correlation_id = Some(correlation_id.to_owned());
        }

        let reply_id = stable_id("r", &message.dedupe_key());
        let sent = match &plan.reply_text {
            Some(text) => Some(self.send_once(message, text, &reply_id, job).await?),
            // An earlier delivery may have replied before things changed (an
            // agent took the conversation over since): its reply is still ours.
            None if job.attempt > 1 => {
                self.idempotency
                    .result(&reply_key(message), self.clock.now_ms())
                    .await?
            }
            None => None,
        };
        // The transcript records what went out, which after a crash between
        // sending and saving is what the earlier delivery sent.
        if let Some(text) = sent {
            let turn = plan.bot_turn.get_or_insert_with(|| Turn {
                role: Role::Bot,
                text: String::new(),
                at_ms: now_ms,
                message_id: Some(reply_id.clone()),
                faq_entry: None,
                confidence: None,
            });
            turn.text = text;
        }
        if let Some(ticket) = &plan.ticket {
            let queue = if ticket.priority {
                QueueName::EscalationPriority
            } else {
                QueueName::EscalationStandard
            };
            let item = QueueItem {
                group: ticket.conversation.0.clone(),
                dedupe_id: ticket.ticket_id.clone(),
                body: serde_json::to_vec(ticket).expect("tickets serialise"),
            };
            self.queue
                .send(queue, item)
                .await
                .map_err(|error| JobError::Retryable(Box::new(error)))?;
        }
        if plan.record_gap {
            // The log is read by people who are not the customer's agents: masked.
            let question = switchboard_domain::redact::redact(&message.text);
            self.gaps.record(&question, language, now_ms).await?;
        }
        self.append_turns(message, session, &plan, language, now_ms)
            .await?;
        Ok(plan.outcome)
    }

    fn plan(
        &self,
        message: &InboundMessage,
        session: &Session,
        tier: Tier,
        language: Language,
        now_ms: i64,
    ) -> Plan {
        let recorded = |status| Plan {
            outcome: Outcome::Recorded,
            reply_text: None,
            ticket: None,
            bot_turn: None,
            status,
            record_gap: false,
        };
        if matches!(message.kind, MessageKind::Edit | MessageKind::Delete) {
            return recorded(session.status);
        }
        let candidates = if message.text.trim().is_empty() {
            Vec::new()
        } else {
            let context = follow_up_context(session);
            self.faq.candidates_in_context(
                &message.text,
                context.as_ref(),
                language,
                self.settings.candidates,
            )
        };
        if let Some(best) = candidates.first() {
            telemetry::faq_confidence(&message.channel, best.confidence);
        }
        let decision = if session.status == SessionStatus::Escalated {
            // A person has the conversation: the bot stays quiet and the agents hear of it.
            Decision::Escalate {
                reason: EscalationReason::FollowUp,
            }
        } else {
            self.settings
                .routing
                .decide(tier, language, &message.text, candidates.first())
        };
        let bands = self.settings.routing.bands(language);
        let unanswered = candidates
            .first()
            .is_none_or(|best| best.confidence < bands.answer);
        match decision {
            Decision::Answer {
                candidate,
                offer_human,
            } => {
                let mut text = candidate.answer.clone();
                if offer_human {
                    text.push_str("\n\n");
                    text.push_str(texts::offer_human(language));
                }
                Plan {
                    outcome: if offer_human {
                        Outcome::AnsweredOfferingHuman
                    } else {
                        Outcome::Answered
                    },
                    bot_turn: Some(Turn {
                        role: Role::Bot,
                        text: text.clone(),
                        at_ms: now_ms,
                        message_id: Some(stable_id("r", &message.dedupe_key())),
                        faq_entry: Some(candidate.entry_id.clone()),
                        confidence: Some(candidate.confidence),
                    }),
                    reply_text: Some(text),
                    ticket: None,
                    status: SessionStatus::Open,
                    record_gap: offer_human,
                }
            }
            Decision::Escalate { reason } => {
                let priority = tier == Tier::Vip;
                let minutes = if priority {
                    self.settings.priority_response_minutes
                } else {
                    self.settings.standard_response_minutes
                };
                let expected_response = texts::duration(language, minutes);
                let mut transcript = session.turns.clone();
                transcript.push(customer_turn(
                    message,
                    now_ms,
                    self.settings.redact_transcripts,
                ));
                let ticket = EscalationTicket {
                    ticket_id: stable_id("t", &message.dedupe_key()),
                    conversation: session.key.clone(),
                    channel: message.channel.clone(),
                    customer_id: message.customer_id.clone(),
                    customer_name: message.customer_name.clone(),
                    tier,
                    reason,
                    priority,
                    language,
                    question: message.text.clone(),
                    transcript,
                    candidates,
                    expected_response: expected_response.clone(),
                    created_at_ms: now_ms,
                    // Set by `process`, which knows the job.
                    correlation_id: None,
                };
                // Follow-ups reach the agents without repeating the promise to the customer.
                let reply_text = (reason != EscalationReason::FollowUp)
                    .then(|| texts::handed_over(language, &expected_response));
                Plan {
                    outcome: Outcome::Escalated(reason),
                    bot_turn: reply_text.as_ref().map(|text| Turn {
                        role: Role::Bot,
                        text: text.clone(),
                        at_ms: now_ms,
                        message_id: Some(stable_id("r", &message.dedupe_key())),
                        faq_entry: None,
                        confidence: None,
                    }),
                    reply_text,
                    ticket: Some(ticket),
                    status: SessionStatus::Escalated,
                    record_gap: unanswered
                        && matches!(
                            reason,
                            EscalationReason::NoConfidentMatch | EscalationReason::VipUnanswered
                        ),
                }
            }
        }
    }

    /// Sends the reply unless an earlier delivery already did, and returns
    /// the text that went out (the earlier delivery's, if it was that one).
    async fn send_once(
        &self,
        message: &InboundMessage,
        text: &str,
        reply_id: &str,
        job: &JobLease,
    ) -> Result<String, JobError> {
        let reply_key = reply_key(message);
        let now_ms = self.clock.now_ms();
        if job.attempt > 1
            && let Some(sent) = self.idempotency.result(&reply_key, now_ms).await?
        {
            return Ok(sent);
        }
        // A send must be over before the queue may hand the job to another
        // consumer, or both could send.
        if !job.can_start_send(now_ms) {
            return Err(JobError::Retryable(
                "too little of the job's lease is left to send the reply".into(),
            ));
        }
        match self
            .idempotency
            .claim(&reply_key, now_ms, job.claim_ms(now_ms))
            .await?
        {
            Claim::Done => {
                let sent = self.idempotency.result(&reply_key, now_ms).await?;
                return Ok(sent.unwrap_or_else(|| text.to_owned()));
            }
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "reply is being sent by another attempt".into(),
                ));
            }
            Claim::Acquired => {}
            // The delivery before died between sending and recording: the
            // provider may have the reply already, and nothing can tell.
            // Sending again risks a repeat; not sending risks a lost answer.
            Claim::TakenOver => {
                warn!(channel = %message.channel, reply_id, possible_repeat = true, "sending a reply an interrupted delivery may have sent");
            }
        }
        let reply = OutboundReply::to_message(message, text, reply_id);
        let sending = std::time::Instant::now();
        match self.replies.send(&reply).await {
            Ok(()) => {
                let sent = std::time::Instant::now();
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency
                    .complete_with_result(&reply_key, keep_until, text)
                    .await?;
                // A crash before the record is written repeats the reply: how
                // long that window was open.
                info!(
                    channel = %message.channel,
                    reply_id,
                    send_ms = sent.duration_since(sending).as_millis() as u64,
                    record_ms = sent.elapsed().as_millis() as u64,
                    "reply sent"
                );
                Ok(text.to_owned())
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(&reply_key).await {
                    warn!(error = %release_error, "could not release reply claim");
                }
                telemetry::reply_failed(&message.channel);
                warn!(channel = %message.channel, reply_id, transient = error.is_transient(), error = %error, "reply failed");
                // A refusal for good (an address the mail server does not
                // know, a chat the bot may not write to) goes to the dead
                // letters at once; anything else is retried with backoff.
                Err(if error.is_transient() {
                    JobError::Retryable(Box::new(error))
                } else {
                    JobError::Permanent(Box::new(error))
                })
            }
        }
    }

    /// Appends the customer's turn and ours, retrying on concurrent changes.
    async fn append_turns(
        &self,
        message: &InboundMessage,
        mut session: Session,
        plan: &Plan,
        language: Language,
        now_ms: i64,
    ) -> Result<(), JobError> {
        for _ in 0..SAVE_ATTEMPTS {
            if !session.has_customer_message(&message.provider_message_id) {
                session.push(customer_turn(
                    message,
                    now_ms,
                    self.settings.redact_transcripts,
                ));
                if let Some(turn) = &plan.bot_turn {
                    session.push(turn.clone());
                }
            }
            // A new hand-over starts unless the conversation is already with a person.
            let already_handed_over =
                session.status == SessionStatus::Escalated && session.handover.is_some();
            session.status = plan.status;
            session.language = language;
            if let Some(ticket) = &plan.ticket
                && !already_handed_over
            {
                session.handover = Some(Handover {
                    at_ms: now_ms,
                    tier: ticket.tier,
                    reason: ticket.reason,
                    priority: ticket.priority,
                    claimed_by: None,
                    agent_answered_at_ms: None,
                });
            }
            if message.kind == MessageKind::Text || message.kind == MessageKind::Media {
                session.reply = message.reply.clone();
            }
            match self.sessions.save(&session).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => {
                    session = self
                        .sessions
                        .load(&session.key)
                        .await?
                        .unwrap_or_else(|| Session::start(message, language, now_ms));
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(JobError::Retryable(
            format!("session {} kept changing", session.key).into(),
        ))
    }
}

/// The idempotency key of the reply to `message`; its record keeps the text sent.
fn reply_key(message: &InboundMessage) -> String {
    format!("reply:{}", message.dedupe_key())
}

/// The customer's previous message and the entry the bot answered it with.
fn follow_up_context(session: &Session) -> Option<crate::faq::Context<'_>> {
    let at = session
        .turns
        .iter()
        .rposition(|t| t.role == Role::Customer)?;
    let answered = session.turns[at + 1..]
        .iter()
        .find(|t| t.role == Role::Bot)
        .and_then(|t| t.faq_entry.as_deref());
    Some(crate::faq::Context {
        previous_question: &session.turns[at].text,
        previous_entry: answered,
    })
}

/// The customer's message as a transcript turn; masked when `redact` is set
/// (escalation tickets then carry the masked text too).
fn customer_turn(message: &InboundMessage, now_ms: i64, redact: bool) -> Turn {
    let text = match message.kind {
        MessageKind::Delete => "[message deleted]".to_owned(),
        MessageKind::Edit => format!("[edited] {}", message.text),
        MessageKind::Media if message.text.is_empty() => {
            let kinds: Vec<String> = message
                .attachments
                .iter()
                .map(|a| format!("{:?}", a.kind).to_lowercase())
                .collect();
            format!("[{}]", kinds.join(", "))
        }
        _ => message.text.clone(),
    };
    let text = if redact {
        switchboard_domain::redact::redact(&text).into_owned()
    } else {
        text
    };
    Turn {
        role: Role::Customer,
        text,
        at_ms: if message.sent_at_ms > 0 {
            message.sent_at_ms
        } else {
            now_ms
        },
        message_id: Some(message.provider_message_id.clone()),
        faq_entry: None,
        confidence: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_masked_only_when_asked() {
        let message: InboundMessage = serde_json::from_value(serde_json::json!({
            "channel": "telegram", "account_id": "bot", "customer_id": "1",
            "conversation_id": "1", "provider_message_id": "m1", "sent_at_ms": 5,
            "kind": "text", "text": "mail me at ann@example.com"
        }))
        .unwrap();
        assert_eq!(
            customer_turn(&message, 9, false).text,
            "mail me at ann@example.com"
        );
        let masked = customer_turn(&message, 9, true).text;
        assert!(!masked.contains("ann@example.com"), "{masked}");
        assert!(masked.starts_with("mail me at "), "{masked}");
    }
}
