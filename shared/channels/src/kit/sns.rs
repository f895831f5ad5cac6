//! Amazon SNS message signatures (the path Amazon SES takes to an HTTPS
//! endpoint): RSA PKCS#1 v1.5 over a canonical string built from the
//! envelope's fields, SHA-1 (`SignatureVersion` 1) or SHA-256 (2), with the
//! certificate at `SigningCertURL`.
//!
//! The certificate is taken only from an `https://sns.<region>.amazonaws.com`
//! URL ending in `.pem` (the rule of AWS's own validators), fetched once per
//! URL and cached, or pinned in the settings so requests verify offline.
//! Fetching is async ([`Certificates::fetch`], called by the channel's
//! `prepare`); verification itself is synchronous and only reads the cache.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::{Unusable, VerifyError, unusable};

/// Signed fields, in the order they enter the string to sign.
const SIGNED_KEYS: &[&str] = &[
    "Message",
    "MessageId",
    "Subject",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// Largest certificate accepted from a URL.
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

/// Most certificates kept (SNS rotates them rarely; a bound keeps memory flat).
const MAX_CACHED: usize = 16;

/// An SNS envelope: the JSON object of the request body.
pub fn envelope(body: &[u8]) -> Result<Map<String, Value>, VerifyError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::Malformed("SNS envelope")),
    }
}

/// A string field of the envelope (`null` counts as absent).
pub fn field<'a>(envelope: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    envelope.get(name).and_then(Value::as_str)
}

/// The certificate URL: HTTP deliveries say `SigningCertURL`, Lambda
/// subscriptions `SigningCertUrl`.
pub fn cert_url(envelope: &Map<String, Value>) -> Option<&str> {
    field(envelope, "SigningCertURL").or_else(|| field(envelope, "SigningCertUrl"))
}

