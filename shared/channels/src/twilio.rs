//! SMS and WhatsApp through Twilio Messaging webhooks. `X-Twilio-Signature`
//! signs the URL Twilio called plus the sorted form ([`schemes::TWILIO`]);
//! behind API Gateway that URL is the `public_url` setting with the request's
//! query, with or without the default port as Twilio's SDKs allow. One request
//! is one message, deduplicated on `MessageSid`; status callbacks and our own
//! number's messages yield nothing. We answer an empty TwiML `<Response/>` and
//! reply through the Messages API (as `whatsapp:` to WhatsApp customers).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{
    Attachment, Clock, InboundMessage, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::kit::descriptor::build;
use crate::kit::form::form_request;
use crate::kit::json::location;
use crate::kit::sender::{base_url_or, http_url};
use crate::kit::sms;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, HttpReply, Inbound, Outbound, Parsed,
    RequestExt, STATUS_ONLY, Sender, SettingsOf, SignError, Signature, TextUnit, Unusable,
    Verified, VerifyError, WebhookRequest, kind_for_mime, reply, required, schemes, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "twilio",
    title: "SMS and WhatsApp via Twilio",
    function: Function::IngressIm,
    settings: crate::settings! {
        auth_token: verify => "Console → Account → API keys & tokens → Auth token; checks `X-Twilio-Signature`, and authenticates replies",
        account_sid: send("AC00000000000000000000000000000000") => "Console → Account Info → Account SID (`AC...`)",
        from_number: send("+15005550006") => "the Twilio number replies come from, E.164 (`+1...`); WhatsApp customers get it as `whatsapp:+1...`",
        public_url: optional => "the webhook URL exactly as entered on the number's Messaging configuration page (scheme, host, port, path); needed behind API Gateway or a proxy; default: the URL the request arrived at",
        api_base: optional => "default `https://api.twilio.com`",
    },
    build: build::<Twilio>,
    dev: |ctx| {
        json!({ "auth_token": ctx.secret("auth_token"), "account_sid": format!("AC{}", ctx.secret("account_sid")),
                "from_number": "+15005550006", "api_base": ctx.stand_in })
    },
};

/// Twilio takes a body of up to 1600 characters and sends it in segments.
const MAX_TEXT_CHARS: usize = 1600;
/// Twilio's own limit of media per message.
const MAX_MEDIA: usize = 10;
const TWILIO_API: &str = "https://api.twilio.com";
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";
/// Failures carry `{"code": 21211, "message": ..., "status": 400}`.
const ERRORS: ApiErrors = ApiErrors {
    code: "/code",
    ..STATUS_ONLY
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub auth_token: Secret,
    pub account_sid: String,
    pub from_number: String,
    pub public_url: Option<String>,
    pub api_base: Option<String>,
}

pub struct Twilio {
    signature: Signature,
    auth_token: Secret,
    account_sid: String,
    from_number: String,
    public_url: Option<String>,
    api_base: String,
    sender: Sender,
    clock: std::sync::Arc<dyn Clock>,
}

impl SettingsOf for Twilio {
    const NAME: &'static str = "twilio";
    type Settings = TwilioConfig;

    fn new(config: TwilioConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("auth_token", &config.auth_token)?;
        let sid = config.account_sid.trim();
        if !sid.starts_with("AC") || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(unusable(
                "account_sid must be AC followed by letters and digits",
            ));
        }
        let number = config.from_number.trim().trim_start_matches("whatsapp:");
        let digits = number.strip_prefix('+').unwrap_or_default();
        if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unusable("from_number must be E.164, such as +15005550006"));
        }
        let public_url = config.public_url.as_deref();
        let public_url = public_url
            .map(|url| http_url("public_url", url))
            .transpose()?;
        Ok(Self {
            signature: Signature::shared(schemes::TWILIO, "auth_token", &config.auth_token)?,
            auth_token: config.auth_token,
            account_sid: sid.to_owned(),
            from_number: number.to_owned(),
            public_url,
            api_base: base_url_or("api_base", config.api_base.as_deref(), TWILIO_API)?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
            clock: deps.clock.clone(),
        })
    }
}

