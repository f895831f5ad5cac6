//! Service-level timers of a hand-over, as delayed jobs on the timers queue:
//! reassurance messages to the waiting customer (after `reassure_after_secs`,
//! again each interval, at most [`MAX_REASSURANCES`] times) and the breach
//! notification when `first_response_secs` passes without an agent's answer.
//!
//! A timer checks the conversation when it fires: one whose hand-over was
//! answered by an agent, resolved, or replaced by a newer hand-over does
//! nothing, so no cancellation is needed. Each reassurance goes out under its
//! own idempotency key (`reassure:` + conversation + hand-over + number), so
//! a redelivered timer never sends a second one. A queue that cannot wait as
//! long as asked (SQS: 15 minutes) delivers early; the timer then goes back
//! for the rest.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_domain::{
    ConversationKey, EscalationReason, EscalationTicket, JobLease, OutboundReply, QueueItem,
    QueueName, QueueProducer, Role, Session, SessionStatus, StoreError, Tier, TierSla, Turn, texts,
};
use tracing::{Instrument, info, info_span};

use crate::ingress::new_correlation_id;
use crate::worker::ConversationWorker;
use crate::{JobError, SAVE_ATTEMPTS, payload, stable_id};

/// Reassurances per hand-over, at most.
pub const MAX_REASSURANCES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// Tell the waiting customer we are on it.
    Reassure,
    /// The first-response target passed: notify the agents again.
    Breach,
    /// Ask the customer for a score after a resolve ([`crate::survey`]).
    Satisfaction,
}

/// One timer of one hand-over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerJob {
    pub kind: TimerKind,
    pub conversation: ConversationKey,
    /// Which hand-over (its `at_ms`): a newer one makes this timer stale.
    /// For the survey, the hand-over resolved (or the resolve's time).
    pub handover_at_ms: i64,
    /// The reassurance's number (1 to 3); 0 for the breach.
    pub number: u32,
    pub due_at_ms: i64,
    /// Times the job went back because the queue delivered it early.
    #[serde(default)]
    pub hop: u32,
}

impl TimerJob {
    fn dedupe_id(&self) -> String {
        format!(
            "timer:{:?}:{}:{}:{}:{}",
            self.kind, self.number, self.hop, self.handover_at_ms, self.conversation
        )
    }
}

/// What a timer did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOutcome {
    /// An agent answered, the conversation was resolved or handed over anew.
    Stale,
    /// Delivered before it was due: queued again for the rest.
    Rescheduled,
    Reassured(u32),
    Breached,
    /// The satisfaction question was sent.
    Surveyed,
}

impl ConversationWorker {
    /// Queues the timers of a hand-over made at `handed_over_at_ms`.
    pub(crate) async fn start_timers(
        &self,
        conversation: &ConversationKey,
        sla: TierSla,
        tier: Tier,
        handed_over_at_ms: i64,
    ) -> Result<(), JobError> {
        let mut timers = vec![TimerJob {
            kind: TimerKind::Breach,
            conversation: conversation.clone(),
            handover_at_ms: handed_over_at_ms,
            number: 0,
            due_at_ms: self
                .settings
                .sla
                .first_response_deadline_ms(tier, handed_over_at_ms),
            hop: 0,
        }];
        if sla.reassure_after_secs > 0 {
            timers.push(reassurance(
                conversation,
                handed_over_at_ms,
                sla.reassure_after_secs,
                1,
            ));
        }
        for timer in &timers {
            self.schedule(timer).await?;
        }
        Ok(())
    }

    async fn schedule(&self, timer: &TimerJob) -> Result<(), JobError> {
        schedule(self.queue.as_ref(), self.clock.now_ms(), timer).await
    }

    /// Processes one delivery of a job from the timers queue.
    pub async fn handle_timer(
        &self,
        body: &[u8],
        job: &JobLease,
    ) -> Result<TimerOutcome, JobError> {
        let body = payload::resolve(self.payloads.as_ref(), body).await?;
        let timer: TimerJob =
            serde_json::from_slice(&body).map_err(|error| JobError::Permanent(Box::new(error)))?;
        // A timer's firing is an event of its own: a fresh id follows it to
        // the reassurance it sends.
        let correlation_id = new_correlation_id();
        let span = info_span!("timer", correlation_id = %correlation_id);
        self.fire_timer(timer, &correlation_id, job)
            .instrument(span)
            .await
    }