/// `key\nvalue\n` for every signed key present and not null, in order.
pub fn string_to_sign(envelope: &Map<String, Value>) -> Vec<u8> {
    let mut out = String::new();
    for key in SIGNED_KEYS {
        if let Some(value) = field(envelope, key) {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// Whether a certificate may be fetched from `url`: `https`, a host
/// `sns.<region>.amazonaws.com` (or `.com.cn`), a path ending in `.pem`.
pub fn valid_cert_url(url: &str) -> bool {
    let Ok(parsed) = url.parse::<http::Uri>() else {
        return false;
    };
    let host = parsed.host().unwrap_or_default();
    let region = host
        .strip_prefix("sns.")
        .and_then(|rest| {
            rest.strip_suffix(".amazonaws.com")
                .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
        })
        .unwrap_or_default();
    parsed.scheme_str() == Some("https")
        && parsed.port().is_none()
        && parsed.query().is_none()
        && parsed.path().ends_with(".pem")
        && region.len() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An RSA public key from PEM: a certificate or a bare public key.
pub fn public_key_from_pem(pem: &str) -> Option<RsaPublicKey> {
    let pem = pem.trim();
    if pem.contains("BEGIN CERTIFICATE") {
        use x509_cert::der::{DecodePem, Encode};
        let certificate = x509_cert::Certificate::from_pem(pem.as_bytes()).ok()?;
        let spki = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .ok()?;
        RsaPublicKey::from_public_key_der(&spki).ok()
    } else {
        RsaPublicKey::from_public_key_pem(pem).ok()
    }
}

/// An RSA private key from PKCS#8 PEM (development and tests sign with it).
pub fn private_key_from_pem(pem: &str) -> Option<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem.trim()).ok()
}

/// Signing certificates: the pinned one, else those fetched, by URL.
#[derive(Default)]
pub struct Certificates {
    pinned: Option<RsaPublicKey>,
    fetched: Mutex<HashMap<String, RsaPublicKey>>,
}

impl Certificates {
    /// With `pem` pinned (a certificate or public key), when given.
    pub fn new(pem: Option<&str>) -> Result<Self, Unusable> {
        let pinned = match pem.map(str::trim).filter(|pem| !pem.is_empty()) {
            Some(pem) => Some(public_key_from_pem(pem).ok_or_else(|| {
                unusable("signing_cert_pem is not an RSA certificate or public key")
            })?),
            None => None,
        };
        Ok(Self {
            pinned,
            fetched: Mutex::default(),
        })
    }

    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// The key for a message whose certificate is at `url`.
    pub fn key_for(&self, url: &str) -> Option<RsaPublicKey> {
        if let Some(pinned) = &self.pinned {
            return Some(pinned.clone());
        }
        let cache = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(url).cloned()
    }

    /// Fetches the certificate at `url` unless pinned or cached. A URL that
    /// is not AWS's is refused without any request.
    pub async fn fetch(&self, http: &reqwest::Client, url: &str) -> Result<(), VerifyError> {
        if self.key_for(url).is_some() {
            return Ok(());
        }
        if !valid_cert_url(url) {
            return Err(VerifyError::Malformed("SigningCertURL"));
        }
        let unavailable = |_| VerifyError::Unavailable("signing certificate");
        let response = http
            .get(url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        let body = response.bytes().await.map_err(unavailable)?;
        if body.len() > MAX_CERTIFICATE_BYTES {
            return Err(VerifyError::Malformed("signing certificate"));
        }
        let key = std::str::from_utf8(&body)
            .ok()
            .and_then(public_key_from_pem)
            .ok_or(VerifyError::Malformed("signing certificate"))?;
        let mut cache = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(url.to_owned(), key);
        Ok(())
    }
}

/// What a subscriber does before the synchronous checks: fetch the signing
/// certificate (unless pinned or cached) and, for a `SubscriptionConfirmation`
/// that `verify` accepts (signature and topic), confirm it. Returns the
/// envelope's `Type`.
pub async fn prepare(
    certificates: &Certificates,
    http: &reqwest::Client,
    request: &super::WebhookRequest,
    verify: impl Fn(&super::WebhookRequest) -> Result<super::Verified, VerifyError>,
) -> Result<Option<String>, VerifyError> {
    let envelope = envelope(request.body())?;
    if let Some(url) = cert_url(&envelope) {
        certificates.fetch(http, url).await?;
    }
    let kind = field(&envelope, "Type").map(str::to_owned);
    if kind.as_deref() == Some("SubscriptionConfirmation") {
        verify(request)?;
        confirm_subscription(http, &envelope).await?;
        tracing::info!("SNS subscription confirmed");
    }
    Ok(kind)
}

/// The answer to a (un)subscription confirmation that `verify` accepts.
pub fn handshake(
    request: &super::WebhookRequest,
    verify: impl Fn(&super::WebhookRequest) -> Result<super::Verified, VerifyError>,
) -> super::Handshake {
    let envelope = envelope(request.body()).unwrap_or_default();
    match field(&envelope, "Type") {
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            verify(request)?;
            let answer = serde_json::json!({ "ok": true, "confirmed": true });
            Ok(Some(super::reply::json(200, &answer)))
        }
        _ => Ok(None),
    }
}

/// An unsigned SNS notification of `topic` carrying `message` (samples).
pub fn notification(topic: &str, subject: &str, message: &Value) -> super::WebhookRequest {
    let envelope = serde_json::json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": topic,
        "Subject": subject,
        "Message": message.to_string(),
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-development.pem",
    });
    let headers = [(
        "content-type".to_owned(),
        "text/plain; charset=UTF-8".to_owned(),
    )];
    super::build_request("POST", "/webhooks", &headers, envelope.to_string())
        .expect("a valid request")
}

/// Signs as SNS would for `topic` (the envelope's `TopicArn` set to it).
pub fn sign_for_topic(
    signature: &super::Signature,
    topic: &str,
    request: &mut super::WebhookRequest,
    now_ms: i64,
) -> Result<(), super::SignError> {
    if let Ok(mut envelope) = envelope(request.body()) {
        envelope.insert("TopicArn".into(), topic.into());
        *request.body_mut() = serde_json::to_vec(&envelope).unwrap_or_default().into();
    }
    signature.sign(request, &[], now_ms, "")
}

