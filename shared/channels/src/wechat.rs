//! WeChat Official Account (微信公众号): XML messages. In plain mode the
//! query's `signature` covers only `token, timestamp, nonce`, never the body,
//! so the nonce is spent once (ingress refuses it with another body); in safe
//! mode (`encrypt_type=aes`) `msg_signature` also covers the `<Encrypt>`
//! text, which is decrypted and its AppID checked. With `encoding_aes_key`
//! set, only safe-mode requests are accepted. The GET `echostr` handshake is
//! answered with the value unchanged. Every message is answered `success`
//! at once and replied to through the customer-service message API, so the
//! 5-second retry never fires; retries that do come are deduplicated on `MsgId`.

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
    RequestExt, SettingsOf, SignError, Signature, TextUnit, TokenCache, Unusable, Verified,
    VerifyError, WebhookRequest, build_request, fetch_token, reply, required, schemes,
    send_text_with_token, xml,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "wechat",
    title: "WeChat Official Account (微信公众号)",
    function: Function::IngressIm,
    settings: crate::settings! {
        token: verify => "mp.weixin.qq.com → 设置与开发 → 基本配置 → 服务器配置 → Token (令牌)",
        encoding_aes_key: optional => "same page, EncodingAESKey (43 characters); set it with 安全模式 (safe mode), and only encrypted requests are accepted",
        app_id: verify => "基本配置 → AppID; checked inside every encrypted message",
        app_secret: send("not-needed-to-check") => "基本配置 → AppSecret; for the access token of the customer-service message API (add the server's IP to the IP whitelist)",
        api_base: optional => "default `https://api.weixin.qq.com`",
    },
    build: build::<Wechat>,
    dev: |ctx| {
        json!({ "token": ctx.secret("token"), "app_id": "wx0000development",
                "encoding_aes_key": format!("{}{}", ctx.secret("aes_a"), &ctx.secret("aes_b")[..11]),
                "app_secret": ctx.secret("app_secret"), "api_base": ctx.stand_in })
    },
};

/// A customer-service text message; WeChat counts bytes (UNCONFIRMED: 2,048).
const MAX_TEXT_BYTES: usize = 2_048;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    pub token: Secret,
    pub encoding_aes_key: Option<Secret>,
    pub app_id: String,
    pub app_secret: Secret,
    pub api_base: Option<String>,
}

pub struct Wechat {
    plain: Signature,
    encrypted: Signature,
    key: Option<[u8; 32]>,
    app_id: String,
    app_secret: Secret,
    api_base: String,
    tokens: TokenCache,
    sender: crate::kit::Sender,
}

impl SettingsOf for Wechat {
    const NAME: &'static str = "wechat";
    type Settings = WechatConfig;

