//! The escalation notifier: tickets from the escalation queues to the agents.

use std::sync::Arc;

use switchboard_domain::{
    AgentNotifier, Claim, Clock, EscalationTicket, IdempotencyStore, JobLease, PayloadStore,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{DEDUPE_RETENTION_MS, JobError, payload};

pub struct EscalationNotifier {
    pub notifier: Arc<dyn AgentNotifier>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Where tickets too large for the queue are kept.
    pub payloads: Arc<dyn PayloadStore>,
    pub clock: Arc<dyn Clock>,
}

impl EscalationNotifier {
    /// Processes one delivery of a job from an escalation queue; a ticket is
    /// delivered once. The claim lasts as long as the delivery's lease.
    pub async fn handle(&self, body: &[u8], job: &JobLease) -> Result<bool, JobError> {
        let body = payload::resolve(self.payloads.as_ref(), body).await?;
        let ticket: EscalationTicket =
            serde_json::from_slice(&body).map_err(|error| JobError::Permanent(Box::new(error)))?;
        // The lines about this ticket carry the id of the message that raised it.
        let span = info_span!(
            "ticket",
            correlation_id = ticket.correlation_id.as_deref().unwrap_or_default()
        );
        self.notify_once(&ticket, job).instrument(span).await
    }

    async fn notify_once(
        &self,
        ticket: &EscalationTicket,
        job: &JobLease,
    ) -> Result<bool, JobError> {
        let key = format!("notify:{}", ticket.ticket_id);
        let now_ms = self.clock.now_ms();
        // The mail must be out before the queue may hand the ticket to another consumer.
        if !job.can_start_send(now_ms) {
            return Err(JobError::Retryable(
                "too little of the job's lease is left to notify the agents".into(),
            ));
        }
        match self
            .idempotency
            .claim(&key, now_ms, job.claim_ms(now_ms))
            .await?
        {
            Claim::Acquired => {}
            Claim::TakenOver => {
                warn!(ticket = %ticket.ticket_id, possible_repeat = true, "notifying about a ticket an interrupted delivery may have sent");
            }
            Claim::Done => return Ok(false),
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "ticket is being delivered by another attempt".into(),
                ));
            }
        }
        match self.notifier.notify(ticket).await {
            Ok(()) => {
                self.idempotency
                    .complete(&key, self.clock.now_ms() + DEDUPE_RETENTION_MS)
                    .await?;
                switchboard_domain::telemetry::ticket_notified(&ticket.channel);
                info!(
                    ticket = %ticket.ticket_id,
                    channel = %ticket.channel,
                    tier = ticket.tier.as_str(),
                    reason = ticket.reason.as_str(),
                    attempt = job.attempt,
                    "agents notified"
                );
                Ok(true)
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(&key).await {
                    warn!(error = %release_error, "could not release notify claim");
                }
                // The agents' address refused for good: to the dead letters at once.
                Err(if error.is_transient() {
                    JobError::Retryable(Box::new(error))
                } else {
                    JobError::Permanent(Box::new(error))
                })
            }
        }
    }
}