    async fn fire_timer(
        &self,
        timer: TimerJob,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<TimerOutcome, JobError> {
        let Some(session) = self.sessions.load(&timer.conversation).await? else {
            return Ok(TimerOutcome::Stale);
        };
        if timer.kind == TimerKind::Satisfaction {
            return self.survey(&timer, session, correlation_id, job).await;
        }
        let Some(tier) = waiting_handover(&session, timer.handover_at_ms).map(|h| h.tier) else {
            info!(conversation = %timer.conversation, kind = ?timer.kind, "timer stopped: answered, resolved or handed over anew");
            return Ok(TimerOutcome::Stale);
        };
        let now_ms = self.clock.now_ms();
        if now_ms < timer.due_at_ms {
            let again = TimerJob {
                hop: timer.hop.saturating_add(1),
                ..timer
            };
            self.schedule(&again).await?;
            return Ok(TimerOutcome::Rescheduled);
        }
        match timer.kind {
            TimerKind::Reassure => {
                self.reassure(&timer, session, tier, correlation_id, job)
                    .await
            }
            TimerKind::Breach => {
                self.breach(&timer, session, tier, correlation_id, now_ms)
                    .await
            }
            TimerKind::Satisfaction => Ok(TimerOutcome::Stale),
        }
    }

    async fn reassure(
        &self,
        timer: &TimerJob,
        session: Session,
        tier: Tier,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<TimerOutcome, JobError> {
        let sla = self.sla_for(&session, tier);
        let now_ms = self.clock.now_ms();
        let policy = &self.settings.sla;
        let deadline_ms = session.handover.as_ref().map_or_else(
            || policy.first_response_deadline_ms(tier, timer.handover_at_ms),
            |handover| handover.first_response_due(policy),
        );
        // The expected wait: what is left of the target, else one more interval.
        let left_secs = match deadline_ms.saturating_sub(now_ms) {
            ms if ms > 0 => (ms as u64).div_ceil(1000),
            _ => sla.reassure_after_secs.max(60),
        };
        let minutes = u32::try_from(left_secs.div_ceil(60).max(1)).unwrap_or(u32::MAX);
        let text = texts::still_waiting(
            session.language,
            &texts::duration(session.language, minutes),
        );
        let key = format!(
            "reassure:{}:{}:{}",
            timer.conversation, timer.handover_at_ms, timer.number
        );
        let reply = OutboundReply {
            channel: session.channel.clone(),
            account_id: session.account_id.clone(),
            conversation_id: session.conversation_id.clone(),
            customer_id: session.customer_id.clone(),
            text,
            reply: session.reply.clone(),
            reply_id: stable_id("s", &key),
            choices: Vec::new(),
        };
        let sent = self
            .send_once(&session.key, &reply, &key, correlation_id, job)
            .await?;
        if timer.number < MAX_REASSURANCES && sla.reassure_after_secs > 0 {
            self.schedule(&reassurance(
                &timer.conversation,
                timer.handover_at_ms,
                sla.reassure_after_secs,
                timer.number + 1,
            ))
            .await?;
        }
        let turn = Turn::bot(sent, now_ms, reply.reply_id.clone());
        self.update_session(session, |session| {
            session.push_once(turn.clone());
        })
        .await?;
        info!(conversation = %timer.conversation, number = timer.number, tier = tier.as_str(), "customer reassured");
        Ok(TimerOutcome::Reassured(timer.number))
    }

    async fn breach(
        &self,
        timer: &TimerJob,
        session: Session,
        tier: Tier,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<TimerOutcome, JobError> {
        let question = session
            .turns
            .iter()
            .rev()
            .find(|t| t.role == Role::Customer)
            .map(|t| t.text.clone())
            .unwrap_or_default();
        let ticket_key = format!("{}:{}", timer.conversation, timer.handover_at_ms);
        let ticket = EscalationTicket {
            ticket_id: stable_id("b", &ticket_key),
            conversation: session.key.clone(),
            channel: session.channel.clone(),
            customer_id: session.customer_id.clone(),
            customer_name: None,
            tier,
            reason: EscalationReason::SlaBreach,
            priority: true,
            language: session.language,
            question,
            transcript: session.turns.clone(),
            candidates: Vec::new(),
            expected_response: texts::duration(
                session.language,
                u32::try_from(
                    self.settings
                        .sla
                        .for_tier(tier)
                        .first_response_secs
                        .div_ceil(60)
                        .max(1),
                )
                .unwrap_or(u32::MAX),
            ),
            created_at_ms: timer.handover_at_ms,
            correlation_id: Some(correlation_id.to_owned()),
        };
        // The priority queue, to the priority address; the ticket id makes a
        // redelivered timer's second ticket a duplicate.
        let item = QueueItem {
            group: ticket.conversation.0.clone(),
            dedupe_id: ticket.ticket_id.clone(),
            body: serde_json::to_vec(&ticket).expect("tickets serialise"),
        };
        self.queue
            .send(QueueName::EscalationPriority, item)
            .await
            .map_err(|error| JobError::Retryable(Box::new(error)))?;
        let handover_at_ms = timer.handover_at_ms;
        self.update_session(session, |session| {
            if let Some(handover) = session
                .handover
                .as_mut()
                .filter(|h| h.at_ms == handover_at_ms && h.breached_at_ms.is_none())
            {
                handover.breached_at_ms = Some(now_ms);
            }
        })
        .await?;
        info!(conversation = %timer.conversation, tier = tier.as_str(), sla_breach = true, "first-response target missed: agents notified again");
        Ok(TimerOutcome::Breached)
    }

    /// Applies `change` and saves, reloading on concurrent changes.
    pub(crate) async fn update_session(
        &self,
        mut session: Session,
        change: impl Fn(&mut Session),
    ) -> Result<(), JobError> {
        for _ in 0..SAVE_ATTEMPTS {
            change(&mut session);
            match self.sessions.save(&session).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => {
                    let Some(fresh) = self.sessions.load(&session.key).await? else {
                        return Ok(());
                    };
                    session = fresh;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(JobError::Retryable(
            format!("session {} kept changing", session.key).into(),
        ))
    }
}

/// Queues `timer` on the timers queue, delayed until it is due.
pub(crate) async fn schedule(
    queue: &dyn QueueProducer,
    now_ms: i64,
    timer: &TimerJob,
) -> Result<(), JobError> {
    let delay_ms = timer.due_at_ms.saturating_sub(now_ms).max(0);
    let dedupe_id = timer.dedupe_id();
    let item = QueueItem {
        // A group of its own, so that a waiting timer holds up nothing
        // else, named after the conversation, whose erasure takes it along.
        group: format!("{}#{}", timer.conversation, dedupe_id),
        dedupe_id,
        body: serde_json::to_vec(timer).expect("timers serialise"),
    };
    queue
        .send_after(
            QueueName::Timers,
            item,
            Duration::from_millis(delay_ms as u64),
        )
        .await
        .map_err(|error| JobError::Retryable(Box::new(error)))
}

fn reassurance(
    conversation: &ConversationKey,
    handed_over_at_ms: i64,
    interval_secs: u64,
    number: u32,
) -> TimerJob {
    let after_ms = i64::try_from(interval_secs.saturating_mul(1000))
        .unwrap_or(i64::MAX)
        .saturating_mul(i64::from(number));
    TimerJob {
        kind: TimerKind::Reassure,
        conversation: conversation.clone(),
        handover_at_ms: handed_over_at_ms,
        number,
        due_at_ms: handed_over_at_ms.saturating_add(after_ms),
        hop: 0,
    }
}

/// The hand-over made at `at_ms`, if the customer still waits for it: the
/// conversation is with the agents and none has answered.
fn waiting_handover(session: &Session, at_ms: i64) -> Option<&switchboard_domain::Handover> {
    session
        .handover
        .as_ref()
        .filter(|h| h.at_ms == at_ms && h.waiting())
        .filter(|_| session.status == SessionStatus::Escalated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassurances_follow_the_interval_and_never_overflow() {
        let key = ConversationKey::new("telegram", "1", "2");
        assert_eq!(reassurance(&key, 1_000, 5, 1).due_at_ms, 6_000);
        assert_eq!(reassurance(&key, 1_000, 5, 3).due_at_ms, 16_000);
        assert_eq!(reassurance(&key, 1, u64::MAX, 3).due_at_ms, i64::MAX);
        let hopped = TimerJob {
            hop: 1,
            ..reassurance(&key, 1, 5, 1)
        };
        assert_ne!(hopped.dedupe_id(), reassurance(&key, 1, 5, 1).dedupe_id());
    }
}