    fn new(config: WechatConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("app_secret", &config.app_secret)?;
        let key = match &config.encoding_aes_key {
            Some(key) => Some(wechat_key(key.expose()).ok_or_else(|| {
                crate::kit::unusable("encoding_aes_key must be the 43 characters the console shows")
            })?),
            None => None,
        };
        if config.app_id.trim().is_empty() {
            return Err(crate::kit::unusable("app_id is empty"));
        }
        let api_base = base_url_or(
            "api_base",
            config.api_base.as_deref(),
            "https://api.weixin.qq.com",
        )?;
        let cache_key = format!("wechat:{}", config.app_id);
        Ok(Self {
            plain: Signature::shared(schemes::WECHAT, "token", &config.token)?,
            encrypted: Signature::shared(schemes::WECHAT_ENCRYPTED, "token", &config.token)?,
            key,
            app_id: config.app_id,
            app_secret: config.app_secret,
            api_base,
            tokens: TokenCache::shared(cache_key, deps),
            sender: crate::kit::Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Wechat {
    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        if request.method() != http::Method::GET {
            return Ok(None);
        }
        let echo = request
            .query_param("echostr")
            .ok_or(VerifyError::Missing("echostr"))?;
        self.plain.verify(request, &[], now_ms)?;
        Ok(Some(reply::text(200, echo)))
    }

    fn signature(&self) -> &Signature {
        &self.plain
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let Some(key) = &self.key else {
            return self.plain.verify(request, &[], now_ms);
        };
        let fields = xml::fields(request.body()).map_err(|_| VerifyError::Malformed("XML body"))?;
        let encrypted = xml::get(&fields, "Encrypt").ok_or(VerifyError::Missing("Encrypt"))?;
        let verified = self
            .encrypted
            .verify(request, &[("Encrypt", encrypted)], now_ms)?;
        let body = wechat_decrypt(key, encrypted, &self.app_id)
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
        reply::text(200, "success")
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let (seconds, id) = ((now_ms / 1000).to_string(), now_ms.to_string());
        let body = xml::build(&[
            ("ToUserName", "gh_sample"),
            ("FromUserName", customer),
            ("CreateTime", &seconds),
            ("MsgType", "text"),
            ("Content", text),
            ("MsgId", &id),
        ]);
        let headers = [("content-type".to_owned(), "text/xml".to_owned())];
        build_request("POST", "/webhooks/wechat", &headers, body).expect("a valid request")
    }

    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), SignError> {
        let nonce = (now_ms.rem_euclid(1_000_000_007) ^ 0x5f3759df).to_string();
        let Some(key) = self.key.filter(|_| request.method() != http::Method::GET) else {
            return self.plain.sign(request, &[], now_ms, &nonce);
        };
        seal(request, &key, &self.app_id, &self.encrypted, now_ms, &nonce)
    }
}

#[async_trait]
impl Outbound for Wechat {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let fetch = || {
            let url = format!("{}/cgi-bin/token", self.api_base);
            let query = [
                ("grant_type", "client_credential"),
                ("appid", &self.app_id),
                ("secret", self.app_secret.expose()),
            ];
            let request = self.sender.http().get(url).query(&query);
            fetch_token(&self.sender, request, "/access_token", "/expires_in")
        };
        let url = format!("{}/cgi-bin/message/custom/send", self.api_base);
        let build = |_: usize, part: &str, token: &Secret| {
            let body = json!({ "touser": reply.customer_id, "msgtype": "text", "text": { "content": part } });
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

    fn channel(token: &str, key: Option<&str>, app_id: &str) -> Wechat {
        let config = WechatConfig {
            token: token.into(),
            encoding_aes_key: key.map(Into::into),
            app_id: app_id.into(),
            app_secret: "secret".into(),
            api_base: None,
        };
        Wechat::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(method: &str, query: &str, body: &str) -> WebhookRequest {
        let headers = [("content-type".to_owned(), "text/xml".to_owned())];
        let path = format!("/webhooks/wechat?{query}");
        build_request(method, &path, &headers, body.to_owned()).unwrap()
    }

    /// wechatpy `tests/test_utils.py`: token `test`, and the same signature
    /// with its last digit changed.
    #[test]
    fn plain_mode_known_answer() {
        let wechat = channel("test", None, "wx1");
        let now = 1_410_685_589_000;
        let good =
            "signature=f21891de399b4e33a1a93c9a7b8a8fffb5a443ff&timestamp=1410685589&nonce=test";
        let body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1410685589</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1</MsgId></xml>";
        let verified = wechat.verify(&request("POST", good, body), now).unwrap();
        assert_eq!(
            verified.nonce.as_deref(),
            Some("test"),
            "spent once by ingress"
        );
        let message = &wechat
            .parse(&request("POST", good, body), &verified)
            .unwrap()[0];
        assert_eq!(
            (message.text.as_str(), message.kind),
            ("你好", MessageKind::Text)
        );
        let bad = good.replace("443ff", "443fe");
        assert!(matches!(
            wechat.verify(&request("POST", &bad, body), now),
            Err(VerifyError::BadSignature)
        ));
        let echo = format!("{good}&echostr=hello");
        let answer = wechat
            .handshake(&request("GET", &echo, ""), now)
            .unwrap()
            .unwrap();
        assert_eq!(answer.body().as_ref(), b"hello");
        let forged = format!("{bad}&echostr=hello");
        assert!(wechat.handshake(&request("GET", &forged, ""), now).is_err());
    }

    /// Tencent's official sample (WXBizMsgCrypt demo): a compatible-mode body
    /// (plain fields beside `<Encrypt>`), verified and decrypted at its time.
    #[test]
    fn official_safe_mode_sample_verifies_and_decrypts() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let wechat = channel("spamtest", Some(key), "wx2c2769f8efd9abc2");
        let body = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>";
        let query = "signature=x&timestamp=1409735669&nonce=1320562132&encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa";
        let request = request("POST", query, body);
        let verified = wechat.verify(&request, 1_409_735_669_000).unwrap();
        let message = &wechat.parse(&request, &verified).unwrap()[0];
        assert_eq!(message.text, "abcdteT");
        assert_eq!(message.provider_message_id, "6054768590064713728");
        assert_eq!(message.customer_id, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        // Another AppID: the signature holds, the AppID check does not.
        let other = channel("spamtest", Some(key), "wx2c2769f8efd9abc3");
        assert!(other.verify(&request, 1_409_735_669_000).is_err());
        // Safe mode refuses a plain-mode request.
        let plain = request_plain();
        assert!(matches!(
            wechat.verify(&plain, 1_410_685_589_000),
            Err(VerifyError::Missing(_))
        ));
    }

    fn request_plain() -> WebhookRequest {
        request(
            "POST",
            "signature=f21891de399b4e33a1a93c9a7b8a8fffb5a443ff&timestamp=1410685589&nonce=test",
            "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>",
        )
    }

    #[test]
    fn media_location_and_voice_recognition() {
        let wechat = channel("t", None, "wx1");
        let parse = |body: &str| {
            let request = request("POST", "", body);
            wechat.parse(&request, &Verified::assume(&request)).unwrap()
        };
        let base = "<ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1351776360</CreateTime>";
        let location = parse(&format!(
            "<xml>{base}<MsgType>location</MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId></xml>"
        ));
        let at = &location[0].attachments[0];
        assert_eq!(at.url.as_deref(), Some("geo:23.134521,113.358803"));
        assert_eq!(at.name.as_deref(), Some("位置信息"));
        let image = parse(&format!(
            "<xml>{base}<MsgType>image</MsgType><PicUrl>http://p/1.jpg</PicUrl><MediaId>m1</MediaId><MsgId>2</MsgId></xml>"
        ));
        assert_eq!(image[0].kind, MessageKind::Media);
        assert_eq!(image[0].attachments[0].provider_id.as_deref(), Some("m1"));
        let voice = parse(&format!(
            "<xml>{base}<MsgType>voice</MsgType><MediaId>v</MediaId><Format>amr</Format><Recognition>几点开门</Recognition><MsgId>3</MsgId></xml>"
        ));
        assert_eq!(
            (voice[0].kind, voice[0].text.as_str()),
            (MessageKind::Text, "几点开门")
        );
        for bad in ["", "<xml>", "<xml><MsgType>text</MsgType></xml>", "not xml"] {
            let request = request("POST", "", bad);
            assert!(
                wechat.parse(&request, &Verified::assume(&request)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn samples_are_encrypted_and_signed_in_safe_mode() {
        let wechat = channel(
            "tok",
            Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            "wx9",
        );
        let mut sample = wechat.sample("o1", "你们几点开门？", 1_700_000_000_000);
        wechat.sign(&mut sample, 1_700_000_000_000).unwrap();
        assert!(!String::from_utf8_lossy(sample.body()).contains("几点"));
        assert!(sample.uri().query().unwrap().contains("encrypt_type=aes"));
        let verified = wechat.verify(&sample, 1_700_000_000_000).unwrap();
        let message = &wechat.parse(&sample, &verified).unwrap()[0];
        assert_eq!(message.text, "你们几点开门？");
        assert!(
            Wechat::new(
                WechatConfig {
                    encoding_aes_key: Some("short".into()),
                    ..config()
                },
                &ChannelDeps::offline()
            )
            .is_err()
        );
    }

    fn config() -> WechatConfig {
        WechatConfig {
            token: "t".into(),
            encoding_aes_key: None,
            app_id: "wx1".into(),
            app_secret: "s".into(),
            api_base: None,
        }
    }
}
