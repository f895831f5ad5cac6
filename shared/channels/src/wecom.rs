//! WeCom (企业微信) application callbacks: always encrypted. `msg_signature`
//! covers `token, timestamp, nonce` and the encrypted text (`echostr` on the
//! GET handshake, `<Encrypt>` on a POST), which decrypts to the message with
//! our CorpID at its end. The handshake answers the decrypted `echostr`. The
//! messages have the WeChat Official Account's fields (plus `AgentID`), and
//! replies go through `message/send` with a shared access token.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{OutboundReply, Secret, SendError};

use crate::kit::crypto::{wechat_decrypt, wechat_key};
use crate::kit::descriptor::build;
use crate::kit::sender::base_url_or;
use crate::kit::wechat_family::{ERRORS, message, seal};
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Handshake, HttpReply, Inbound, Outbound, Parsed,
    RequestExt, Sender, SettingsOf, SignError, Signature, TextUnit, TokenCache, Unusable, Verified,
    VerifyError, WebhookRequest, build_request, fetch_token, reply, required, schemes,
    send_text_with_token, unusable, xml,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "wecom",
    title: "WeCom (企业微信)",
    function: Function::IngressIm,
    settings: crate::settings! {
        token: verify => "admin console (work.weixin.qq.com) → 应用管理 → your app → 接收消息 → 设置API接收 → Token",
        encoding_aes_key: verify => "same dialog, EncodingAESKey (43 characters)",
        corp_id: verify => "我的企业 → 企业信息 → 企业ID; checked inside every message",
        corp_secret: send("not-needed-to-check") => "应用管理 → your app → Secret; for the access token of `message/send` (add the server's IP under 企业可信IP)",
        agent_id: send("1000002") => "应用管理 → your app → AgentId",
        api_base: optional => "default `https://qyapi.weixin.qq.com`",
    },
    build: build::<Wecom>,
    dev: |ctx| {
        json!({ "token": ctx.secret("token"), "corp_id": "ww0000development", "agent_id": "1000002",
                "encoding_aes_key": format!("{}{}", ctx.secret("aes_a"), &ctx.secret("aes_b")[..11]),
                "corp_secret": ctx.secret("corp_secret"), "api_base": ctx.stand_in })
    },
};

/// `message/send`: "最长不超过2048个字节，超过将截断" (at most 2,048 bytes).
const MAX_TEXT_BYTES: usize = 2_048;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    pub token: Secret,
    pub encoding_aes_key: Secret,
    pub corp_id: String,
    pub corp_secret: Secret,
    pub agent_id: String,
    pub api_base: Option<String>,
}

pub struct Wecom {
    signature: Signature,
    key: [u8; 32],
    corp_id: String,
    corp_secret: Secret,
    agent_id: i64,
    api_base: String,
    tokens: TokenCache,
    sender: Sender,
}

impl SettingsOf for Wecom {
    const NAME: &'static str = "wecom";
    type Settings = WecomConfig;

