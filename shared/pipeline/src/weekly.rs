//! The weekly report on AWS: the previous seven whole days' page stored in the reports
//! bucket, and an e-mail to the agents' address with its link and summary.
//! The escalation notifier runs it on an EventBridge schedule (it already
//! sends mail), so the report costs no function of its own.

use std::collections::HashMap;
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use switchboard_channels::email::{EmailTransport, Message};
use switchboard_domain::{
    Clock, Experiments, ReportArchive, ReportRecords, SendError, SlaPolicy, StoreError,
};
use tracing::info;

use crate::report::{self, ReportInput};

/// Days a weekly report covers.
pub const WEEK_DAYS: u32 = 7;

pub struct WeeklyReport {
    pub records: Arc<dyn ReportRecords>,
    pub archive: Arc<dyn ReportArchive>,
    pub email: Arc<dyn EmailTransport>,
    pub clock: Arc<dyn Clock>,
    /// Our address, and where the report goes (`[email] from`, `agents`).
    pub from: String,
    pub to: String,
    pub sla: SlaPolicy,
    pub experiments: Experiments,
}

#[derive(Debug, thiserror::Error)]
pub enum WeeklyError {
    #[error("reading or storing the report")]
    Store(#[from] StoreError),
    #[error("sending the report's e-mail")]
    Send(#[from] SendError),
    #[error("the report's e-mail is malformed: {0}")]
    Mail(String),
}

impl WeeklyReport {
    /// Builds, stores and mails the report; returns the page's link.
    pub async fn run(&self) -> Result<String, WeeklyError> {
        let now_ms = self.clock.now_ms();
        // The seven whole days before today's run (Monday's: Monday to
        // Sunday), so that consecutive runs neither overlap nor leave a gap.
        let window = report::Window::days_before_today(WEEK_DAYS, now_ms);
        let records = report::read(self.records.as_ref(), window).await?;
        let labels = HashMap::new();
        let built = report::build(&ReportInput {
            sessions: &records.sessions,
            feedback: &records.feedback,
            from_ms: records.from_ms,
            to_ms: records.to_ms,
            top: 10,
            sla: &self.sla,
            experiments: &self.experiments,
            labels: &labels,
        });
        let name = format!("{}.html", report::date(now_ms));
        let link = self
            .archive
            .publish(&name, &crate::report_html::render(&built))
            .await?;
        let subject = format!(
            "Switchboard weekly report {} to {}",
            built.period.from, built.period.to
        );
        let body = format!(
            "The page (charts and every section): {link}\n\n{}",
            report::summary(&built)
        );
        let message = Message::builder()
            .from(
                self.from
                    .parse()
                    .map_err(|e| WeeklyError::Mail(format!("from: {e}")))?,
            )
            .to(self
                .to
                .parse()
                .map_err(|e| WeeklyError::Mail(format!("to: {e}")))?)
            .subject(subject)
            // Machine-made: auto-responders must not answer it.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ))
            .body(body)
            .map_err(|e| WeeklyError::Mail(e.to_string()))?;
        self.email.send(message).await?;
        info!(
            conversations = built.conversations,
            report = %name,
            "weekly report stored and mailed"
        );
        Ok(link)
    }
}
