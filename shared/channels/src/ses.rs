//! Amazon SES inbound: a receipt rule's SNS action publishes each mail to a topic that POSTs
//! here. SNS messages are verified ([`schemes::SNS`], [`sns`]) and must be the configured
//! topic's; its `SubscriptionConfirmation` is confirmed. The mail is in `content` (UTF-8 or
//! base64, up to 150 KB); the dedupe key is `mail.messageId`. Spam or virus gets no reply.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{ObjectReader, OutboundReply, Secret, SendError};

use crate::email::{EmailTransport, Identity, ReceivedMail, ReplyLimits, parse_mime};
use crate::kit::descriptor::build;
use crate::kit::json::invalid;
use crate::kit::sns::{self, Certificates};
use crate::kit::stored::{self, stored};
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, SettingsOf,
    Signature, Unusable, Verified, VerifyError, WebhookRequest, schemes, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "ses",
    title: "Email via Amazon SES",
    function: Function::IngressEmail,
    settings: crate::settings! {
        topic_arn: verify => "the SNS topic of the receipt rule's SNS action; messages of other topics are refused",
        from_address: send("support@example.invalid") => "your support address (verified in SES); automated replies come from it",
        signing_cert_pem: optional => "pins SNS's signing certificate (PEM) for offline checks; default: fetched from `SigningCertURL` (SNS hosts only), cached",
        raw_mail_bucket: optional => "the bucket of a receipt rule's S3 action (mail over 150 KB), read with `s3:GetObject`",
        our_addresses: optional => "further addresses of ours, never answered automatically",
        message_id_domain: optional => "domain of our replies' `Message-ID`s; default: that of `from_address`",
        max_auto_replies_per_day: optional => "automated replies per sender per day, default 10",
        replay_window_secs: optional => "how old a message's signed `Timestamp` may be; default 86400",
        signing_key_pem: optional => "development and tests only: the RSA key `simulate` signs with",
    },
    build: build::<Ses>,
    dev: |ctx| {
        json!({
            "topic_arn": "arn:aws:sns:us-east-1:000000000000:switchboard-development",
            "from_address": ctx.from_address,
            "signing_cert_pem": include_str!("ses-development-cert.pem"),
            "signing_key_pem": include_str!("ses-development-key.pem"),
        })
    },
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesConfig {
    pub topic_arn: String,
    pub from_address: String,
    pub signing_cert_pem: Option<String>,
    pub raw_mail_bucket: Option<String>,
    #[serde(default)]
    pub our_addresses: Vec<String>,
    pub message_id_domain: Option<String>,
    pub max_auto_replies_per_day: Option<u64>,
    pub replay_window_secs: Option<i64>,
    pub signing_key_pem: Option<Secret>,
}

pub struct Ses {
    signature: Signature,
    certificates: Arc<Certificates>,
    topic_arn: String,
    identity: Identity,
    http: crate::kit::descriptor::HttpClient,
    email: Arc<dyn EmailTransport>,
    limits: ReplyLimits,
    raw_mail_bucket: Option<String>,
    objects: Arc<dyn ObjectReader>,
}

impl SettingsOf for Ses {
    const NAME: &'static str = "ses";
    type Settings = SesConfig;

    fn new(config: SesConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        if !config.topic_arn.starts_with("arn:aws")
            || config.topic_arn.contains(char::is_whitespace)
        {
            return Err(unusable("topic_arn is not an SNS topic ARN"));
        }
        let certificates = Arc::new(Certificates::new(config.signing_cert_pem.as_deref())?);
        let private = match &config.signing_key_pem {
            Some(pem) => Some(
                sns::private_key_from_pem(pem.expose())
                    .ok_or_else(|| unusable("signing_key_pem is not a PKCS#8 RSA key"))?,
            ),
            None => None,
        };
        let signature = Signature::sns(schemes::SNS, certificates.clone(), private);
        let domain = config.message_id_domain.as_deref();
        Ok(Self {
            signature: signature.window(config.replay_window_secs)?,
            certificates,
            topic_arn: config.topic_arn,
            identity: Identity::new(&config.from_address, &config.our_addresses, domain)?,
            http: deps.http.clone(),
            email: deps.email.clone(),
            limits: ReplyLimits::new(Self::NAME, deps, config.max_auto_replies_per_day)?,
            raw_mail_bucket: config
                .raw_mail_bucket
                .filter(|bucket| !bucket.trim().is_empty()),
            objects: deps.objects.clone(),
        })
    }
}

