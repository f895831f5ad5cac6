//! The conversation worker: one queued customer message in, a reply or an
//! escalation out, and both turns in the transcript.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channels::kit::buttons::has_buttons;
use switchboard_domain::feedback::{self, FeedbackSettings};
use switchboard_domain::telemetry;
use switchboard_domain::{
    AttachmentKind, Choice, Claim, Clock, CustomerStore, Decision, EscalationReason,
    EscalationTicket, FaqCandidate, Feedback, FeedbackStore, GapLog, Handover, IdempotencyStore,
    InboundMessage, JobLease, Language, MessageKind, OutboundReply, PayloadStore, Pending,
    QueueItem, QueueName, QueueProducer, Role, RoutingPolicy, Session, SessionStatus, SessionStore,
    SlaPolicy, StoreError, Tier, TierDirectory, Turn, texts,
};
use switchboard_domain::{Experiments, TierSla};
use tracing::{Instrument, info, info_span, warn};

use crate::faq::Faq;
use crate::ingress::{QueuedMessage, new_correlation_id};
use crate::{DEDUPE_RETENTION_MS, JobError, SAVE_ATTEMPTS, outbound, payload, stable_id};
use switchboard_domain::{ConversationKey, Customer};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Confidence bands per language, as `english` and `chinese` tables.
    #[serde(flatten)]
    pub routing: RoutingPolicy,
    /// Customers treated as VIP, as `channel:customer_id`.
    pub vip_customers: HashSet<String>,
    /// Removed: the promise after a hand-over comes from `[sla.*]`
    /// (`first_response_secs`). Still read, so that old files load; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_response_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_response_minutes: Option<u32>,
    /// FAQ candidates considered, and shown to agents on escalation.
    pub candidates: usize,
    /// Mask personal data in stored transcripts (`[privacy] redact_transcripts`).
    #[serde(skip)]
    pub redact_transcripts: bool,
    /// Service levels per tier (`[sla.*]`): the promise, reassurance and breach timers.
    #[serde(skip)]
    pub sla: SlaPolicy,
    /// Questions in the welcome menu of a new customer (`[tiers] menu_size`); 0: no welcome.
    #[serde(skip)]
    pub menu_size: usize,
    /// A/B experiments (`[experiments.*]`): a session's variants override the above.
    #[serde(skip)]
    pub experiments: Experiments,
    /// "Was this helpful?" and the satisfaction survey (`[feedback]`).
    #[serde(skip)]
    pub feedback: FeedbackSettings,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            routing: RoutingPolicy::default(),
            vip_customers: HashSet::new(),
            priority_response_minutes: None,
            standard_response_minutes: None,
            candidates: 3,
            redact_transcripts: false,
            sla: SlaPolicy::default(),
            menu_size: 0,
            experiments: Experiments::default(),
            feedback: FeedbackSettings::default(),
        }
    }
}

/// What happened to a message, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    AnsweredOfferingHuman,
    Escalated(EscalationReason),
    /// A new customer's first message the bot could not answer: welcomed
    /// with the menu of common questions instead.
    Welcomed,
    /// Edits and deletes are recorded without a reply.
    Recorded,
    /// An answer to "was this helpful?" or a satisfaction score, recorded
    /// and thanked for (not routed to the FAQ or to agents).
    Feedback,
    /// The customer said the matter a person had is settled: resolved, and
    /// the satisfaction survey queued.
    ResolvedByCustomer,
    /// Seen before: nothing done.
    Duplicate,
}

pub struct ConversationWorker {
    pub sessions: Arc<dyn SessionStore>,
    pub customers: Arc<dyn CustomerStore>,
    pub gaps: Arc<dyn GapLog>,
    /// Where votes and scores given in the channel are kept.
    pub feedback: Arc<dyn FeedbackStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The escalation queues, and the outbound queue every reply leaves by.
    pub queue: Arc<dyn QueueProducer>,
    /// Where bodies too large for the queue are kept.
    pub payloads: Arc<dyn PayloadStore>,
    pub faq: Arc<Faq>,
    pub clock: Arc<dyn Clock>,
    pub settings: WorkerSettings,
    /// The business's CRM, asked for the customer's tier (`[tiers] lookup_url`).
    pub tiers: Option<Arc<dyn TierDirectory>>,
}