impl Inbound for Twilio {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let registered = self.public_url.as_deref();
        self.signature.verify_as_called(request, registered, now_ms)
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        let read;
        let fields = match &verified.form {
            Some(form) => &form.fields,
            None => {
                read = request.form_fields();
                &read
            }
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let sid = field("MessageSid").or_else(|| field("SmsMessageSid"));
        let (Some(sid), Some(from)) = (sid, field("From")) else {
            return Err(crate::kit::json::invalid(
                "a form without MessageSid or From",
            ));
        };
        // Status callbacks report on messages we sent; only `received` is the customer's.
        let status = field("MessageStatus").or_else(|| field("SmsStatus"));
        let ours = from.trim_start_matches("whatsapp:") == self.from_number;
        if ours || status.is_some_and(|status| status != "received") {
            return Ok(Vec::new());
        }
        let count: usize = field("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut attachments: Vec<Attachment> = (0..count.min(MAX_MEDIA))
            .filter_map(|i| {
                let url = field(&format!("MediaUrl{i}"))?;
                let mime = field(&format!("MediaContentType{i}"));
                let kind = kind_for_mime(mime.as_deref().unwrap_or_default());
                let (provider_id, name) = (None, None);
                Some(Attachment {
                    kind,
                    provider_id,
                    url: Some(url),
                    mime_type: mime,
                    name,
                })
            })
            .collect();
        if let (Some(lat), Some(long)) = (field("Latitude"), field("Longitude")) {
            let number = |v: &str| v.parse::<f64>().ok().map(serde_json::Value::from);
            if let (Some(lat), Some(long)) = (number(&lat), number(&long)) {
                attachments.push(location(&lat, &long, field("Label").or(field("Address"))));
            }
        }
        let body = field("Body").or(field("ButtonText")).unwrap_or_default();
        let body = body.trim().to_owned();
        if body.is_empty() && attachments.is_empty() {
            return Ok(Vec::new());
        }
        let kind = sms::kind(&from, &body, field("OptOutType").as_deref());
        Ok(vec![InboundMessage {
            channel: Self::NAME.into(),
            account_id: field("AccountSid").unwrap_or_else(|| self.account_sid.clone()),
            customer_id: from.clone(),
            customer_name: field("ProfileName"),
            conversation_id: from,
            provider_message_id: sid.clone(),
            // Twilio's webhook carries no time: the message is as recent as its delivery.
            sent_at_ms: self.clock.now_ms(),
            kind,
            text: body,
            attachments,
            reply: ReplyContext {
                message_id: Some(sid),
                ..ReplyContext::default()
            },
        }])
    }

    fn acknowledge(&self) -> HttpReply {
        reply::with_type(200, "text/xml", EMPTY_TWIML)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let sid = format!("SM{:032x}", now_ms as u128 ^ (customer.len() as u128) << 64);
        let (to, account) = (self.from_number.as_str(), self.account_sid.as_str());
        let fields = [
            ("MessageSid", sid.as_str()),
            ("AccountSid", account),
            ("From", customer),
        ];
        let more = [
            ("To", to),
            ("Body", text),
            ("NumMedia", "0"),
            ("SmsStatus", "received"),
        ];
        form_request("/webhooks/twilio", &[&fields[..], &more[..]].concat())
    }

    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), SignError> {
        let registered = self.public_url.as_deref();
        self.signature.sign_as_called(request, registered, now_ms)
    }
}