impl Ses {
    /// The mail of a verified notification of an S3 action into `raw_mail_bucket`.
    async fn fetch_stored_mail(
        &self,
        request: &mut WebhookRequest,
        now_ms: i64,
    ) -> Result<(), VerifyError> {
        let envelope = sns::envelope(request.body())?;
        let message = sns::field(&envelope, "Message").unwrap_or_default();
        let notification: Value = serde_json::from_str(message).unwrap_or_default();
        let action = &notification["receipt"]["action"];
        let (Some(bucket), None) = (
            self.raw_mail_bucket.as_deref(),
            notification["content"].as_str(),
        ) else {
            return Ok(());
        };
        if action["type"] != "S3" || action["bucketName"].as_str() != Some(bucket) {
            return Ok(());
        }
        self.verify(request, now_ms)?;
        let key = action["objectKey"]
            .as_str()
            .ok_or(VerifyError::Missing("objectKey"))?;
        stored::attach(self.objects.as_ref(), request, bucket, key).await
    }
}

#[async_trait]
impl Inbound for Ses {
    async fn prepare(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), VerifyError> {
        let verify = |request: &WebhookRequest| self.verify(request, now_ms);
        match sns::prepare(&self.certificates, self.http.get(), request, verify).await? {
            Some(kind) if kind == "Notification" => self.fetch_stored_mail(request, now_ms).await,
            _ => Ok(()),
        }
    }

    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        sns::handshake(request, |request| self.verify(request, now_ms))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let verified = self.signature.verify(request, &[], now_ms)?;
        let envelope = sns::envelope(&verified.body)?;
        // Signed by SNS, but for another topic: not ours to take.
        match sns::field(&envelope, "TopicArn") {
            Some(topic) if topic == self.topic_arn => Ok(verified),
            _ => Err(VerifyError::BadSignature),
        }
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        let envelope = sns::envelope(&verified.body).map_err(|_| invalid("not an SNS envelope"))?;
        if sns::field(&envelope, "Type") != Some("Notification") {
            return Ok(Vec::new());
        }
        let message = sns::field(&envelope, "Message").unwrap_or_default();
        let notification: Value = serde_json::from_str(message)?;
        let (mail, receipt) = (&notification["mail"], &notification["receipt"]);
        let failed = |verdict: &str| receipt[verdict]["status"] == "FAIL";
        if notification["notificationType"] != "Received"
            || failed("spamVerdict")
            || failed("virusVerdict")
        {
            return Ok(Vec::new());
        }
        let id = mail["messageId"].as_str().filter(|id| !id.is_empty());
        let id = id.ok_or_else(|| invalid("notification without mail.messageId"))?;
        let encoding = receipt["action"]["encoding"].as_str();
        let raw = match (notification["content"].as_str(), encoding) {
            (Some(content), Some("BASE64" | "Base64")) => base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|_| invalid("content is not base64"))?,
            (Some(content), _) => content.as_bytes().to_vec(),
            (None, _) => stored(request).map(|raw| raw.to_vec()).ok_or_else(|| {
                invalid("no mail content: use the SNS action, or an S3 action into raw_mail_bucket")
            })?,
        };
        let mail_text = parse_mime(&raw)?;
        let received = ReceivedMail {
            text: mail_text.customer_text(),
            headers: mail_text.headers,
            from: mail_text.from,
            envelope_sender: mail["source"].as_str().map(str::to_owned),
            recipient: mail["destination"][0].as_str().map(str::to_owned),
            subject: mail_text.subject,
            attachments: mail_text.attachments,
            delivery_id: Some(id.to_owned()),
            sent_at_ms: mail["timestamp"]
                .as_str()
                .and_then(sns::timestamp_ms)
                .unwrap_or_default(),
        };
        let mut messages = self.identity.inbound(Self::NAME, received)?;
        for message in &mut messages {
            message.provider_message_id = id.to_owned();
        }
        Ok(messages)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let to = crate::email::address_of(&self.identity.from_address).unwrap_or_default();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let notification = json!({
            "notificationType": "Received",
            "mail": { "messageId": id, "source": customer, "destination": [to], "timestamp": "2024-01-01T00:00:00.000Z" },
            "receipt": { "action": { "type": "SNS", "topicArn": self.topic_arn, "encoding": "UTF8" } },
            "content": crate::email::sample_mail(customer, &to, text, now_ms),
        });
        sns::notification(
            &self.topic_arn,
            "Amazon SES Email Receipt Notification",
            &notification,
        )
    }

    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), crate::kit::SignError> {
        sns::sign_for_topic(&self.signature, &self.topic_arn, request, now_ms)
    }
}