/// The decision for one message, before anything is sent or stored.
struct Plan {
    outcome: Outcome,
    reply_text: Option<String>,
    ticket: Option<EscalationTicket>,
    bot_turn: Option<Turn>,
    status: SessionStatus,
    record_gap: bool,
    /// The menu to remember (empty: forget the one shown); `None`: keep it.
    menu: Option<Vec<String>>,
    /// The question the reply asks (`Some(None)`: none); `None`: keep a
    /// pending menu, forget any other question.
    pending: Option<Option<Pending>>,
    /// Buttons under the reply.
    choices: Vec<Choice>,
    /// A vote or a score to store.
    feedback: Option<Feedback>,
    /// The reply asks "was this helpful?".
    asks_helpful: bool,
    /// No reply, but the tap this message is gets its acknowledgement
    /// (Telegram's spinner on the button stops).
    acknowledge_tap: bool,
}

/// A customer's message that answers the question we asked last.
enum Answer {
    Vote { helpful: bool, faq_id: String },
    Score { score: u8, comment: Option<String> },
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
                    // A welcome is neither an answer from the FAQ nor a hand-over.
                    Outcome::Welcomed
                    | Outcome::Recorded
                    | Outcome::Feedback
                    | Outcome::ResolvedByCustomer
                    | Outcome::Duplicate => {}
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
        let answer = existing
            .as_ref()
            .and_then(|session| answer_to_pending(session, message));
        // An empty message, a number picked from a menu, a vote or a score
        // carries no language of its own: the conversation's is kept.
        let language = if message.text.trim().is_empty()
            || menu_pick(&message.text).is_some()
            || answer.is_some()
            || !matches!(message.kind, MessageKind::Text | MessageKind::Media)
            || reaction(message).is_some()
        {
            existing.as_ref().map(|s| s.language).unwrap_or_default()
        } else {
            Language::detect(&message.text)
        };
        let previous = self
            .customers
            .record_contact(&message.customer_key(), now_ms)
            .await?;
        let tier = self.tier(message, previous.as_ref()).await;
        let first_contact = previous.is_none() && existing.is_none();
        let mut session = existing.unwrap_or_else(|| Session::start(message, language, now_ms));
        self.settings
            .experiments
            .assign_missing(&message.customer_key(), &mut session.variants);
        let mut plan = match answer {
            Some(answer) => self.feedback_plan(message, &session, tier, answer, language, now_ms),
            None => self.plan(message, &session, tier, first_contact, language, now_ms),
        };
        if let Some(ticket) = &mut plan.ticket {
            ticket.correlation_id = Some(correlation_id.to_owned());
        }

