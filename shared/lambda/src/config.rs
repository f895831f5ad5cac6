//! Typed configuration of every function, read once at init from the
//! environment the SAM template sets. Secrets are not here: they come from
//! the one Secrets Manager secret named by `SWITCHBOARD_SECRET_ARN`.

use std::collections::HashSet;

use switchboard_aws::AwsResources;
use switchboard_channels::email::{SmtpConfig, SmtpTls};
use switchboard_domain::Secret;
use switchboard_pipeline::worker::WorkerSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Resources(#[from] switchboard_aws::AwsError),
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {detail}")]
    Invalid { name: &'static str, detail: String },
}

#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub resources: AwsResources,
    pub secret_arn: String,
    /// Our address: notifications and automated email replies come from it.
    pub from_email: String,
    pub agents_email: String,
    pub priority_agents_email: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_username: Option<String>,
    pub smtp_tls: SmtpTls,
    pub worker: WorkerSettings,
}

impl FunctionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).ok_or(ConfigError::Missing(name));
        let resources = AwsResources::from_lookup(&lookup)?;
        let smtp_port = match lookup("SWITCHBOARD_SMTP_PORT") {
            Some(port) => Some(port.parse().map_err(|_| ConfigError::Invalid {
                name: "SWITCHBOARD_SMTP_PORT",
                detail: "not a port number".into(),
            })?),
            None => None,
        };
        let smtp_tls = match lookup("SWITCHBOARD_SMTP_TLS").as_deref() {
            None | Some("starttls") => SmtpTls::Starttls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "SWITCHBOARD_SMTP_TLS",
                    detail: "one of starttls, tls, none".into(),
                });
            }
        };
        let minutes = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            lookup(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    detail: "not a whole number of minutes".into(),
                })
            })
        };
        let vip_customers: HashSet<String> = lookup("SWITCHBOARD_VIP_CUSTOMERS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        let worker = WorkerSettings {
            vip_customers,
            priority_response_minutes: minutes("SWITCHBOARD_PRIORITY_RESPONSE_MINUTES", 15)?,
            standard_response_minutes: minutes("SWITCHBOARD_STANDARD_RESPONSE_MINUTES", 240)?,
            ..WorkerSettings::default()
        };
        Ok(Self {
            resources,
            secret_arn: required("SWITCHBOARD_SECRET_ARN")?,
            from_email: required("SWITCHBOARD_FROM_EMAIL")?,
            agents_email: required("SWITCHBOARD_AGENTS_EMAIL")?,
            priority_agents_email: lookup("SWITCHBOARD_PRIORITY_AGENTS_EMAIL"),
            smtp_host: lookup("SWITCHBOARD_SMTP_HOST"),
            smtp_port,
            smtp_username: lookup("SWITCHBOARD_SMTP_USERNAME"),
            smtp_tls,
            worker,
        })
    }

    /// SMTP settings with the password from the secret, when a host is set.
    pub fn smtp(&self, password: Option<Secret>) -> Option<SmtpConfig> {
        let host = self.smtp_host.clone()?;
        Some(SmtpConfig {
            host,
            port: self.smtp_port,
            username: self.smtp_username.clone().map(Secret::new),
            password,
            tls: self.smtp_tls,
            timeout_secs: Some(10),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env() -> HashMap<&'static str, String> {
        let mut env: HashMap<&'static str, String> = AwsResources::ENV_VARS
            .iter()
            .map(|name| (*name, format!("value-of-{name}")))
            .collect();
        env.insert(
            "SWITCHBOARD_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:1:secret:sb".into(),
        );
        env.insert("SWITCHBOARD_FROM_EMAIL", "support@shop.test".into());
        env.insert("SWITCHBOARD_AGENTS_EMAIL", "agents@shop.test".into());
        env.insert("SWITCHBOARD_VIP_CUSTOMERS", "telegram:1, slack:U2 ,".into());
        env.insert(
            "SWITCHBOARD_SMTP_HOST",
            "email-smtp.eu-west-1.amazonaws.com".into(),
        );
        env.insert("SWITCHBOARD_SMTP_PORT", "587".into());
        env
    }

    #[test]
    fn reads_the_environment_the_template_sets() {
        let env = env();
        let config = FunctionConfig::from_lookup(|name| env.get(name).cloned()).unwrap();
        assert_eq!(config.worker.vip_customers.len(), 2);
        assert!(config.worker.vip_customers.contains("slack:U2"));
        assert_eq!(config.smtp(None).unwrap().port, Some(587));
        assert_eq!(config.worker.priority_response_minutes, 15);
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let mut env = env();
        env.remove("SWITCHBOARD_AGENTS_EMAIL");
        let error = FunctionConfig::from_lookup(|name| env.get(name).cloned()).unwrap_err();
        assert!(error.to_string().contains("SWITCHBOARD_AGENTS_EMAIL"));
        let mut env = self::tests::env();
        env.insert("SWITCHBOARD_SMTP_PORT", "lots".into());
        let error = FunctionConfig::from_lookup(|name| env.get(name).cloned()).unwrap_err();
        assert!(error.to_string().contains("SWITCHBOARD_SMTP_PORT"));
    }
}