#[async_trait]
impl Outbound for Ses {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.limits.check(reply).await?;
        self.identity
            .send_reply(Self::NAME, self.email.as_ref(), reply)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{DevContext, build_request};

    const NOW_MS: i64 = 1_700_000_000_000;

    fn channel(topic: &str) -> Ses {
        let context = DevContext {
            channel: "ses",
            stand_in: "http://127.0.0.1:9",
            from_address: "Shop <support@shop.example>",
            seed: "seed",
        };
        let mut settings = (SPEC.dev)(&context);
        settings["topic_arn"] = topic.into();
        let config: SesConfig = serde_json::from_value(settings).unwrap();
        Ses::new(config, &ChannelDeps::offline()).unwrap()
    }

    const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:inbound";
    const CERT_URL: &str = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem";

    #[test]
    fn development_samples_verify_and_normalise() {
        let ses = channel(TOPIC);
        let mut sample = ses.sample("ann@customer.example", "包裹在哪里？", NOW_MS);
        assert!(ses.verify(&sample, NOW_MS).is_err());
        ses.sign(&mut sample, NOW_MS).unwrap();
        let verified = ses.verify(&sample, NOW_MS).unwrap();
        let message = &ses.parse(&sample, &verified).unwrap()[0];
        assert_eq!(message.text, "包裹在哪里？");
        assert_eq!(message.customer_id, "ann@customer.example");
        assert_eq!(message.account_id, "support@shop.example");
        // Another topic's message, properly signed, is not ours.
        let mut foreign = ses.sample("ann@customer.example", "x", NOW_MS);
        channel("arn:aws:sns:eu-west-1:123456789012:other")
            .sign(&mut foreign, NOW_MS)
            .unwrap();
        assert!(matches!(
            ses.verify(&foreign, NOW_MS),
            Err(VerifyError::BadSignature)
        ));
        // A day and a bit later the signed timestamp is stale.
        let later = NOW_MS + 86_401_000;
        assert!(matches!(
            ses.verify(&sample, later),
            Err(VerifyError::Stale { .. })
        ));
    }