/// Confirms a verified `SubscriptionConfirmation` by fetching its
/// `SubscribeURL`, which must be on an SNS host.
pub async fn confirm_subscription(
    http: &reqwest::Client,
    envelope: &Map<String, Value>,
) -> Result<(), VerifyError> {
    let url = field(envelope, "SubscribeURL").ok_or(VerifyError::Missing("SubscribeURL"))?;
    let on_sns = url.parse::<http::Uri>().ok().is_some_and(|uri| {
        let host = uri.host().unwrap_or_default();
        uri.scheme_str() == Some("https") && valid_cert_url(&format!("https://{host}/x.pem"))
    });
    if !on_sns {
        return Err(VerifyError::Malformed("SubscribeURL"));
    }
    let confirmed = http
        .get(url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    match confirmed.and_then(reqwest::Response::error_for_status) {
        Ok(_) => Ok(()),
        Err(_) => Err(VerifyError::Unavailable("SNS subscription confirmation")),
    }
}

/// Checks an envelope's signature and timestamp (at most `max_age_secs`
/// old, at most a minute ahead).
pub fn verify(
    certificates: &Certificates,
    envelope: &Map<String, Value>,
    max_age_secs: i64,
    now_ms: i64,
) -> Result<(), VerifyError> {
    let url = cert_url(envelope).ok_or(VerifyError::Missing("SigningCertURL"))?;
    let signature = field(envelope, "Signature").ok_or(VerifyError::Missing("Signature"))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    let message = string_to_sign(envelope);
    let (scheme, hashed) = match field(envelope, "SignatureVersion") {
        Some("1") => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(&message).to_vec()),
        Some("2") => (
            Pkcs1v15Sign::new::<Sha256>(),
            Sha256::digest(&message).to_vec(),
        ),
        Some(_) => return Err(VerifyError::Malformed("SignatureVersion")),
        None => return Err(VerifyError::Missing("SignatureVersion")),
    };
    if !certificates.is_pinned() && !valid_cert_url(url) {
        return Err(VerifyError::Malformed("SigningCertURL"));
    }
    let key = certificates
        .key_for(url)
        .ok_or(VerifyError::Unavailable("signing certificate"))?;
    key.verify(scheme, &hashed, &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let timestamp = field(envelope, "Timestamp").ok_or(VerifyError::Missing("Timestamp"))?;
    check_timestamp(timestamp, max_age_secs, now_ms)
}

/// An RFC 3339 timestamp (`2022-07-28T21:23:58.317Z`) in unix milliseconds.
pub fn timestamp_ms(timestamp: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(timestamp.trim(), &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// An RFC 3339 timestamp within `max_age_secs` before now and a minute after.
pub fn check_timestamp(timestamp: &str, max_age_secs: i64, now_ms: i64) -> Result<(), VerifyError> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(timestamp.trim(), &Rfc3339)
        .map_err(|_| VerifyError::Malformed("Timestamp"))?;
    let age = now_ms.div_euclid(1000).saturating_sub(at.unix_timestamp());
    if age > max_age_secs {
        return Err(VerifyError::Stale {
            window_secs: max_age_secs,
        });
    }
    if age < -super::schemes::SKEW_SECS {
        return Err(VerifyError::Future {
            skew_secs: super::schemes::SKEW_SECS,
        });
    }
    Ok(())
}

/// Signs an envelope as SNS does (SignatureVersion 2), with `Timestamp` set
/// to `now_ms`: development mode, `simulate` and tests.
pub fn sign(private: &RsaPrivateKey, envelope: &mut Map<String, Value>, now_ms: i64) {
    let at = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    let timestamp = at.format(&format).unwrap_or_default();
    envelope.insert("Timestamp".into(), timestamp.into());
    envelope.insert("SignatureVersion".into(), "2".into());
    let hashed = Sha256::digest(string_to_sign(envelope));
    let signature = private
        .sign(Pkcs1v15Sign::new::<Sha256>(), &hashed)
        .unwrap_or_default();
    envelope.insert("Signature".into(), BASE64.encode(signature).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's SNS certificate and four messages it signed, from the functional
    /// tests of aws/aws-php-sns-message-validator (tests/FunctionalValidationsTest.php).
    const AWS_CERTIFICATE: &str = include_str!("../../tests/data/sns/aws-sns-2022.pem");
    const AWS_MESSAGES: &str = include_str!("../../tests/data/sns/aws-sns-2022.json");
    /// 2022-07-28T23:00:00Z, shortly after the messages were signed.
    const THEN_MS: i64 = 1_659_049_200_000;

    fn messages() -> Vec<Map<String, Value>> {
        serde_json::from_str(AWS_MESSAGES).unwrap()
    }

    #[test]
    fn aws_signed_messages_verify_with_versions_1_and_2() {
        let certificates = Certificates::new(Some(AWS_CERTIFICATE)).unwrap();
        let messages = messages();
        assert!(messages.len() >= 5);
        let versions: Vec<_> = messages
            .iter()
            .map(|m| field(m, "SignatureVersion").unwrap())
            .collect();
        assert!(versions.contains(&"1") && versions.contains(&"2"));
        for message in &messages {
            verify(&certificates, message, 86_400, THEN_MS).unwrap();
        }
    }

    #[test]
    fn changed_fields_foreign_keys_and_stale_messages_are_refused() {
        let certificates = Certificates::new(Some(AWS_CERTIFICATE)).unwrap();
        for message in messages() {
            let mut changed = message.clone();
            changed.insert("Message".into(), "Hello world!".into());
            assert!(matches!(
                verify(&certificates, &changed, 86_400, THEN_MS),
                Err(VerifyError::BadSignature)
            ));
            let mut other_version = message.clone();
            let flipped = match field(&message, "SignatureVersion") {
                Some("1") => "2",
                _ => "1",
            };
            other_version.insert("SignatureVersion".into(), flipped.into());
            assert!(verify(&certificates, &other_version, 86_400, THEN_MS).is_err());
            let later = THEN_MS + 2 * 86_400_000;
            assert!(matches!(
                verify(&certificates, &message, 86_400, later),
                Err(VerifyError::Stale { .. })
            ));
            let earlier = THEN_MS - 86_400_000;
            assert!(matches!(
                verify(&certificates, &message, 86_400, earlier),
                Err(VerifyError::Future { .. })
            ));
        }
        let foreign = Certificates::new(Some(include_str!(
            "../../tests/data/sns/test-signing-cert.pem"
        )))
        .unwrap();
        assert!(matches!(
            verify(&foreign, &messages()[0], 86_400, THEN_MS),
            Err(VerifyError::BadSignature)
        ));
        // Not pinned and not fetched: no key, and nothing is guessed.
        assert!(matches!(
            verify(&Certificates::default(), &messages()[0], 86_400, THEN_MS),
            Err(VerifyError::Unavailable(_))
        ));
    }

    #[test]
    fn null_subject_is_skipped() {
        let messages = messages();
        let with_null = messages
            .iter()
            .find(|m| m.get("Subject") == Some(&Value::Null))
            .expect("a Lambda-style message with \"Subject\": null");
        assert!(
            !String::from_utf8(string_to_sign(with_null))
                .unwrap()
                .contains("Subject")
        );
    }

    #[test]
    fn certificates_come_only_from_sns_hosts() {
        for good in [
            "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
        ] {
            assert!(valid_cert_url(good), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.crt",
            "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.x.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us_east.amazonaws.com/x.pem",
            "not a url",
        ] {
            assert!(!valid_cert_url(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn foreign_urls_are_never_fetched() {
        let certificates = Certificates::default();
        let http = reqwest::Client::new();
        let result = certificates
            .fetch(&http, "https://127.0.0.1:9/SimpleNotificationService-x.pem")
            .await;
        assert!(matches!(result, Err(VerifyError::Malformed(_))));
    }

    #[test]
    fn our_signature_verifies_like_aws_one() {
        let private =
            private_key_from_pem(include_str!("../../tests/data/sns/test-signing-key.pem"))
                .unwrap();
        let certificates = Certificates::new(Some(include_str!(
            "../../tests/data/sns/test-signing-cert.pem"
        )))
        .unwrap();
        let mut message = messages()[0].clone();
        sign(&private, &mut message, THEN_MS);
        verify(&certificates, &message, 300, THEN_MS).unwrap();
        assert_eq!(
            field(&message, "Timestamp"),
            Some("2022-07-28T23:00:00.000Z")
        );
    }
}