    fn new(config: WecomConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("corp_secret", &config.corp_secret)?;
        let key = wechat_key(config.encoding_aes_key.expose()).ok_or_else(|| {
            unusable("encoding_aes_key must be the 43 characters the console shows")
        })?;
        let agent_id = config
            .agent_id
            .trim()
            .parse()
            .map_err(|_| unusable("agent_id must be a number"))?;
        if config.corp_id.trim().is_empty() {
            return Err(unusable("corp_id is empty"));
        }
        let api_base = config.api_base.as_deref();
        let cache_key = format!("wecom:{}:{agent_id}", config.corp_id);
        Ok(Self {
            signature: Signature::shared(schemes::WECHAT_ENCRYPTED, "token", &config.token)?,
            key,
            corp_id: config.corp_id,
            corp_secret: config.corp_secret,
            agent_id,
            api_base: base_url_or("api_base", api_base, "https://qyapi.weixin.qq.com")?,
            tokens: TokenCache::shared(cache_key, deps),
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

/// `echostr` from the query, decoded; a `+` that arrived unencoded reads
/// as a space, which base64 never holds.
fn echostr(request: &WebhookRequest) -> Option<String> {
    request
        .query_param("echostr")
        .map(|value| value.replace(' ', "+"))
}

impl Inbound for Wecom {
    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        if request.method() != http::Method::GET {
            return Ok(None);
        }
        let echo = echostr(request).ok_or(VerifyError::Missing("echostr"))?;
        self.signature
            .verify(request, &[("Encrypt", &echo)], now_ms)?;
        let plain = wechat_decrypt(&self.key, &echo, &self.corp_id)
            .map_err(|_| VerifyError::Malformed("echostr"))?;
        Ok(Some(reply::with_type(
            200,
            "text/plain; charset=utf-8",
            plain,
        )))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let fields = xml::fields(request.body()).map_err(|_| VerifyError::Malformed("XML body"))?;
        let encrypted = xml::get(&fields, "Encrypt").ok_or(VerifyError::Missing("Encrypt"))?;
        let verified = self
            .signature
            .verify(request, &[("Encrypt", encrypted)], now_ms)?;
        let body = wechat_decrypt(&self.key, encrypted, &self.corp_id)
            .map_err(|_| VerifyError::Malformed("Encrypt"))?;
        Ok(Verified {
            body: body.into(),
            ..verified
        })
    }

    fn parse(&self, _request: &WebhookRequest, verified: &Verified) -> Parsed {
        let fields = xml::fields(&verified.body)?;
        Ok(message(Self::NAME, &fields)?.into_iter().collect())
    }

    fn acknowledge(&self) -> HttpReply {
        reply::empty(200)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let (seconds, id, agent) = (
            (now_ms / 1000).to_string(),
            now_ms.to_string(),
            self.agent_id.to_string(),
        );
        let body = xml::build(&[
            ("ToUserName", &self.corp_id),
            ("FromUserName", customer),
            ("CreateTime", &seconds),
            ("MsgType", "text"),
            ("Content", text),
            ("MsgId", &id),
            ("AgentID", &agent),
        ]);
        let headers = [("content-type".to_owned(), "text/xml".to_owned())];
        build_request("POST", "/webhooks/wecom", &headers, body).expect("a valid request")
    }

    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), SignError> {
        let nonce = (now_ms.rem_euclid(1_000_000_007) ^ 0x2545f491).to_string();
        if request.method() == http::Method::GET {
            let echo = echostr(request).ok_or(SignError::Unsupported("echostr"))?;
            return self
                .signature
                .sign(request, &[("Encrypt", &echo)], now_ms, &nonce);
        }
        seal(
            request,
            &self.key,
            &self.corp_id,
            &self.signature,
            now_ms,
            &nonce,
        )
    }
}

#[async_trait]
impl Outbound for Wecom {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let fetch = || {
            let url = format!("{}/cgi-bin/gettoken", self.api_base);
            let query = [
                ("corpid", self.corp_id.as_str()),
                ("corpsecret", self.corp_secret.expose()),
            ];
            let request = self.sender.http().get(url).query(&query);
            fetch_token(&self.sender, request, "/access_token", "/expires_in")
        };
        let url = format!("{}/cgi-bin/message/send", self.api_base);
        let build = |_: usize, part: &str, token: &Secret| {
            let body = json!({ "touser": reply.customer_id, "msgtype": "text",
                "agentid": self.agent_id, "text": { "content": part } });
            self.sender
                .post_json(&url, None, body)
                .query(&[("access_token", token.expose())])
        };
        let limit = (MAX_TEXT_BYTES, TextUnit::Bytes);
        send_text_with_token(&self.sender, reply, limit, &self.tokens, fetch, build).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::MessageKind;

    fn channel(token: &str, key: &str, corp_id: &str) -> Wecom {
        let config = WecomConfig {
            token: token.into(),
            encoding_aes_key: key.into(),
            corp_id: corp_id.into(),
            corp_secret: "secret".into(),
            agent_id: "1000002".into(),
            api_base: None,
        };
        Wecom::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn sample_channel() -> Wecom {
        channel(
            "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
            "ww1436e0e65a779aee",
        )
    }

    fn request(method: &str, query: &str, body: &str) -> WebhookRequest {
        let headers = [("content-type".to_owned(), "text/xml".to_owned())];
        let path = format!("/webhooks/wecom?{query}");
        build_request(method, &path, &headers, body.to_owned()).unwrap()
    }

    /// The official sample's URL check: `echostr` arrives URL-encoded.
    #[test]
    fn official_sample_handshake_answers_the_decrypted_echostr() {
        let query = "msg_signature=012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb&timestamp=1476416373&nonce=47744683&echostr=fsi1xnbH4yQh0%2BPJxcOdhhK6TDXkjMyhEPA7xB2TGz6b%2Bg7xyAbEkRxN%2F3cNXW9qdqjnoVzEtpbhnFyq6SVHyA%3D%3D";
        let wecom = sample_channel();
        let answer = wecom
            .handshake(&request("GET", query, ""), 1_476_416_373_000)
            .unwrap()
            .unwrap();
        assert_eq!(answer.body().as_ref(), b"1288432023552776189");
        // Unencoded `+` (read as spaces) still verify.
        let raw = query.replace("%2B", "+");
        assert!(
            wecom
                .handshake(&request("GET", &raw, ""), 1_476_416_373_000)
                .is_ok()
        );
        let forged = query.replace("nonce=47744683", "nonce=47744684");
        assert!(matches!(
            wecom.handshake(&request("GET", &forged, ""), 1_476_416_373_000),
            Err(VerifyError::BadSignature)
        ));
        let late = wecom.handshake(&request("GET", query, ""), 1_476_416_373_000 + 301_000);
        assert!(matches!(late, Err(VerifyError::Stale { .. })));
    }

    /// The official sample's message: padding of 22 bytes, XML without CDATA.
    #[test]
    fn official_sample_message_verifies_and_decrypts() {
        let body = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>";
        let query = "msg_signature=0c3914025cb4b4d68103f6bfc8db550f79dcf48e&timestamp=1476422779&nonce=1597212914";
        let wecom = sample_channel();
        let request = request("POST", query, body);
        let verified = wecom.verify(&request, 1_476_422_779_000).unwrap();
        let message = &wecom.parse(&request, &verified).unwrap()[0];
        assert_eq!(
            (message.text.as_str(), message.kind),
            ("你好", MessageKind::Text)
        );
        assert_eq!(message.customer_id, "ChenJiaShun");
        assert_eq!(message.provider_message_id, "1456453720");
        let other_corp = channel(
            "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
            "ww1436e0e65a779aef",
        );
        assert!(matches!(
            other_corp.verify(&request, 1_476_422_779_000),
            Err(VerifyError::Malformed(_))
        ));
    }

    /// wechatpy `tests/test_crypto.py` (`wechatpy.work.crypto`): `test_decrypt_message`.
    #[test]
    fn wechatpy_vector_decrypts() {
        let body = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>";
        let query = "msg_signature=74d92dfeb87ba7c714f89d98870ae5eb62dff26d&timestamp=1411525903&nonce=461056294";
        let wecom = channel(
            "123456",
            "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
            "wx49f0ab532d5d035a",
        );
        let request = request("POST", query, body);
        let verified = wecom.verify(&request, 1_411_525_903_000).unwrap();
        let message = &wecom.parse(&request, &verified).unwrap()[0];
        assert_eq!(
            (message.text.as_str(), message.customer_id.as_str()),
            ("test", "messense")
        );
    }

    #[test]
    fn plain_bodies_and_bad_settings_are_refused() {
        let wecom = sample_channel();
        let plain = request(
            "POST",
            "msg_signature=x&timestamp=1&nonce=2",
            "<xml><MsgType>text</MsgType></xml>",
        );
        assert!(matches!(
            wecom.verify(&plain, 0),
            Err(VerifyError::Missing("Encrypt"))
        ));
        let config = WecomConfig {
            token: "t".into(),
            encoding_aes_key: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt".into(),
            corp_id: "ww1".into(),
            corp_secret: "s".into(),
            agent_id: "not a number".into(),
            api_base: None,
        };
        assert!(Wecom::new(config, &ChannelDeps::offline()).is_err());
    }
}
