//! The escalation notifier: tickets from the escalation queues to the agents.

use std::sync::Arc;

use switchboard_domain::{AgentNotifier, Claim, Clock, EscalationTicket, IdempotencyStore};
use tracing::{info, warn};

use crate::{DEDUPE_RETENTION_MS, JobError};

const NOTIFY_LEASE_MS: i64 = 2 * 60 * 1000;

pub struct EscalationNotifier {
    pub notifier: Arc<dyn AgentNotifier>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
}

impl EscalationNotifier {
    /// Processes one job from an escalation queue; a ticket is delivered once.
    pub async fn handle(&self, body: &[u8]) -> Result<bool, JobError> {
        let ticket: EscalationTicket =
            serde_json::from_slice(body).map_err(|error| JobError::Permanent(Box::new(error)))?;
        let key = format!("notify:{}", ticket.ticket_id);
        match self
            .idempotency
            .claim(&key, self.clock.now_ms(), NOTIFY_LEASE_MS)
            .await?
        {
            Claim::Acquired => {}
            Claim::Done => return Ok(false),
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "ticket is being delivered by another attempt".into(),
                ));
            }
        }
        match self.notifier.notify(&ticket).await {
            Ok(()) => {
                self.idempotency
                    .complete(&key, self.clock.now_ms() + DEDUPE_RETENTION_MS)
                    .await?;
                info!(
                    ticket = %ticket.ticket_id,
                    channel = %ticket.channel,
                    tier = ticket.tier.as_str(),
                    reason = ticket.reason.as_str(),
                    "agents notified"
                );
                Ok(true)
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(&key).await {
                    warn!(error = %release_error, "could not release notify claim");
                }
                Err(JobError::Retryable(Box::new(error)))
            }
        }
    }
}