        // The survey first: should saving fail, it finds the conversation
        // unresolved when it fires and does nothing.
        if plan.outcome == Outcome::ResolvedByCustomer && session.status != SessionStatus::Resolved
        {
            crate::survey::schedule_survey(
                self.queue.as_ref(),
                &self.settings.feedback.csat,
                &session,
                now_ms,
            )
            .await?;
        }
        // Recorded before it is thanked for.
        if let Some(feedback) = &plan.feedback {
            self.record_feedback(message, feedback).await?;
        }
        let reply_id = stable_id("r", &message.dedupe_key());
        if plan.acknowledge_tap && message.reply.reply_token.is_some() {
            let ack = OutboundReply::to_message(message, "", &reply_id);
            self.send_once(&session.key, &ack, &reply_key(message), correlation_id, job)
                .await?;
        }
        let sent = match &plan.reply_text {
            Some(text) => {
                let mut reply = OutboundReply::to_message(message, text.as_str(), &reply_id);
                // A menu's numbers as buttons, where the channel has them.
                reply.choices = plan.choices.clone();
                Some(
                    self.send_once(
                        &session.key,
                        &reply,
                        &reply_key(message),
                        correlation_id,
                        job,
                    )
                    .await?,
                )
            }
            // An earlier delivery may have replied before things changed (an
            // agent took the conversation over since): its reply is still ours.
            None if job.attempt > 1 => {
                self.idempotency
                    .result(&reply_key(message), self.clock.now_ms())
                    .await?
            }
            None => None,
        };
        // An acknowledgement wrote nothing.
        let sent = sent.filter(|text| !text.is_empty());
        // The transcript records what went out, which after a crash between
        // sending and saving is what the earlier delivery sent.
        if let Some(text) = sent {
            let turn = plan
                .bot_turn
                .get_or_insert_with(|| Turn::bot(String::new(), now_ms, reply_id.clone()));
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
            // A new hand-over starts its timers before the session records
            // it: a crash in between leaves timers that find no such
            // hand-over and do nothing, never a hand-over without timers.
            if plan.status == SessionStatus::Escalated && !already_handed_over(&session) {
                let sla = self.sla_for(&session, ticket.tier);
                self.start_timers(&session.key, sla, ticket.tier, now_ms)
                    .await?;
            }
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
        first_contact: bool,
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
            menu: None,
            pending: None,
            choices: Vec::new(),
            feedback: None,
            asks_helpful: false,
            acknowledge_tap: false,
        };
        if matches!(message.kind, MessageKind::Edit | MessageKind::Delete) {
            return recorded(session.status);
        }
        // A reaction, a sticker or emoji that answered no question, and a
        // keyword the provider answers itself (SMS STOP), are kept in the
        // transcript: no reply, no hand-over, the question still open.
        if reaction(message).is_some() || message.kind == MessageKind::Keyword {
            return Plan {
                pending: Some(session.pending.clone()),
                ..recorded(session.status)
            };
        }
        // "2" after a menu answers its second entry.
        if session.status != SessionStatus::Escalated
            && matches!(session.pending, None | Some(Pending::Menu))
            && let Some(number) = menu_pick(&message.text)
            && let Some(entry) = number.checked_sub(1).and_then(|i| session.menu.get(i))
            && let Some(candidate) = self.faq.current().entry(entry, language)
        {
            let mut plan = self.answer(message, candidate, false, now_ms);
            plan.menu = None;
            self.ask_helpful(&mut plan, message, session, language, now_ms);
            return plan;
        }
        // A tap that answers nothing open (the same button pressed again:
        // buttons stay on screen) is acknowledged, not read as a question.
        if message.kind == MessageKind::Choice {
            return Plan {
                pending: Some(session.pending.clone()),
                acknowledge_tap: true,
                ..recorded(session.status)
            };
        }
        if session.status == SessionStatus::Escalated && feedback::says_resolved(&message.text) {
            let text = feedback::glad(language).to_owned();
            return Plan {
                outcome: Outcome::ResolvedByCustomer,
                bot_turn: Some(Turn::bot(
                    text.clone(),
                    now_ms,
                    stable_id("r", &message.dedupe_key()),
                )),
                reply_text: Some(text),
                status: SessionStatus::Resolved,
                pending: Some(None),
                ..recorded(SessionStatus::Resolved)
            };
        }
        let routing = self.routing_for(session);
        let welcome = first_contact
            && tier == Tier::New
            && self
                .settings
                .experiments
                .menu_size(self.settings.menu_size, &session.variants)
                > 0;
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
            routing.decide(tier, language, &message.text, candidates.first())
        };
        let bands = routing.bands(language);
        let unanswered = candidates
            .first()
            .is_none_or(|best| best.confidence < bands.answer);
        let failed = |decision: &Decision| {
            matches!(
                decision,
                Decision::Answer {
                    offer_human: true,
                    ..
                } | Decision::Escalate {
                    reason: EscalationReason::NoConfidentMatch
                }
            )
        };
        // A new customer's greeting ("hi", "你好") is answered with the way
        // around; a real question the bot cannot answer goes to a person.
        if welcome && failed(&decision) && is_short(&message.text) {
            let best = candidates.first().map_or(0.0, |c| c.confidence);
            return self.welcome(message, session, None, best, language, now_ms);
        }
        // The bot could not answer last time either: a person takes over.
        let decision = if failed(&decision)
            && session.status != SessionStatus::Escalated
            && last_bot_turn_failed(session, bands.answer)
        {
            Decision::Escalate {
                reason: EscalationReason::RepeatedFailure,
            }
        } else {
            decision
        };
        match decision {
            Decision::Answer {
                candidate,
                offer_human: false,
            } if welcome => {
                let confidence = candidate.confidence;
                self.welcome(
                    message,
                    session,
                    Some(candidate),
                    confidence,
                    language,
                    now_ms,
                )
            }
            Decision::Answer {
                candidate,
                offer_human,
            } => {
                let mut plan = self.answer(message, candidate, offer_human, now_ms);
                if offer_human {
                    append(&mut plan, texts::offer_human(language));
                } else {
                    self.ask_helpful(&mut plan, message, session, language, now_ms);
                }
                plan
            }
            Decision::Escalate { reason } => {
                // Urgency (anger, an explicit ask, repeated failure) raises the priority.
                let priority = tier == Tier::Vip || reason.is_urgent();
                let expected_response = self.expected_response(tier, language);
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
                // Follow-ups reach the agents without repeating the promise;
                // the customer's are acknowledged at most once an interval.
                let reply_text = if reason == EscalationReason::FollowUp {
                    (self.may_acknowledge(session, now_ms) || message.reply.awaits_reply)
                        .then(|| texts::reassurance(language).to_owned())
                } else {
                    Some(texts::handed_over(language, &expected_response))
                };
                Plan {
                    outcome: Outcome::Escalated(reason),
                    bot_turn: reply_text.as_ref().map(|text| {
                        Turn::bot(text.clone(), now_ms, stable_id("r", &message.dedupe_key()))
                    }),
                    reply_text,
                    ticket: Some(ticket),
                    status: SessionStatus::Escalated,
                    record_gap: unanswered
                        && matches!(
                            reason,
                            EscalationReason::NoConfidentMatch
                                | EscalationReason::VipUnanswered
                                | EscalationReason::RepeatedFailure
                        ),
                    menu: (reason != EscalationReason::FollowUp).then(Vec::new),
                    pending: (reason != EscalationReason::FollowUp).then_some(None),
                    choices: Vec::new(),
                    feedback: None,
                    asks_helpful: false,
                    acknowledge_tap: false,
                }
            }
        }
    }

    /// The plan that answers with `candidate` (and forgets any menu shown).
    fn answer(
        &self,
        message: &InboundMessage,
        candidate: FaqCandidate,
        offer_human: bool,
        now_ms: i64,
    ) -> Plan {
        let text = candidate.answer.clone();
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
                agent: None,
            }),
            reply_text: Some(text),
            ticket: None,
            status: SessionStatus::Open,
            record_gap: offer_human,
            menu: Some(Vec::new()),
            pending: Some(None),
            choices: Vec::new(),
            feedback: None,
            asks_helpful: false,
            acknowledge_tap: false,
        }
    }

    /// A new customer's first reply: a welcome, the answer when the bot has
    /// a confident one, and the numbered menu of common questions.
    fn welcome(
        &self,
        message: &InboundMessage,
        session: &Session,
        answer: Option<FaqCandidate>,
        confidence: f32,
        language: Language,
        now_ms: i64,
    ) -> Plan {
        let experiments = &self.settings.experiments;
        let menu_size = experiments.menu_size(self.settings.menu_size, &session.variants);
        let menu = self.faq.current().menu(menu_size, language);
        let mut text = experiments
            .welcome(language, &session.variants)
            .unwrap_or(texts::welcome(language))
            .to_owned();
        if let Some(answer) = &answer {
            text.push_str("\n\n");
            text.push_str(&answer.answer);
        }
        if !menu.is_empty() {
            text.push_str("\n\n");
            text.push_str(texts::menu_intro(language));
            for (number, (_, label)) in menu.iter().enumerate() {
                text.push_str(&format!("\n{}. {}", number + 1, label.trim()));
            }
        }
        text.push_str("\n\n");
        text.push_str(texts::menu_or_person(language));
        let answered = answer.is_some();
        // The menu's numbers as buttons, where the channel has them.
        let choices = (1..=menu.len())
            .map(|n| Choice::new(n.to_string(), n.to_string()))
            .collect();
        let pending = (!menu.is_empty()).then_some(Pending::Menu);
        Plan {
            outcome: if answered {
                Outcome::Answered
            } else {
                Outcome::Welcomed
            },
            bot_turn: Some(Turn {
                role: Role::Bot,
                text: text.clone(),
                at_ms: now_ms,
                message_id: Some(stable_id("r", &message.dedupe_key())),
                faq_entry: answer.map(|a| a.entry_id),
                // A welcome without an answer counts as a failed answer, so
                // that a second one hands over (repeated failure).
                confidence: Some(confidence),
                agent: None,
            }),
            reply_text: Some(text),
            ticket: None,
            status: SessionStatus::Open,
            record_gap: !answered,
            menu: Some(menu.into_iter().map(|(id, _)| id).collect()),
            pending: Some(pending),
            choices,
            feedback: None,
            asks_helpful: false,
            acknowledge_tap: false,
        }
    }

    /// Asks "was this helpful?" under an FAQ answer: buttons where the
    /// channel has them, else "reply 1 or 2"; at most once an interval per
    /// conversation. The question replaces a menu still shown.
    fn ask_helpful(
        &self,
        plan: &mut Plan,
        message: &InboundMessage,
        session: &Session,
        language: Language,
        now_ms: i64,
    ) {
        let settings = &self.settings.feedback;
        let interval_ms =
            i64::try_from(settings.helpful_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let asked_lately = session
            .helpful_asked_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < interval_ms);
        let faq_id = plan.bot_turn.as_ref().and_then(|t| t.faq_entry.clone());
        // An A/B variant may switch the question on or off.
        let ask = self
            .settings
            .experiments
            .ask_helpful(&session.variants)
            .unwrap_or(settings.ask_helpful);
        let (Some(faq_id), true, false) = (faq_id, ask, asked_lately) else {
            return;
        };
        let buttons = has_buttons(&message.channel);
        append(plan, &settings.helpful_question(language, buttons));
        if buttons {
            plan.choices = feedback::helpful_choices(language);
        }
        plan.menu = Some(Vec::new());
        plan.pending = Some(Some(Pending::Helpful { faq_id }));
        plan.asks_helpful = true;
    }

    /// The plan for an answer to our question: the vote or the score is
    /// stored and thanked for; "not helpful" offers a person, a score of 1
    /// or 2 tells the agents.
    fn feedback_plan(
        &self,
        message: &InboundMessage,
        session: &Session,
        tier: Tier,
        answer: Answer,
        language: Language,
        now_ms: i64,
    ) -> Plan {
        let mut feedback = Feedback {
            conversation: session.key.clone(),
            helpful: None,
            satisfaction: None,
            comment: None,
            faq_id: None,
            at_ms: now_ms,
        };
        let mut ticket = None;
        let text = match answer {
            Answer::Vote { helpful, faq_id } => {
                feedback.helpful = Some(helpful);
                feedback.faq_id = Some(faq_id);
                match helpful {
                    true => feedback::thanks(language).to_owned(),
                    false => format!(
                        "{} {}",
                        feedback::sorry(language),
                        texts::offer_human(language)
                    ),
                }
            }
            Answer::Score { score, comment } => {
                feedback.satisfaction = Some(score);
                feedback.comment = comment;
                if score <= 2 {
                    let mut transcript = session.turns.clone();
                    transcript.push(customer_turn(
                        message,
                        now_ms,
                        self.settings.redact_transcripts,
                    ));
                    ticket = Some(EscalationTicket {
                        ticket_id: stable_id("t", &message.dedupe_key()),
                        conversation: session.key.clone(),
                        channel: message.channel.clone(),
                        customer_id: message.customer_id.clone(),
                        customer_name: message.customer_name.clone(),
                        tier,
                        reason: EscalationReason::LowSatisfaction,
                        priority: false,
                        language,
                        question: message.text.clone(),
                        transcript,
                        candidates: Vec::new(),
                        expected_response: self.expected_response(tier, language),
                        created_at_ms: now_ms,
                        correlation_id: None,
                    });
                    feedback::low_score_reply(language).to_owned()
                } else {
                    feedback::thanks(language).to_owned()
                }
            }
        };
        Plan {
            outcome: Outcome::Feedback,
            bot_turn: Some(Turn::bot(
                text.clone(),
                now_ms,
                stable_id("r", &message.dedupe_key()),
            )),
            reply_text: Some(text),
            ticket,
            // A vote or a score changes nothing about who has the conversation.
            status: session.status,
            record_gap: false,
            menu: None,
            pending: Some(None),
            choices: Vec::new(),
            feedback: Some(feedback),
            asks_helpful: false,
            acknowledge_tap: false,
        }
    }

    /// Stores a vote or a score once, however often the message is redelivered.
    async fn record_feedback(
        &self,
        message: &InboundMessage,
        feedback: &Feedback,
    ) -> Result<(), JobError> {
        let key = format!("feedback:{}", message.dedupe_key());
        let now_ms = self.clock.now_ms();
        match self
            .idempotency
            .claim(&key, now_ms, FEEDBACK_LEASE_MS)
            .await?
        {
            Claim::Done => return Ok(()),
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "the feedback is being stored by another attempt".into(),
                ));
            }
            Claim::Acquired | Claim::TakenOver => {}
        }
        if let Err(error) = self.feedback.put(feedback).await {
            if let Err(release_error) = self.idempotency.release(&key).await {
                warn!(error = %release_error, "could not release feedback claim");
            }
            return Err(error.into());
        }
        let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
        self.idempotency.complete(&key, keep_until).await?;
        info!(
            channel = %message.channel,
            helpful = ?feedback.helpful,
            satisfaction = ?feedback.satisfaction,
            "feedback recorded"
        );
        Ok(())
    }

    /// The tier: VIP by configuration, else the one agents stored, else `new`
    /// on first contact and `regular` after; the CRM's answer raises it. A CRM that fails
    /// leaves the stored tier.
    async fn tier(&self, message: &InboundMessage, previous: Option<&Customer>) -> Tier {
        let customer = message.customer_key();
        // The tier the agents stored, else new or returning.
        let mut tier = previous.map_or(Tier::New, |customer| customer.tier);
        if self.settings.vip_customers.contains(&customer) {
            tier = Tier::Vip;
        }
        if let Some(directory) = &self.tiers {
            match directory.tier(&customer).await {
                Ok(Some(found)) => tier = tier.max(found),
                Ok(None) => {}
                Err(error) => {
                    warn!(channel = %message.channel, error = %switchboard_domain::error_chain(error.as_ref()), "tier lookup failed: using the stored tier");
                }
            }
        }
        tier
    }

    /// What the customer is promised after a hand-over: the tier's
    /// first-response target, in minutes (at least one).
    /// The confidence bands for this conversation: the configured ones, or its A/B variant's.
    fn routing_for(&self, session: &Session) -> RoutingPolicy {
        self.settings
            .experiments
            .routing(&self.settings.routing, &session.variants)
    }

    /// The tier's service level for this conversation, with its A/B variant's reassurance timing.
    pub(crate) fn sla_for(&self, session: &Session, tier: Tier) -> TierSla {
        self.settings
            .experiments
            .sla(*self.settings.sla.for_tier(tier), &session.variants)
    }

    fn expected_response(&self, tier: Tier, language: Language) -> String {
        let secs = self.settings.sla.for_tier(tier).first_response_secs;
        texts::duration(language, minutes_rounded_up(secs))
    }

    /// Whether a follow-up may be acknowledged: the customer still waits for
    /// a person's first answer, and we have not written for an interval.
    fn may_acknowledge(&self, session: &Session, now_ms: i64) -> bool {
        let Some(handover) = session.handover.as_ref().filter(|h| h.waiting()) else {
            return false;
        };
        let interval_secs = match self.sla_for(session, handover.tier).reassure_after_secs {
            0 => DEFAULT_ACKNOWLEDGE_SECS,
            secs => secs,
        };
        let interval_ms = i64::try_from(interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let last_bot = session
            .turns
            .iter()
            .rev()
            .find(|t| t.role == Role::Bot)
            .map_or(handover.at_ms, |t| t.at_ms.max(handover.at_ms));
        now_ms.saturating_sub(last_bot) >= interval_ms
    }

    /// Queues the reply for the outbound sender unless an earlier delivery
    /// already did, and returns the text queued (the earlier delivery's, if
    /// it was that one). The `reply_key` record makes a redelivered job never
    /// queue a second reply; the sender sends each reply id once.
    pub(crate) async fn send_once(
        &self,
        conversation: &ConversationKey,
        reply: &OutboundReply,
        reply_key: &str,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<String, JobError> {
        let (text, reply_id) = (reply.text.as_str(), reply.reply_id.as_str());
        let now_ms = self.clock.now_ms();
        if job.attempt > 1
            && let Some(queued) = self.idempotency.result(reply_key, now_ms).await?
        {
            return Ok(queued);
        }
        match self
            .idempotency
            .claim(reply_key, now_ms, job.claim_ms(now_ms))
            .await?
        {
            Claim::Done => {
                let queued = self.idempotency.result(reply_key, now_ms).await?;
                return Ok(queued.unwrap_or_else(|| text.to_owned()));
            }
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "reply is being queued by another attempt".into(),
                ));
            }
            // An interrupted delivery may have queued it already: the same
            // reply id again, which the sender sends once.
            Claim::Acquired | Claim::TakenOver => {}
        }
        match outbound::enqueue(
            self.queue.as_ref(),
            conversation,
            reply.clone(),
            correlation_id,
            now_ms,
        )
        .await
        {
            Ok(()) => {
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency
                    .complete_with_result(reply_key, keep_until, text)
                    .await?;
                info!(channel = %reply.channel, reply_id, "reply queued");
                Ok(text.to_owned())
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(reply_key).await {
                    warn!(error = %release_error, "could not release reply claim");
                }
                Err(error)
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
            self.settings
                .experiments
                .assign_missing(&message.customer_key(), &mut session.variants);
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
            let already_handed_over = already_handed_over(&session);
            session.set_status(plan.status, now_ms);
            session.language = language;
            if let Some(menu) = &plan.menu {
                session.menu = menu.clone();
            }
            match &plan.pending {
                Some(pending) => session.pending = pending.clone(),
                // A message that did not answer our question leaves it behind.
                None if session.pending != Some(Pending::Menu) => session.pending = None,
                None => {}
            }
            if plan.asks_helpful {
                session.helpful_asked_at_ms = Some(now_ms);
            }
            // A low score's ticket tells the agents; it hands nothing over.
            if let Some(ticket) = &plan.ticket
                && plan.status == SessionStatus::Escalated
                && !already_handed_over
            {
                // As the breach timer is scheduled.
                let due = self
                    .settings
                    .sla
                    .first_response_deadline_ms(ticket.tier, now_ms);
                session.handover = Some(Handover {
                    at_ms: now_ms,
                    tier: ticket.tier,
                    reason: ticket.reason,
                    priority: ticket.priority,
                    claimed_by: None,
                    agent_answered_at_ms: None,
                    breached_at_ms: None,
                    first_response_due_ms: Some(due),
                    resolved_at_ms: None,
                    candidates: ticket.candidates.clone(),
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

/// How long storing one vote or score may hold its claim.
const FEEDBACK_LEASE_MS: i64 = 30_000;

/// `text` appended to the plan's reply (and its transcript turn) as a
/// paragraph of its own.
fn append(plan: &mut Plan, text: &str) {
    if let Some(reply) = plan.reply_text.as_mut() {
        reply.push_str("\n\n");
        reply.push_str(text);
        if let Some(turn) = plan.bot_turn.as_mut() {
            turn.text = reply.clone();
        }
    }
}

/// The customer's message read as the answer to the question we asked
/// last, if it is one: a vote after "was this helpful?", a score after the
/// survey. Anything else is routed as usual.
fn answer_to_pending(session: &Session, message: &InboundMessage) -> Option<Answer> {
    let reaction = reaction(message);
    let readable = matches!(message.kind, MessageKind::Text | MessageKind::Choice);
    if !(readable || reaction.is_some()) || session.status == SessionStatus::Escalated {
        return None;
    }
    match session.pending.as_ref()? {
        Pending::Helpful { faq_id } => {
            let vote = match &reaction {
                Some(emoji) => feedback::read_reaction(emoji),
                None => feedback::read_vote(&message.text),
            };
            vote.map(|helpful| Answer::Vote {
                helpful,
                faq_id: faq_id.clone(),
            })
        }
        // Stars typed ("⭐⭐⭐⭐") are a score; a reaction is not.
        Pending::Satisfaction if readable => feedback::read_score(&message.text)
            .map(|(score, comment)| Answer::Score { score, comment }),
        Pending::Satisfaction => None,
        Pending::Menu => None,
    }
}

/// The emoji of a message that reacts rather than asks: a reaction, a
/// sticker (named by its emoji where the channel says; `""` where not), or a
/// message of emoji only ("👍", "😂"). `None` for anything else.
fn reaction(message: &InboundMessage) -> Option<String> {
    let stickers = || {
        let mut all = !message.attachments.is_empty();
        let mut names = String::new();
        for attachment in &message.attachments {
            all &= attachment.kind == AttachmentKind::Sticker;
            names.push_str(attachment.name.as_deref().unwrap_or_default());
        }
        all.then_some(names)
    };
    match message.kind {
        MessageKind::Reaction => Some(message.text.clone()),
        MessageKind::Media if message.text.trim().is_empty() => stickers(),
        MessageKind::Text if feedback::is_emoji_only(&message.text) => Some(message.text.clone()),
        _ => None,
    }
}

/// A follow-up is acknowledged at most this often when the tier has no
/// reassurance interval (`reassure_after_secs = 0`).
const DEFAULT_ACKNOWLEDGE_SECS: u64 = 300;

/// Whether the conversation is with a person already (no new hand-over).
fn already_handed_over(session: &Session) -> bool {
    session.status == SessionStatus::Escalated && session.handover.is_some()
}

/// Whether the bot's last message was not a confident answer (an answer
/// offering a person, or a welcome without an answer).
fn last_bot_turn_failed(session: &Session, answer_band: f32) -> bool {
    session
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::Bot)
        .and_then(|t| t.confidence)
        .is_some_and(|confidence| confidence < answer_band)
}

fn minutes_rounded_up(secs: u64) -> u32 {
    u32::try_from(secs.div_ceil(60).max(1)).unwrap_or(u32::MAX)
}

/// A message of a few words (a greeting rather than a question).
fn is_short(text: &str) -> bool {
    let text = text.trim();
    let cjk = text
        .chars()
        .filter(|c| switchboard_domain::is_han(*c))
        .count();
    if cjk > 0 {
        text.chars().count() <= 6
    } else {
        text.split_whitespace().count() <= 3 && text.chars().count() <= 24
    }
}

/// The menu entry a message picks: "2", "２", "二", "2." (1 to 10).
fn menu_pick(text: &str) -> Option<usize> {
    let text = text.trim().trim_end_matches(['.', '。', ')', '）']);
    let mut chars = text.chars();
    let first = chars.next()?;
    let rest: String = chars.collect();
    let digit = |c: char| -> Option<usize> {
        match c {
            '0'..='9' => Some(c as usize - '0' as usize),
            '０'..='９' => Some(c as usize - '０' as usize),
            _ => None,
        }
    };
    let han = |c: char| {
        "一二三四五六七八九十"
            .chars()
            .position(|h| h == c)
            .map(|i| i + 1)
    };
    let number = match rest.as_str() {
        "" => digit(first).or_else(|| han(first))?,
        _ => {
            let second = rest.chars().next().and_then(digit)?;
            (rest.chars().count() == 1 && digit(first)? == 1 && second == 0).then_some(10)?
        }
    };
    (1..=10).contains(&number).then_some(number)
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
        MessageKind::Reaction => format!("[reaction {}]", message.text),
        MessageKind::Media if message.text.is_empty() => {
            let kinds: Vec<String> = message
                .attachments
                .iter()
                .map(|a| match (a.kind, &a.name) {
                    // A sticker shows the emoji it stands for.
                    (AttachmentKind::Sticker, Some(emoji)) => format!("sticker {emoji}"),
                    // What the bot could not read, by the provider's name for it.
                    (AttachmentKind::Other, Some(name)) => name.clone(),
                    (kind, _) => format!("{kind:?}").to_lowercase(),
                })
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
        agent: None,
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