#[async_trait]
impl Outbound for Twilio {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        );
        let to = &reply.conversation_id;
        let from = match to.starts_with("whatsapp:") {
            true => format!("whatsapp:{}", self.from_number),
            false => self.from_number.clone(),
        };
        let token = self.auth_token.expose();
        self.sender
            .send_text(reply, MAX_TEXT_CHARS, TextUnit::Chars, |_, part| {
                let form = [("To", to.as_str()), ("From", from.as_str()), ("Body", part)];
                self.sender
                    .http()
                    .post(&url)
                    .basic_auth(&self.account_sid, Some(token))
                    .form(&form)
            })
            .await
            .map_err(sms::explain_opt_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{PublicUrl, build_request};
    use switchboard_domain::{AttachmentKind, MessageKind};

    fn channel(public_url: Option<&str>) -> Twilio {
        let config = TwilioConfig {
            auth_token: "12345".into(),
            account_sid: "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
            from_number: "+18005551212".into(),
            public_url: public_url.map(str::to_owned),
            api_base: None,
        };
        Twilio::new(config, &ChannelDeps::offline()).unwrap()
    }

    /// Twilio's documented example, signed independently:
    /// python3: base64(hmac_sha1("12345", url + "".join(k + v for k, v in sorted(params))))
    const FORM: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";

    fn request(path: &str, signature: &str) -> WebhookRequest {
        let headers = [
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-twilio-signature".to_owned(), signature.to_owned()),
        ];
        build_request("POST", path, &headers, FORM).unwrap()
    }

    #[test]
    fn the_public_url_is_what_is_checked_with_or_without_the_default_port() {
        let registered = channel(Some("https://mycompany.com/myapp.php"));
        let behind_gateway = request(
            "/prod/webhooks/twilio?foo=1&bar=2",
            "GvWf1cFY/Q7PnoempGyD5oXAezc=",
        );
        assert!(registered.verify(&behind_gateway, 0).is_ok());
        // Twilio sometimes signs with the port it left out of the URL.
        let with_port = request(
            "/prod/webhooks/twilio?foo=1&bar=2",
            "5s2PFy0qmPcZucb4eH4b08ZJtL0=",
        );
        assert!(registered.verify(&with_port, 0).is_ok());
        let elsewhere = channel(Some("https://mycompany.com/other.php"));
        assert!(matches!(
            elsewhere.verify(&behind_gateway, 0),
            Err(VerifyError::BadSignature)
        ));
        let other_query = request(
            "/prod/webhooks/twilio?foo=1&bar=3",
            "GvWf1cFY/Q7PnoempGyD5oXAezc=",
        );
        assert!(registered.verify(&other_query, 0).is_err());
        // Without the setting, the URL the request arrived at (set by the router).
        let mut arrived = request("/myapp.php?foo=1&bar=2", "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        arrived.extensions_mut().insert(PublicUrl(
            "https://mycompany.com/myapp.php?foo=1&bar=2".into(),
        ));
        assert!(channel(None).verify(&arrived, 0).is_ok());
    }

    fn parse(twilio: &Twilio, pairs: &[(&str, &str)]) -> Vec<InboundMessage> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let headers = [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        let request = build_request("POST", "/webhooks/twilio", &headers, body).unwrap();
        twilio.parse(&request, &Verified::assume(&request)).unwrap()
    }

    #[test]
    fn whatsapp_media_and_locations_are_read_and_status_callbacks_dropped() {
        let twilio = channel(None);
        let media = parse(
            &twilio,
            &[
                ("MessageSid", "MM1"),
                ("AccountSid", "AC1"),
                ("From", "whatsapp:+14155238886"),
                ("To", "whatsapp:+18005551212"),
                ("Body", ""),
                ("NumMedia", "1"),
                ("ProfileName", "Ana"),
                (
                    "MediaUrl0",
                    "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                ),
                ("MediaContentType0", "image/jpeg"),
                ("SmsStatus", "received"),
            ],
        );
        assert_eq!(
            (media[0].kind, media[0].attachments[0].kind),
            (MessageKind::Media, AttachmentKind::Image)
        );
        assert_eq!(
            (
                media[0].customer_name.as_deref(),
                media[0].conversation_id.as_str()
            ),
            (Some("Ana"), "whatsapp:+14155238886")
        );
        let place = parse(
            &twilio,
            &[
                ("MessageSid", "SM2"),
                ("From", "whatsapp:+1415"),
                ("Latitude", "37.78"),
                ("Longitude", "-122.39"),
                ("Label", "Office"),
                ("NumMedia", "0"),
            ],
        );
        assert_eq!(
            place[0].attachments[0].url.as_deref(),
            Some("geo:37.78,-122.39")
        );
        let status = [
            ("MessageSid", "SM3"),
            ("From", "+1415"),
            ("MessageStatus", "delivered"),
            ("SmsStatus", "delivered"),
        ];
        assert!(parse(&twilio, &status).is_empty());
        assert!(
            parse(
                &twilio,
                &[
                    ("MessageSid", "SM4"),
                    ("From", "+18005551212"),
                    ("Body", "ours")
                ]
            )
            .is_empty()
        );
        assert_eq!(twilio.acknowledge().headers()["content-type"], "text/xml");
    }

    #[test]
    fn sms_keywords_twilio_answers_itself_are_marked_and_whatsapp_has_none() {
        let twilio = channel(None);
        let kind = |from: &str, body: &str, extra: &[(&str, &str)]| {
            let mut fields = vec![("MessageSid", "SM9"), ("From", from), ("Body", body)];
            fields.extend_from_slice(extra);
            parse(&twilio, &fields)[0].kind
        };
        for word in [
            "STOP",
            "stop",
            " Stop ",
            "STOPALL",
            "UNSUBSCRIBE",
            "cancel",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "START",
            "unstop",
            "HELP",
            "info",
        ] {
            assert_eq!(kind("+1415", word, &[]), MessageKind::Keyword, "{word:?}");
        }
        for text in [
            "stop it please",
            "Cancel my order",
            "yes",
            "help me with my order",
        ] {
            assert_eq!(kind("+1415", text, &[]), MessageKind::Text, "{text:?}");
        }
        // A Messaging Service's own keyword, as Advanced Opt-Out reports it.
        let custom = kind("+1415", "ARRET", &[("OptOutType", "STOP")]);
        assert_eq!(custom, MessageKind::Keyword);
        assert_eq!(kind("whatsapp:+1415", "STOP", &[]), MessageKind::Text);
    }
}
