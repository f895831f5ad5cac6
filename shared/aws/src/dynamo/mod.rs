//! DynamoDB adapters for the store ports. The table layout is described in
//! `TABLES.md` beside this crate; [`crate::setup`] creates the same tables.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::AwsError;

mod counters;
mod credentials;
mod customers;
mod feedback;
mod gaps;
mod idempotency;
mod kb;
mod privacy;
mod report;
mod sessions;

pub use counters::DynamoCounterStore;
pub use credentials::DynamoCredentialStore;
pub use customers::DynamoCustomerStore;
pub use feedback::DynamoFeedbackStore;
pub use gaps::DynamoGapLog;
pub use idempotency::DynamoIdempotencyStore;
pub use kb::DynamoKnowledgeBase;
pub use privacy::DynamoCustomerData;
pub use report::DynamoReportRecords;
pub use sessions::DynamoSessionStore;

/// Name of the TTL attribute on every table (epoch seconds, as DynamoDB's
/// time to live requires).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Name of the gaps table's index ordering gaps by count.
pub(crate) fn gaps_index() -> &'static str {
    gaps::BY_COUNT_INDEX
}

/// Name of the sessions table's index of the conversations with a person.
pub(crate) fn waiting_index() -> &'static str {
    sessions::WAITING_INDEX
}

/// Name of the sessions table's index of each customer's conversations.
pub(crate) fn customer_index() -> &'static str {
    sessions::CUSTOMER_INDEX
}

pub(crate) type Item = HashMap<String, AttributeValue>;

const DAY_MS: i64 = 86_400_000;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The TTL value for a record to be kept until `until_ms`: whole seconds, rounded up.
pub(crate) fn ttl_seconds(until_ms: i64) -> AttributeValue {
    n(until_ms.div_euclid(1000) + i64::from(until_ms.rem_euclid(1000) != 0))
}

/// Reads typed attributes of one item, naming the item in every error.
pub(crate) struct ItemReader<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub item: &'a Item,
}

impl ItemReader<'_> {
    fn malformed(&self, detail: String) -> AwsError {
        AwsError::Malformed {
            table: self.table.to_owned(),
            key: self.key.to_owned(),
            detail,
        }
    }

    pub fn string(&self, name: &str) -> Result<&str, AwsError> {
        match self.item.get(name) {
            Some(AttributeValue::S(value)) => Ok(value),
            Some(_) => Err(self.malformed(format!("attribute {name} is not a string"))),
            None => Err(self.malformed(format!("attribute {name} is missing"))),
        }
    }

    pub fn opt_string(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(_) => self.string(name).map(Some),
        }
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<T, AwsError> {
        match self.item.get(name) {
            Some(AttributeValue::N(value)) => value
                .parse()
                .map_err(|_| self.malformed(format!("attribute {name} is not a valid number"))),
            Some(_) => Err(self.malformed(format!("attribute {name} is not a number"))),
            None => Err(self.malformed(format!("attribute {name} is missing"))),
        }
    }
}

/// How long records live after their last change before DynamoDB's TTL removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub sessions_ms: i64,
    pub customers_ms: i64,
    pub feedback_ms: i64,
    pub gaps_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            sessions_ms: 30 * DAY_MS,
            customers_ms: 400 * DAY_MS,
            feedback_ms: 400 * DAY_MS,
            gaps_ms: 180 * DAY_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(5_000), AttributeValue::N("5".into()));
        assert_eq!(ttl_seconds(5_001), AttributeValue::N("6".into()));
        assert_eq!(ttl_seconds(0), AttributeValue::N("0".into()));
    }
}