    #[test]
    fn base64_content_and_failed_verdicts() {
        let ses = channel(TOPIC);
        let mail = crate::email::sample_mail(
            "bob@customer.example",
            "support@shop.example",
            "Réclamation",
            1,
        );
        let notification = |encoding: &str, content: String, spam: &str| {
            json!({
                "notificationType": "Received",
                "mail": { "messageId": "m-1", "source": "bob@customer.example", "destination": ["support@shop.example"], "timestamp": "2023-11-14T22:13:20.000Z" },
                "receipt": { "spamVerdict": { "status": spam }, "action": { "type": "SNS", "encoding": encoding } },
                "content": content,
            })
        };
        let post = |notification: Value| {
            let envelope = json!({ "Type": "Notification", "MessageId": "e", "TopicArn": TOPIC, "Message": notification.to_string(), "SigningCertURL": CERT_URL });
            let mut request = build_request("POST", "/", &[], envelope.to_string()).unwrap();
            ses.sign(&mut request, NOW_MS).unwrap();
            request
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(&mail);
        let request = post(notification("BASE64", encoded, "PASS"));
        let messages = ses
            .parse(&request, &ses.verify(&request, NOW_MS).unwrap())
            .unwrap();
        assert_eq!(messages[0].text, "Réclamation");
        assert_eq!(messages[0].provider_message_id, "m-1");
        assert_eq!(messages[0].sent_at_ms, NOW_MS);
        let spam = post(notification("UTF8", mail, "FAIL"));
        assert!(
            ses.parse(&spam, &ses.verify(&spam, NOW_MS).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn subscriptions_are_confirmed_only_on_sns_hosts() {
        let ses = channel(TOPIC);
        let confirmation = |url: &str| {
            let envelope = json!({ "Type": "SubscriptionConfirmation", "MessageId": "s", "Token": "t", "TopicArn": TOPIC, "Message": "confirm", "SubscribeURL": url, "SigningCertURL": CERT_URL });
            let mut request = build_request("POST", "/", &[], envelope.to_string()).unwrap();
            ses.sign(&mut request, NOW_MS).unwrap();
            request
        };
        let evil = confirmation("https://evil.example/?Action=ConfirmSubscription");
        assert!(matches!(
            ses.prepare(&mut evil.clone(), NOW_MS).await,
            Err(VerifyError::Malformed(_))
        ));
        assert!(ses.handshake(&evil, NOW_MS).unwrap().is_some());
        let unsigned =
            build_request("POST", "/", &[], r#"{"Type":"SubscriptionConfirmation"}"#).unwrap();
        assert!(ses.handshake(&unsigned, NOW_MS).is_err());
    }

    /// One stored object, as SES's S3 action leaves it.
    struct Bucket(Vec<u8>);

    #[async_trait]
    impl ObjectReader for Bucket {
        async fn read(
            &self,
            bucket: &str,
            key: &str,
            max: usize,
        ) -> Result<Option<Vec<u8>>, switchboard_domain::StoreError> {
            assert!(max >= self.0.len());
            Ok((bucket == "inbound-mail" && key == "mail/m-2").then(|| self.0.clone()))
        }
    }

    #[tokio::test]
    async fn mail_an_s3_action_stored_is_read_after_verification() {
        let mail = crate::email::sample_mail(
            "big@customer.example",
            "support@shop.example",
            "Large attachment inside",
            1,
        );
        let deps = ChannelDeps {
            objects: Arc::new(Bucket(mail.into_bytes())),
            ..ChannelDeps::offline()
        };
        let mut settings = (SPEC.dev)(&DevContext {
            channel: "ses",
            stand_in: "",
            from_address: "support@shop.example",
            seed: "s",
        });
        settings["topic_arn"] = TOPIC.into();
        settings["raw_mail_bucket"] = "inbound-mail".into();
        let ses = Ses::new(serde_json::from_value(settings).unwrap(), &deps).unwrap();
        let notification = json!({
            "notificationType": "Received",
            "mail": { "messageId": "m-2", "source": "big@customer.example", "destination": ["support@shop.example"], "timestamp": "2023-11-14T22:13:20.000Z" },
            "receipt": { "action": { "type": "S3", "topicArn": TOPIC, "bucketName": "inbound-mail", "objectKey": "mail/m-2" } },
        });
        let mut request = sns::notification(
            TOPIC,
            "Amazon SES Email Receipt Notification",
            &notification,
        );
        ses.sign(&mut request, NOW_MS).unwrap();
        let verified = ses.verify(&request, NOW_MS).unwrap();
        assert!(ses.parse(&request, &verified).is_err(), "not fetched yet");
        ses.prepare(&mut request, NOW_MS).await.unwrap();
        let message = &ses.parse(&request, &verified).unwrap()[0];
        assert_eq!(message.text, "Large attachment inside");
        assert_eq!(message.provider_message_id, "m-2");
        // Nothing is fetched for an unverified notification.
        let mut forged = sns::notification(TOPIC, "x", &notification);
        assert!(ses.prepare(&mut forged, NOW_MS).await.is_err());
        assert!(stored(&forged).is_none());
    }
}
