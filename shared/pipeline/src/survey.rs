//! The satisfaction survey (CSAT): when an agent resolves a conversation
//! (`resolve`, or a reply with `"resolve": true`), a timer on the timers
//! queue asks the customer for a score after `[feedback.csat] delay_secs`,
//! in their channel and language. The worker reads the answer
//! ([`switchboard_domain::feedback::read_score`]) while the question is the
//! last one asked.
//!
//! The question goes out once per resolved hand-over (a `survey:` key), and
//! not at all once the customer has written again (the conversation is no
//! longer resolved).

use switchboard_channels::kit::buttons::has_buttons;
use switchboard_domain::feedback::{self, CsatSettings};
use switchboard_domain::{
    ConversationKey, JobLease, OutboundReply, Pending, QueueProducer, Session, SessionStatus, Turn,
};
use tracing::info;

use crate::timers::{TimerJob, TimerKind, TimerOutcome, schedule};
use crate::worker::ConversationWorker;
use crate::{JobError, stable_id};

/// Queues the survey of a conversation just resolved at `now_ms`, when
/// surveys are on.
pub async fn schedule_survey(
    queue: &dyn QueueProducer,
    csat: &CsatSettings,
    session: &Session,
    now_ms: i64,
) -> Result<(), JobError> {
    if !csat.enabled {
        return Ok(());
    }
    let delay_ms = i64::try_from(csat.delay_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let timer = TimerJob {
        kind: TimerKind::Satisfaction,
        conversation: session.key.clone(),
        handover_at_ms: resolved_id(session, now_ms),
        number: 0,
        due_at_ms: now_ms.saturating_add(delay_ms),
        hop: 0,
    };
    schedule(queue, now_ms, &timer).await
}

/// What names the resolve: the hand-over resolved, else the resolve's time.
fn resolved_id(session: &Session, now_ms: i64) -> i64 {
    session.handover.as_ref().map_or(now_ms, |h| h.at_ms)
}

fn survey_key(conversation: &ConversationKey, resolved: i64) -> String {
    format!("survey:{conversation}:{resolved}")
}

impl ConversationWorker {
    /// Sends the survey's question, unless the conversation was taken up
    /// again since the resolve.
    pub(crate) async fn survey(
        &self,
        timer: &TimerJob,
        session: Session,
        correlation_id: &str,
        job: &JobLease,
    ) -> Result<TimerOutcome, JobError> {
        let settings = &self.settings.feedback;
        let resolved = session.status == SessionStatus::Resolved
            && session
                .handover
                .as_ref()
                .is_none_or(|h| h.at_ms == timer.handover_at_ms);
        if !settings.csat.enabled || !resolved {
            info!(conversation = %timer.conversation, "survey dropped: the conversation went on");
            return Ok(TimerOutcome::Stale);
        }
        let now_ms = self.clock.now_ms();
        if now_ms < timer.due_at_ms {
            let again = TimerJob {
                hop: timer.hop.saturating_add(1),
                ..timer.clone()
            };
            schedule(self.queue.as_ref(), now_ms, &again).await?;
            return Ok(TimerOutcome::Rescheduled);
        }
        let key = survey_key(&timer.conversation, timer.handover_at_ms);
        let reply = OutboundReply {
            channel: session.channel.clone(),
            account_id: session.account_id.clone(),
            conversation_id: session.conversation_id.clone(),
            customer_id: session.customer_id.clone(),
            text: settings.csat_question(session.language),
            reply: session.reply.clone(),
            reply_id: stable_id("s", &key),
            choices: match has_buttons(&session.channel) {
                true => feedback::csat_choices(),
                false => Vec::new(),
            },
        };
        let sent = self
            .send_once(&session.key, &reply, &key, correlation_id, job)
            .await?;
        let turn = Turn::bot(sent, now_ms, reply.reply_id.clone());
        self.update_session(session, |session| {
            if session.push_once(turn.clone()) {
                session.pending = Some(Pending::Satisfaction);
            }
        })
        .await?;
        info!(conversation = %timer.conversation, "satisfaction survey sent");
        Ok(TimerOutcome::Surveyed)
    }
}
