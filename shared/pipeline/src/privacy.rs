//! Customers' rights of access and erasure, over the stores' [`CustomerData`].

use std::sync::Arc;

use switchboard_domain::privacy::{
    BadCustomerRef, CustomerData, CustomerExport, CustomerRef, Erasure,
};
use switchboard_domain::{StoreError, Tier};

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(transparent)]
    BadCustomer(#[from] BadCustomerRef),
    #[error("no channel is named {0:?}: a customer is named CHANNEL:CUSTOMER_ID")]
    UnknownChannel(String),
    #[error("the stores could not be read or changed")]
    Store(#[source] StoreError),
}

impl PrivacyError {
    pub fn status(&self) -> u16 {
        match self {
            PrivacyError::BadCustomer(_) | PrivacyError::UnknownChannel(_) => 400,
            PrivacyError::Store(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            PrivacyError::BadCustomer(_) | PrivacyError::UnknownChannel(_) => "bad_request",
            PrivacyError::Store(_) => "unavailable",
        }
    }
}

/// A customer key naming one of Switchboard's channels (enabled now or not:
/// customers of a channel switched off can still be exported and erased).
pub fn customer_ref(key: &str) -> Result<CustomerRef, PrivacyError> {
    let customer: CustomerRef = key.parse()?;
    match switchboard_channels::registry::spec(&customer.channel) {
        Some(_) => Ok(customer),
        None => Err(PrivacyError::UnknownChannel(
            customer.channel.chars().take(40).collect(),
        )),
    }
}

/// Export and erase, with the tier the routing rules give the customer.
pub struct CustomerPrivacy {
    data: Arc<dyn CustomerData>,
    vip_customers: std::collections::HashSet<String>,
}

impl CustomerPrivacy {
    pub fn new(
        data: Arc<dyn CustomerData>,
        vip_customers: std::collections::HashSet<String>,
    ) -> Self {
        Self {
            data,
            vip_customers,
        }
    }

    /// Everything stored about `customer` (`channel:customer_id`).
    pub async fn export(&self, customer: &str) -> Result<CustomerExport, PrivacyError> {
        let customer = customer_ref(customer)?;
        let mut export = self
            .data
            .export(&customer)
            .await
            .map_err(PrivacyError::Store)?;
        if let Some(record) = export.record.as_mut()
            && self.vip_customers.contains(&record.key)
        {
            record.tier = Tier::Vip;
        }
        Ok(export)
    }

    /// Removes everything stored about `customer`; `by` names who asked (logged,
    /// unlike the customer, whose id is personal data).
    pub async fn erase(&self, customer: &str, by: &str) -> Result<Erasure, PrivacyError> {
        let customer = customer_ref(customer)?;
        let erasure = self
            .data
            .erase(&customer)
            .await
            .map_err(PrivacyError::Store)?;
        tracing::info!(
            by,
            channel = %customer.channel,
            removed = erasure.total(),
            "customer data erased"
        );
        Ok(erasure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_names_one_of_our_channels() {
        assert_eq!(customer_ref("telegram:42").unwrap().customer_id, "42");
        assert!(matches!(
            customer_ref("nochannel:42"),
            Err(PrivacyError::UnknownChannel(name)) if name == "nochannel"
        ));
        assert!(matches!(
            customer_ref("nocolon"),
            Err(PrivacyError::BadCustomer(_))
        ));
    }
}
