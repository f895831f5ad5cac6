//! Channel secrets from one Secrets Manager secret holding a JSON object.

use aws_sdk_secretsmanager::Client;
use switchboard_domain::Secret;

use crate::error::AwsError;

/// Reads the secret `arn` (its string value, or its binary value as UTF-8)
/// and parses it as a JSON object. Call once during init. Errors never
/// contain the value.
pub async fn load_json_secret(client: &Client, arn: &str) -> Result<serde_json::Value, AwsError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| AwsError::SecretsManager {
            operation: "GetSecretValue",
            source: e.into(),
        })?;
    let text = match (output.secret_string(), output.secret_binary()) {
        (Some(text), _) => text.to_owned(),
        (None, Some(binary)) => String::from_utf8(binary.as_ref().to_vec())
            .map_err(|_| AwsError::Config("the secret's binary value is not UTF-8".into()))?,
        (None, None) => return Err(AwsError::Config("the secret has no value".into())),
    };
    // serde_json's messages can quote the input; report only the position.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        AwsError::Config(format!(
            "the secret is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(AwsError::Config("the secret is not a JSON object".into()));
    }
    Ok(value)
}

/// A string field of a loaded secret (e.g. `smtp_password`), wrapped so that
/// it cannot be logged by accident. `None` when absent or not a string.
pub fn secret_field(secret: &serde_json::Value, key: &str) -> Option<Secret> {
    secret.get(key).and_then(|v| v.as_str()).map(Secret::from)
}
