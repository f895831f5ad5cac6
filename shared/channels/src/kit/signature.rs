//! Signature schemes as data, with `sign` beside `verify`.
//!
//! A provider's scheme is a value of [`Scheme`]: which MAC or signature, over
//! which parts of the request in which order, where the signature, timestamp
//! and nonce travel, how the signature is encoded, and the replay window.
//! Verification and signing are the same code for every channel, so what the
//! product checks is exactly what `simulate`, development mode and the tests
//! send. The schemes of every channel are in [`crate::kit::schemes`].
//!
//! Every comparison is constant-time; a signed timestamp is checked against
//! its window only after the signature matched.

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use switchboard_domain::Secret;

use super::form::{Form, read_form};
use super::request::{RequestExt, WebhookRequest};
use super::{Verified, VerifyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha1,
    Sha256,
}

/// How the signed string becomes a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mac {
    /// HMAC keyed with the channel secret.
    Hmac(Digest),
    /// A plain hash; the secret is one of the signed parts (WeChat, Feishu).
    Hash(Digest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower-case hex (either case accepted).
    Hex,
    /// Standard alphabet with padding, compared exactly.
    Base64,
}

/// Where a value travels in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Header(&'static str),
    Query(&'static str),
    /// A field of a form body (urlencoded or multipart).
    Form(&'static str),
    /// A value the channel takes from the body itself and passes in
    /// (WeChat's `<Encrypt>`, WeCom's `echostr`).
    Field(&'static str),
}

impl At {
    fn name(self) -> &'static str {
        match self {
            At::Header(name) | At::Query(name) | At::Form(name) | At::Field(name) => name,
        }
    }
}

/// One piece of the signed string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Text(&'static str),
    /// The raw body bytes.
    Body,
    /// The public URL the provider called, with its query.
    Url,
    /// Every form field, sorted by name then value, as `name + value` (Twilio).
    SortedForm,
    /// The channel secret itself (plain-hash schemes).
    Secret,
    /// The timestamp as sent.
    Timestamp,
    /// The nonce as sent.
    Nonce,
    Value(At),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

/// A signed timestamp and how far from now it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub at: At,
    pub unit: Unit,
    /// Oldest accepted, in seconds before now.
    pub max_age_secs: i64,
    /// Furthest accepted, in seconds after now (clock skew only).
    pub max_future_secs: i64,
}

/// A MAC or hash over parts of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacScheme {
    pub mac: Mac,
    pub signed: &'static [Part],
    /// Sort the parts' values before joining them (WeChat, WeCom).
    pub sorted: bool,
    pub signature: At,
    /// Text before the encoded signature, e.g. `v0=` or `sha256=`.
    pub prefix: &'static str,
    pub encoding: Encoding,
    pub timestamp: Option<Window>,
    /// A value the provider never sends twice; ingress refuses a replay of it.
    pub nonce: Option<At>,
}

/// Every way a provider proves a request is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Mac(MacScheme),
    /// A shared secret the provider echoes in a header (Telegram).
    SharedSecret {
        header: &'static str,
    },
    /// HTTP basic authentication in the URL the provider calls (SendGrid
    /// Inbound Parse, Postmark).
    BasicAuth,
    /// Ed25519 over the parts, hex signature (Discord).
    Ed25519 {
        signed: &'static [Part],
        signature: At,
        timestamp: Option<Window>,
    },
    /// ECDSA P-256 with SHA-256 over the parts, base64 DER signature
    /// (SendGrid Event Webhook).
    EcdsaP256 {
        signed: &'static [Part],
        signature: At,
        timestamp: Option<Window>,
    },
    /// Amazon SNS: RSA over the envelope's canonical string, with the
    /// certificate at its `SigningCertURL` ([`super::sns`]); the signed
    /// `Timestamp` at most `max_age_secs` old.
    Sns {
        max_age_secs: i64,
    },
}

/// What a channel verifies with.
pub enum Key<'a> {
    /// The shared secret (MAC, hash and shared-secret schemes).
    Secret(&'a Secret),
    Basic {
        username: &'a str,
        password: &'a Secret,
    },
    Ed25519(&'a ed25519_dalek::VerifyingKey),
    P256(&'a p256::ecdsa::VerifyingKey),
    Sns(&'a super::sns::Certificates),
}

/// What a request is signed with, as the provider would.
pub enum SigningKey<'a> {
    Secret(&'a Secret),
    Basic {
        username: &'a str,
        password: &'a Secret,
    },
    Ed25519(&'a ed25519_dalek::SigningKey),
    P256(&'a p256::ecdsa::SigningKey),
    Rsa(&'a rsa::RsaPrivateKey),
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the key does not fit the scheme")]
    WrongKey,
    #[error("cannot place {0} in this request")]
    Unsupported(&'static str),
}

/// The request and the values a channel took from its body.
struct Input<'a> {
    request: &'a WebhookRequest,
    fields: &'a [(&'a str, &'a str)],
    form: OnceLock<Option<Form>>,
}

impl<'a> Input<'a> {
    fn new(request: &'a WebhookRequest, fields: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            request,
            fields,
            form: OnceLock::new(),
        }
    }

    fn form(&self) -> Option<&Form> {
        self.form
            .get_or_init(|| read_form(self.request).ok())
            .as_ref()
    }

    fn get(&self, at: At) -> Result<Option<Cow<'_, str>>, VerifyError> {
        Ok(match at {
            At::Header(name) => self.request.header(name).map(Cow::Borrowed),
            At::Query(name) => self.request.query_param(name).map(Cow::Owned),
            At::Form(name) => self
                .form()
                .ok_or(VerifyError::Malformed("form body"))?
                .non_empty(name)
                .map(Cow::Borrowed),
            At::Field(name) => self
                .fields
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| Cow::Borrowed(*value)),
        }
        .filter(|value| !value.trim().is_empty()))
    }

    fn require(&self, at: At) -> Result<Cow<'_, str>, VerifyError> {
        self.get(at)?.ok_or(VerifyError::Missing(at.name()))
    }

    /// The signed message: the parts in order (or sorted), joined.
    fn message(
        &self,
        parts: &[Part],
        sorted: bool,
        secret: Option<&Secret>,
        timestamp: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<Vec<u8>, VerifyError> {
        let mut pieces: Vec<Vec<u8>> = Vec::with_capacity(parts.len());
        self.feed(parts, secret, timestamp, nonce, &mut |piece| {
            pieces.push(piece.to_vec())
        })?;
        if sorted {
            pieces.sort();
        }
        Ok(pieces.concat())
    }

    /// Hands the signed parts, in order, to `sink`, without copying the body.
    fn feed(
        &self,
        parts: &[Part],
        secret: Option<&Secret>,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), VerifyError> {
        for part in parts {
            match part {
                Part::Text(text) => sink(text.as_bytes()),
                Part::Body => sink(self.request.body()),
                Part::Url => sink(self.request.public_url().as_bytes()),
                Part::SortedForm => {
                    // One piece, as the provider joins it.
                    let mut joined = Vec::new();
                    sorted_form(self.form(), &mut |bytes| joined.extend_from_slice(bytes));
                    sink(&joined)
                }
                Part::Secret => sink(secret.map(|s| s.expose().as_bytes()).unwrap_or_default()),
                Part::Timestamp => sink(timestamp.unwrap_or_default().as_bytes()),
                Part::Nonce => sink(nonce.unwrap_or_default().as_bytes()),
                Part::Value(at) => sink(self.require(*at)?.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Every form field as `name + value`, sorted by name then value, each
/// distinct pair once (Twilio).
fn sorted_form(form: Option<&Form>, sink: &mut dyn FnMut(&[u8])) {
    let fields = form.map(|form| form.fields.as_slice()).unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    for (name, value) in pairs {
        sink(name.as_bytes());
        sink(value.as_bytes());
    }
}

/// A MAC (or hash) being computed over parts fed one by one.
enum Running {
    HmacSha1(Hmac<Sha1>),
    HmacSha256(Hmac<Sha256>),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Running {
    fn new(mac: Mac, key: &[u8]) -> Self {
        let hmac = "HMAC takes any key length";
        match mac {
            Mac::Hmac(Digest::Sha1) => Running::HmacSha1(Hmac::new_from_slice(key).expect(hmac)),
            Mac::Hmac(Digest::Sha256) => {
                Running::HmacSha256(Hmac::new_from_slice(key).expect(hmac))
            }
            Mac::Hash(Digest::Sha1) => Running::Sha1(Sha1::new()),
            Mac::Hash(Digest::Sha256) => Running::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Running::HmacSha1(mac) => mac.update(bytes),
            Running::HmacSha256(mac) => mac.update(bytes),
            Running::Sha1(hash) => hash.update(bytes),
            Running::Sha256(hash) => hash.update(bytes),
        }
    }

    /// Whether the result equals `presented`, in constant time.
    fn matches(self, presented: &[u8]) -> bool {
        match self {
            Running::HmacSha1(mac) => constant_time_eq(&mac.finalize().into_bytes(), presented),
            Running::HmacSha256(mac) => constant_time_eq(&mac.finalize().into_bytes(), presented),
            Running::Sha1(hash) => constant_time_eq(&hash.finalize(), presented),
            Running::Sha256(hash) => constant_time_eq(&hash.finalize(), presented),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Running::HmacSha1(mac) => mac.finalize().into_bytes().to_vec(),
            Running::HmacSha256(mac) => mac.finalize().into_bytes().to_vec(),
            Running::Sha1(hash) => hash.finalize().to_vec(),
            Running::Sha256(hash) => hash.finalize().to_vec(),
        }
    }
}

/// The MAC (or hash) of `message`.
pub fn digest(mac: Mac, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut running = Running::new(mac, key);
    running.update(message);
    running.finish()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Constant-time equality that does not leak the length either: compares
/// SHA-256 digests of both values (a hash is enough to hide the length; a
/// keyed MAC cost four times as much, which showed on Telegram's requests).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(&Sha256::digest(a), &Sha256::digest(b))
}

fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => BASE64.encode(bytes),
    }
}

fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => hex::decode(text.trim()).ok(),
        // Exact: the encoded text must be canonical (no case games).
        Encoding::Base64 => BASE64
            .decode(text.trim())
            .ok()
            .filter(|bytes| BASE64.encode(bytes) == text.trim()),
    }
}

/// Rejects a timestamp outside the window around `now_ms`.
pub fn check_window(window: &Window, raw: &str, now_ms: i64) -> Result<(), VerifyError> {
    let value: i64 = raw
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed(window.at.name()))?;
    let seconds = match window.unit {
        Unit::Seconds => value,
        Unit::Millis => value.div_euclid(1000),
    };
    let now_secs = now_ms.div_euclid(1000);
    let stale = VerifyError::Stale {
        window_secs: window.max_age_secs,
    };
    // Checked: a hostile timestamp such as i64::MIN must not overflow.
    match now_secs.checked_sub(seconds) {
        Some(age) if age > window.max_age_secs => Err(stale),
        Some(age) if age < -window.max_future_secs => Err(VerifyError::Future {
            skew_secs: window.max_future_secs,
        }),
        Some(_) => Ok(()),
        None => Err(stale),
    }
}

fn timestamp_value(window: &Window, now_ms: i64) -> String {
    match window.unit {
        Unit::Seconds => now_ms.div_euclid(1000).to_string(),
        Unit::Millis => now_ms.to_string(),
    }
}

impl Scheme {
    /// Checks that the request comes from the provider. `fields` are values
    /// the channel took from the body ([`At::Field`]).
    pub fn verify(
        &self,
        key: &Key,
        request: &WebhookRequest,
        fields: &[(&str, &str)],
        now_ms: i64,
    ) -> Result<Verified, VerifyError> {
        let input = Input::new(request, fields);
        let nonce = match self {
            Scheme::Mac(scheme) => {
                let Key::Secret(secret) = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                verify_mac(scheme, secret, &input, now_ms)?
            }
            Scheme::SharedSecret { header } => {
                let Key::Secret(secret) = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                let presented = request.header(header).ok_or(VerifyError::Missing(header))?;
                if !secret_eq(presented.as_bytes(), secret.expose().as_bytes()) {
                    return Err(VerifyError::BadSignature);
                }
                None
            }
            Scheme::BasicAuth => {
                let Key::Basic { username, password } = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                let presented = request
                    .header("authorization")
                    .ok_or(VerifyError::Missing("Authorization"))?;
                let expected = basic_credentials(username, password);
                if !secret_eq(presented.trim().as_bytes(), expected.as_bytes()) {
                    return Err(VerifyError::BadSignature);
                }
                None
            }
            Scheme::Ed25519 {
                signed,
                signature,
                timestamp,
            } => {
                let Key::Ed25519(public) = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                let (message, raw_ts) = public_key_message(&input, signed, timestamp)?;
                let presented = decode(Encoding::Hex, &input.require(*signature)?)
                    .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
                    .ok_or(VerifyError::BadSignature)?;
                public
                    .verify_strict(&message, &presented)
                    .map_err(|_| VerifyError::BadSignature)?;
                check_optional_window(timestamp, raw_ts.as_deref(), now_ms)?;
                None
            }
            Scheme::EcdsaP256 {
                signed,
                signature,
                timestamp,
            } => {
                use p256::ecdsa::signature::Verifier;
                let Key::P256(public) = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                let (message, raw_ts) = public_key_message(&input, signed, timestamp)?;
                let presented = BASE64
                    .decode(input.require(*signature)?.trim())
                    .ok()
                    .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok())
                    .ok_or(VerifyError::BadSignature)?;
                public
                    .verify(&message, &presented)
                    .map_err(|_| VerifyError::BadSignature)?;
                check_optional_window(timestamp, raw_ts.as_deref(), now_ms)?;
                None
            }
            Scheme::Sns { max_age_secs } => {
                let Key::Sns(certificates) = key else {
                    return Err(VerifyError::Malformed("key"));
                };
                let envelope = super::sns::envelope(request.body())?;
                super::sns::verify(certificates, &envelope, *max_age_secs, now_ms)?;
                None
            }
        };
        Ok(Verified {
            body: request.body().clone(),
            nonce,
            form: input.form.into_inner().flatten(),
        })
    }

    /// The signature this scheme gives the request, prefix included (X's CRC
    /// answer, providers' known answers). MAC schemes only.
    pub fn expected(
        &self,
        secret: &Secret,
        request: &WebhookRequest,
        fields: &[(&str, &str)],
    ) -> Result<String, VerifyError> {
        let Scheme::Mac(scheme) = self else {
            return Err(VerifyError::Malformed("scheme"));
        };
        let input = Input::new(request, fields);
        let timestamp = scheme.timestamp.map(|w| input.require(w.at)).transpose()?;
        let nonce = scheme.nonce.map(|at| input.require(at)).transpose()?;
        let message = input.message(
            scheme.signed,
            scheme.sorted,
            Some(secret),
            timestamp.as_deref().map(str::trim),
            nonce.as_deref(),
        )?;
        let mac = digest(scheme.mac, secret.expose().as_bytes(), &message);
        Ok(format!(
            "{}{}",
            scheme.prefix,
            encode(scheme.encoding, &mac)
        ))
    }

    /// Signs the request as the provider would at `now_ms`, with `nonce` where
    /// the scheme carries one: sets the timestamp, nonce and signature.
    pub fn sign(
        &self,
        key: &SigningKey,
        request: &mut WebhookRequest,
        fields: &[(&str, &str)],
        now_ms: i64,
        nonce: &str,
    ) -> Result<(), SignError> {
        match self {
            Scheme::Mac(scheme) => {
                let SigningKey::Secret(secret) = key else {
                    return Err(SignError::WrongKey);
                };
                if let Some(window) = &scheme.timestamp {
                    place(request, window.at, &timestamp_value(window, now_ms))?;
                }
                if let Some(at) = scheme.nonce {
                    place(request, at, nonce)?;
                }
                let signature = self
                    .expected(secret, request, fields)
                    .map_err(|_| SignError::Unsupported("a signed value"))?;
                place(request, scheme.signature, &signature)
            }
            Scheme::SharedSecret { header } => {
                let SigningKey::Secret(secret) = key else {
                    return Err(SignError::WrongKey);
                };
                place(request, At::Header(header), secret.expose())
            }
            Scheme::BasicAuth => {
                let SigningKey::Basic { username, password } = key else {
                    return Err(SignError::WrongKey);
                };
                place(
                    request,
                    At::Header("authorization"),
                    &basic_credentials(username, password),
                )
            }
            Scheme::Ed25519 {
                signed,
                signature,
                timestamp,
            } => {
                use ed25519_dalek::Signer;
                let SigningKey::Ed25519(private) = key else {
                    return Err(SignError::WrongKey);
                };
                let message = sign_message(request, fields, signed, timestamp, now_ms)?;
                let value = hex::encode(private.sign(&message).to_bytes());
                place(request, *signature, &value)
            }
            Scheme::EcdsaP256 {
                signed,
                signature,
                timestamp,
            } => {
                use p256::ecdsa::signature::Signer;
                let SigningKey::P256(private) = key else {
                    return Err(SignError::WrongKey);
                };
                let message = sign_message(request, fields, signed, timestamp, now_ms)?;
                let value: p256::ecdsa::Signature = private.sign(&message);
                place(
                    request,
                    *signature,
                    &BASE64.encode(value.to_der().as_bytes()),
                )
            }
            Scheme::Sns { .. } => {
                let SigningKey::Rsa(private) = key else {
                    return Err(SignError::WrongKey);
                };
                let mut envelope = super::sns::envelope(request.body())
                    .map_err(|_| SignError::Unsupported("a body that is not an SNS envelope"))?;
                super::sns::sign(private, &mut envelope, now_ms);
                let body = serde_json::to_vec(&envelope)
                    .map_err(|_| SignError::Unsupported("the envelope"))?;
                *request.body_mut() = Bytes::from(body);
                Ok(())
            }
        }
    }

    /// The replay window, where the scheme signs a timestamp.
    pub fn window(&self) -> Option<&Window> {
        match self {
            Scheme::Mac(scheme) => scheme.timestamp.as_ref(),
            Scheme::Ed25519 { timestamp, .. } | Scheme::EcdsaP256 { timestamp, .. } => {
                timestamp.as_ref()
            }
            Scheme::SharedSecret { .. } | Scheme::BasicAuth | Scheme::Sns { .. } => None,
        }
    }

    /// The same scheme with another replay window (a channel's setting).
    pub fn with_max_age(mut self, max_age_secs: i64) -> Self {
        let window = match &mut self {
            Scheme::Mac(scheme) => scheme.timestamp.as_mut(),
            Scheme::Ed25519 { timestamp, .. } | Scheme::EcdsaP256 { timestamp, .. } => {
                timestamp.as_mut()
            }
            Scheme::Sns {
                max_age_secs: max_age,
            } => {
                *max_age = max_age_secs;
                None
            }
            Scheme::SharedSecret { .. } | Scheme::BasicAuth => None,
        };
        if let Some(window) = window {
            window.max_age_secs = max_age_secs;
        }
        self
    }
}

fn verify_mac(
    scheme: &MacScheme,
    secret: &Secret,
    input: &Input,
    now_ms: i64,
) -> Result<Option<String>, VerifyError> {
    let name = scheme.signature.name();
    let raw = input.require(scheme.signature)?;
    let presented = raw
        .trim()
        .strip_prefix(scheme.prefix)
        .ok_or(VerifyError::Malformed(name))?;
    let presented = decode(scheme.encoding, presented).ok_or(VerifyError::BadSignature)?;
    let timestamp = scheme.timestamp.map(|w| input.require(w.at)).transpose()?;
    if let (Some(window), Some(raw)) = (&scheme.timestamp, &timestamp) {
        // Unparseable is malformed, before any MAC work.
        raw.trim()
            .parse::<i64>()
            .map_err(|_| VerifyError::Malformed(window.at.name()))?;
    }
    let nonce = scheme.nonce.map(|at| input.require(at)).transpose()?;
    let (timestamp, nonce) = (timestamp.as_deref().map(str::trim), nonce.as_deref());
    let mut running = Running::new(scheme.mac, secret.expose().as_bytes());
    if scheme.sorted {
        let message = input.message(scheme.signed, true, Some(secret), timestamp, nonce)?;
        running.update(&message);
    } else {
        // Streamed: the body is hashed where it lies, never copied.
        let parts = scheme.signed;
        input.feed(parts, Some(secret), timestamp, nonce, &mut |bytes| {
            running.update(bytes)
        })?;
    }
    if !running.matches(&presented) {
        return Err(VerifyError::BadSignature);
    }
    check_optional_window(&scheme.timestamp, timestamp, now_ms)?;
    Ok(nonce.map(str::to_owned))
}

fn check_optional_window(
    window: &Option<Window>,
    raw: Option<&str>,
    now_ms: i64,
) -> Result<(), VerifyError> {
    match (window, raw) {
        (Some(window), Some(raw)) => check_window(window, raw, now_ms),
        _ => Ok(()),
    }
}

fn public_key_message<'a>(
    input: &'a Input,
    signed: &[Part],
    timestamp: &Option<Window>,
) -> Result<(Vec<u8>, Option<Cow<'a, str>>), VerifyError> {
    let raw = timestamp.map(|w| input.require(w.at)).transpose()?;
    let message = input.message(signed, false, None, raw.as_deref(), None)?;
    Ok((message, raw))
}

fn sign_message(
    request: &mut WebhookRequest,
    fields: &[(&str, &str)],
    signed: &[Part],
    timestamp: &Option<Window>,
    now_ms: i64,
) -> Result<Vec<u8>, SignError> {
    let raw = timestamp.map(|window| timestamp_value(&window, now_ms));
    if let (Some(window), Some(raw)) = (timestamp, &raw) {
        place(request, window.at, raw)?;
    }
    Input::new(request, fields)
        .message(signed, false, None, raw.as_deref(), None)
        .map_err(|_| SignError::Unsupported("a signed value"))
}

fn basic_credentials(username: &str, password: &Secret) -> String {
    let pair = format!("{username}:{}", password.expose());
    format!("Basic {}", BASE64.encode(pair))
}

/// Puts a value where the scheme expects it.
fn place(request: &mut WebhookRequest, at: At, value: &str) -> Result<(), SignError> {
    match at {
        At::Header(name) => {
            let value =
                http::HeaderValue::from_str(value).map_err(|_| SignError::Unsupported(name))?;
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SignError::Unsupported(name))?;
            request.headers_mut().insert(name, value);
        }
        At::Query(name) => {
            let uri = request.uri().to_string();
            let pair = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish();
            let joined = if uri.contains('?') {
                format!("{uri}&{pair}")
            } else {
                format!("{uri}?{pair}")
            };
            *request.uri_mut() = joined.parse().map_err(|_| SignError::Unsupported(name))?;
        }
        At::Form(name) => {
            if request.content_type() != "application/x-www-form-urlencoded" {
                return Err(SignError::Unsupported(name));
            }
            let mut body = String::from_utf8(request.body().to_vec())
                .map_err(|_| SignError::Unsupported(name))?;
            let pair = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish();
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(&pair);
            *request.body_mut() = Bytes::from(body);
        }
        At::Field(name) => return Err(SignError::Unsupported(name)),
    }
    Ok(())
}

/// A channel's scheme with its key material: what it verifies with, and
/// what it signs with where it can (a public-key channel signs only when it
/// holds the private key, in development mode and tests).
#[derive(Clone)]
pub struct Signature {
    pub scheme: Scheme,
    key: Material,
}

#[derive(Clone)]
enum Material {
    Secret(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    Ed25519 {
        public: ed25519_dalek::VerifyingKey,
        private: Option<Box<ed25519_dalek::SigningKey>>,
    },
    P256 {
        public: Box<p256::ecdsa::VerifyingKey>,
        private: Option<Box<p256::ecdsa::SigningKey>>,
    },
    Sns {
        certificates: std::sync::Arc<super::sns::Certificates>,
        private: Option<Box<rsa::RsaPrivateKey>>,
    },
}

impl Signature {
    /// A scheme keyed with the shared secret from the setting `name`.
    pub fn shared(scheme: Scheme, name: &str, secret: &Secret) -> Result<Self, super::Unusable> {
        if secret.expose().trim().is_empty() {
            return Err(super::unusable(format!("{name} is empty")));
        }
        Ok(Self {
            scheme,
            key: Material::Secret(secret.clone()),
        })
    }

    /// HTTP basic authentication with these credentials.
    pub fn basic(username: &str, password: &Secret) -> Result<Self, super::Unusable> {
        if username.is_empty() || username.contains(':') || password.is_empty() {
            return Err(super::unusable(
                "basic auth needs a user name without `:` and a password",
            ));
        }
        let key = Material::Basic {
            username: username.to_owned(),
            password: password.clone(),
        };
        Ok(Self {
            scheme: Scheme::BasicAuth,
            key,
        })
    }

    /// An Ed25519 scheme with the public key, and the private one to sign with.
    pub fn ed25519(
        scheme: Scheme,
        public: ed25519_dalek::VerifyingKey,
        private: Option<ed25519_dalek::SigningKey>,
    ) -> Self {
        let private = private.map(Box::new);
        Self {
            scheme,
            key: Material::Ed25519 { public, private },
        }
    }

    /// An ECDSA P-256 scheme with the public key, and the private one to sign with.
    pub fn p256(
        scheme: Scheme,
        public: p256::ecdsa::VerifyingKey,
        private: Option<p256::ecdsa::SigningKey>,
    ) -> Self {
        let (public, private) = (Box::new(public), private.map(Box::new));
        Self {
            scheme,
            key: Material::P256 { public, private },
        }
    }

    /// Amazon SNS with these certificates, and the private key to sign with
    /// (development and tests).
    pub fn sns(
        scheme: Scheme,
        certificates: std::sync::Arc<super::sns::Certificates>,
        private: Option<rsa::RsaPrivateKey>,
    ) -> Self {
        let private = private.map(Box::new);
        Self {
            scheme,
            key: Material::Sns {
                certificates,
                private,
            },
        }
    }

    /// The replay window from a setting (seconds, positive), else the scheme's.
    pub fn window(mut self, max_age_secs: Option<i64>) -> Result<Self, super::Unusable> {
        match max_age_secs {
            Some(secs) if secs <= 0 => Err(super::unusable("replay_window_secs must be positive")),
            Some(secs) => {
                self.scheme = self.scheme.with_max_age(secs);
                Ok(self)
            }
            None => Ok(self),
        }
    }

    pub fn verify(
        &self,
        request: &WebhookRequest,
        fields: &[(&str, &str)],
        now_ms: i64,
    ) -> Result<Verified, VerifyError> {
        let key = match &self.key {
            Material::Secret(secret) => Key::Secret(secret),
            Material::Basic { username, password } => Key::Basic { username, password },
            Material::Ed25519 { public, .. } => Key::Ed25519(public),
            Material::P256 { public, .. } => Key::P256(public),
            Material::Sns { certificates, .. } => Key::Sns(certificates),
        };
        self.scheme.verify(&key, request, fields, now_ms)
    }

    pub fn sign(
        &self,
        request: &mut WebhookRequest,
        fields: &[(&str, &str)],
        now_ms: i64,
        nonce: &str,
    ) -> Result<(), SignError> {
        let key = match &self.key {
            Material::Secret(secret) => SigningKey::Secret(secret),
            Material::Basic { username, password } => SigningKey::Basic { username, password },
            Material::Ed25519 {
                private: Some(private),
                ..
            } => SigningKey::Ed25519(private),
            Material::P256 {
                private: Some(private),
                ..
            } => SigningKey::P256(private),
            Material::Sns {
                private: Some(private),
                ..
            } => SigningKey::Rsa(private),
            Material::Ed25519 { .. } | Material::P256 { .. } | Material::Sns { .. } => {
                return Err(SignError::WrongKey);
            }
        };
        self.scheme.sign(&key, request, fields, now_ms, nonce)
    }
}

/// Schemes that sign the URL the provider called (Twilio): the request is
/// taken as called at `registered` (the URL entered in the provider's
/// console, with the request's query), else as it arrived; like the
/// provider's SDKs, the URL with its default port added or removed is
/// accepted too.
impl Signature {
    pub fn verify_as_called(
        &self,
        request: &WebhookRequest,
        registered: Option<&str>,
        now_ms: i64,
    ) -> Result<Verified, VerifyError> {
        // Borrowed unless a registered URL must be attached: copying the
        // request's headers showed in every Twilio request.
        let request = match registered {
            Some(url) => Cow::Owned(super::request::called_at(request, url)),
            None => Cow::Borrowed(request),
        };
        let first = self.verify(&request, &[], now_ms);
        if !matches!(first, Err(VerifyError::BadSignature)) {
            return first;
        }
        for url in super::request::port_variants(&request.public_url()) {
            let mut variant = request.clone().into_owned();
            variant.extensions_mut().insert(super::PublicUrl(url));
            if let Ok(verified) = self.verify(&variant, &[], now_ms) {
                return Ok(verified);
            }
        }
        first
    }

    pub fn sign_as_called(
        &self,
        request: &mut WebhookRequest,
        registered: Option<&str>,
        now_ms: i64,
    ) -> Result<(), SignError> {
        let mut called = as_called(request, registered);
        self.sign(&mut called, &[], now_ms, &super::nonce())?;
        request.headers_mut().extend(called.headers().clone());
        Ok(())
    }
}

fn as_called(request: &WebhookRequest, registered: Option<&str>) -> WebhookRequest {
    match registered {
        Some(url) => super::request::called_at(request, url),
        None => request.clone(),
    }
}

/// An Ed25519 public key from its hex form (Discord's `public_key`).
pub fn ed25519_public_key(hex_key: &str) -> Option<ed25519_dalek::VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
}

/// A P-256 public key from base64 DER (SubjectPublicKeyInfo), as SendGrid shows it.
pub fn p256_public_key(base64_der: &str) -> Option<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    let der = BASE64.decode(base64_der.trim()).ok()?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;
    use crate::kit::schemes::*;

    const NOW_MS: i64 = 1_700_000_030_000;
    /// Non-ASCII and a trailing CRLF: a re-serialised or re-decoded body would not verify.
    const BODY: &str =
        "{\"events\":[{\"type\":\"message\",\"message\":{\"text\":\"こんにちは\"}}]}\r\n";

    fn request(url: &str, headers: &[(&str, &str)], body: &str) -> WebhookRequest {
        let mut all = vec![("content-type".to_owned(), "application/json".to_owned())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        build_request("POST", url, &all, body.to_owned()).unwrap()
    }

    fn secret(value: &str) -> Secret {
        Secret::new(value)
    }

    /// Known answers computed independently with Python's `hmac`, `hashlib`
    /// and `cryptography` (the script is in the commit message of this test).
    #[test]
    fn known_answers_verify_for_every_scheme() {
        let cases: [(Scheme, &str, &str, &str); 6] = [
            (
                LINE,
                "line-channel-secret",
                "x-line-signature",
                "/AJsYTXCllccs245yRHoSMz73K6UfbSuy5xf3pjp7hg=",
            ),
            (
                META,
                "meta-app-secret",
                "X-Hub-Signature-256",
                "sha256=d769b8a57b77920be1e6aa79ddd0a3fea5d5d7228ccd6ec8cb294f0b6fa414b5",
            ),
            (
                META_SHA1,
                "meta-app-secret",
                "X-Hub-Signature",
                "sha1=b329de26e76476d0caa2fad30520cf14ce48d88e",
            ),
            (
                VIBER,
                "viber-auth-token",
                "X-Viber-Content-Signature",
                "22e057282521a196110ae77f96182bb26b9938830c87917fa6789bcfd319254b",
            ),
            (
                X,
                "x-consumer-secret",
                "x-twitter-webhooks-signature",
                "sha256=mJE9yLOeux6OhzOU2tsPopTaUYxmgJHozH+pw3wtnCk=",
            ),
            (
                FEISHU,
                "feishu-encrypt-key",
                "X-Lark-Signature",
                "c0db65b5b3a58f84fcbe67c263af93c6136090f8f167f67e422058c9a04478f6",
            ),
        ];
        for (scheme, key, header, signature) in cases {
            let lark = [
                ("X-Lark-Request-Timestamp", "1700000000"),
                ("X-Lark-Request-Nonce", "nonce123"),
            ];
            let mut headers = vec![(header, signature)];
            headers.extend(lark);
            let good = request("/w", &headers, BODY);
            let key = secret(key);
            let verified = scheme
                .verify(&Key::Secret(&key), &good, &[], NOW_MS)
                .unwrap();
            assert_eq!(verified.body, BODY.as_bytes(), "{header}");
            // One byte of the body changed, or the case of the signature: refused.
            let tampered = request("/w", &headers, &BODY.replace("こ", "ご"));
            assert!(
                scheme
                    .verify(&Key::Secret(&key), &tampered, &[], NOW_MS)
                    .is_err(),
                "{header}"
            );
            // Base64 compares exactly: a signature differing only in case is wrong.
            if signature.ends_with('=') {
                let recased = signature.to_uppercase().replace("SHA256=", "sha256=");
                let headers = [(header, recased.as_str())];
                let recased = request("/w", &headers, BODY);
                assert!(
                    scheme
                        .verify(&Key::Secret(&key), &recased, &[], NOW_MS)
                        .is_err(),
                    "{header}"
                );
            }
        }

        let crc = build_request("GET", "/w?crc_token=crc-token-123", &[], "").unwrap();
        assert_eq!(
            X_CRC
                .expected(&secret("x-consumer-secret"), &crc, &[])
                .unwrap(),
            "sha256=YUsT0aLbF0VtFGcLCND1EU/aQP0sjPL19cPulVY7Wes="
        );

        let twilio = build_request(
            "POST",
            "https://example.com/webhooks/twilio?foo=1&bar=2",
            &[
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                (
                    "X-Twilio-Signature".into(),
                    "MRdUe88tHXXDBzK+gsvbCfgTzTQ=".into(),
                ),
            ],
            "To=%2B18005551212&From=%2B12349013030&Body=hi+there&MessageSid=SM123",
        )
        .unwrap();
        TWILIO
            .verify(
                &Key::Secret(&secret("twilio-auth-token")),
                &twilio,
                &[],
                NOW_MS,
            )
            .unwrap();
        let mut elsewhere = twilio.clone();
        elsewhere
            .extensions_mut()
            .insert(crate::kit::PublicUrl("https://example.com/other".into()));
        assert!(
            TWILIO
                .verify(
                    &Key::Secret(&secret("twilio-auth-token")),
                    &elsewhere,
                    &[],
                    NOW_MS
                )
                .is_err()
        );

        let query = "/w?signature=b59400490263239299de2037ed54a1e5b4b99d89&timestamp=1700000000&nonce=nonce123";
        let wechat = build_request("POST", query, &[], BODY).unwrap();
        let verified = WECHAT
            .verify(&Key::Secret(&secret("wechat-token")), &wechat, &[], NOW_MS)
            .unwrap();
        assert_eq!(verified.nonce.as_deref(), Some("nonce123"));
        let query = "/w?msg_signature=37dd99b4d0cfefab78c65aae4311dd3008b51a6b&timestamp=1700000000&nonce=nonce123";
        let encrypted = build_request("POST", query, &[], BODY).unwrap();
        let key = secret("wechat-token");
        WECHAT_ENCRYPTED
            .verify(
                &Key::Secret(&key),
                &encrypted,
                &[("Encrypt", "ENCRYPTEDXYZ==")],
                NOW_MS,
            )
            .unwrap();
        let other = [("Encrypt", "ENCRYPTEDXYZ=+")];
        assert!(
            WECHAT_ENCRYPTED
                .verify(&Key::Secret(&key), &encrypted, &other, NOW_MS)
                .is_err()
        );

        let dingtalk = request(
            "/w",
            &[
                ("timestamp", "1700000000000"),
                ("sign", "p8uLpRFVSC2nQ2kcic/CwJqR84GVetV75e9eGCVs0wc="),
            ],
            BODY,
        );
        DINGTALK
            .verify(
                &Key::Secret(&secret("dingtalk-app-secret")),
                &dingtalk,
                &[],
                NOW_MS,
            )
            .unwrap();

        let public =
            ed25519_public_key("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
                .unwrap();
        let discord = request(
            "/w",
            &[
                ("X-Signature-Timestamp", "1700000000"),
                (
                    "X-Signature-Ed25519",
                    "3ecbfd2f15d50a214226ac731ee796b500b782a7adc7209e2ef9002478d60865d30909c21469f52808bfa7b268d00e2822e5284269d27a574aed0474c6daf506",
                ),
            ],
            BODY,
        );
        DISCORD
            .verify(&Key::Ed25519(&public), &discord, &[], NOW_MS)
            .unwrap();
        let tampered = request(
            "/w",
            &discord
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
                .collect::<Vec<_>>(),
            "{}",
        );
        assert!(matches!(
            DISCORD.verify(&Key::Ed25519(&public), &tampered, &[], NOW_MS),
            Err(VerifyError::BadSignature)
        ));

        let public = p256_public_key("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+1A4jylJjQqTrSXsTDQDe508w8ykeH62/tq+KzAD6sifd2XKnWKI5v9zT1zQjzpZIc9UshuzmLUKwNJXf6B0cg==").unwrap();
        let sendgrid = request(
            "/w",
            &[
                ("X-Twilio-Email-Event-Webhook-Timestamp", "1700000000"),
                (
                    "X-Twilio-Email-Event-Webhook-Signature",
                    "MEQCIDw/j6zvwICcpg9kog+wacAV0QIVJCeG70NJiWTHS3W9AiBNfWH9gX7JYy7t3khfEWYkigCbveQUmz5AgDJ6UVCP5A==",
                ),
            ],
            BODY,
        );
        SENDGRID_EVENTS
            .verify(&Key::P256(&public), &sendgrid, &[], NOW_MS)
            .unwrap();
        let trimmed = request(
            "/w",
            &sendgrid
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
                .collect::<Vec<_>>(),
            BODY.trim_end(),
        );
        assert!(
            SENDGRID_EVENTS
                .verify(&Key::P256(&public), &trimmed, &[], NOW_MS)
                .is_err(),
            "the CRLF is signed"
        );

        let password = secret("parse-password");
        let basic = request(
            "/w",
            &[("Authorization", "Basic aW5ib3VuZDpwYXJzZS1wYXNzd29yZA==")],
            BODY,
        );
        BASIC_AUTH
            .verify(
                &Key::Basic {
                    username: "inbound",
                    password: &password,
                },
                &basic,
                &[],
                NOW_MS,
            )
            .unwrap();
        let wrong = secret("parse-passwore");
        assert!(
            BASIC_AUTH
                .verify(
                    &Key::Basic {
                        username: "inbound",
                        password: &wrong
                    },
                    &basic,
                    &[],
                    NOW_MS
                )
                .is_err()
        );
    }

    /// Every scheme signs what it verifies, and refuses a changed body, a
    /// changed signature and a stale or future timestamp.
    #[test]
    fn every_scheme_signs_what_it_verifies() {
        let shared = secret("a-shared-secret-of-some-length");
        let ed_private = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let ed_public = ed_private.verifying_key();
        let p_private = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let p_public = *p_private.verifying_key();
        let password = secret("pw");
        let schemes = [
            SLACK,
            TELEGRAM,
            WEBCHAT,
            MAILGUN,
            LINE,
            META,
            META_SHA1,
            VIBER,
            X,
            TWILIO,
            DISCORD,
            SENDGRID_EVENTS,
            BASIC_AUTH,
            WECHAT,
            WECHAT_ENCRYPTED,
            FEISHU,
            DINGTALK,
        ];
        for scheme in schemes {
            let (signing, verifying) = match scheme {
                Scheme::Ed25519 { .. } => {
                    (SigningKey::Ed25519(&ed_private), Key::Ed25519(&ed_public))
                }
                Scheme::EcdsaP256 { .. } => (SigningKey::P256(&p_private), Key::P256(&p_public)),
                Scheme::BasicAuth => (
                    SigningKey::Basic {
                        username: "u",
                        password: &password,
                    },
                    Key::Basic {
                        username: "u",
                        password: &password,
                    },
                ),
                _ => (SigningKey::Secret(&shared), Key::Secret(&shared)),
            };
            let form = scheme == MAILGUN || scheme == TWILIO;
            let (content_type, body) = if form {
                (
                    "application/x-www-form-urlencoded",
                    "from=a%40b.example&text=caf%C3%A9",
                )
            } else {
                ("application/json", BODY)
            };
            let fields = [("Encrypt", "c2VjcmV0")];
            let make = |body: &str| {
                let headers = [("content-type".to_owned(), content_type.to_owned())];
                build_request(
                    "POST",
                    "https://h.example/webhooks/x?a=1",
                    &headers,
                    body.to_owned(),
                )
                .unwrap()
            };
            let mut signed = make(body);
            scheme
                .sign(&signing, &mut signed, &fields, NOW_MS, "nonce-1")
                .unwrap();
            let verified = scheme
                .verify(&verifying, &signed, &fields, NOW_MS)
                .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let covers_body = !matches!(scheme, Scheme::SharedSecret { .. } | Scheme::BasicAuth)
                && scheme != WECHAT
                && scheme != WECHAT_ENCRYPTED
                && scheme != DINGTALK;
            if covers_body && !form {
                let mut changed = signed.clone();
                *changed.body_mut() = BODY.replace("こ", "ご").into();
                assert!(
                    scheme
                        .verify(&verifying, &changed, &fields, NOW_MS)
                        .is_err(),
                    "{scheme:?}"
                );
            }
            if let Some(nonce) = verified.nonce {
                assert_eq!(nonce, "nonce-1");
            }
            if let Some(window) = scheme.window() {
                let mut stale = make(body);
                let then = NOW_MS - (window.max_age_secs + 1) * 1000;
                scheme
                    .sign(&signing, &mut stale, &fields, then, "nonce-2")
                    .unwrap();
                assert!(
                    matches!(
                        scheme.verify(&verifying, &stale, &fields, NOW_MS),
                        Err(VerifyError::Stale { .. })
                    ),
                    "{scheme:?}"
                );
                let mut future = make(body);
                let later = NOW_MS + (window.max_future_secs + 1) * 1000;
                scheme
                    .sign(&signing, &mut future, &fields, later, "nonce-3")
                    .unwrap();
                assert!(
                    matches!(
                        scheme.verify(&verifying, &future, &fields, NOW_MS),
                        Err(VerifyError::Future { .. })
                    ),
                    "{scheme:?}"
                );
            }
            assert!(
                scheme
                    .verify(&verifying, &make(body), &fields, NOW_MS)
                    .is_err(),
                "{scheme:?} unsigned"
            );
        }
    }

    #[test]
    fn extreme_timestamps_are_refused_not_a_panic() {
        let window = Window {
            at: At::Header("t"),
            unit: Unit::Seconds,
            max_age_secs: 300,
            max_future_secs: 60,
        };
        for timestamp in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            assert!(
                check_window(&window, &timestamp.to_string(), NOW_MS).is_err(),
                "{timestamp}"
            );
        }
        assert!(check_window(&window, "0", i64::MIN).is_err());
        assert!(check_window(&window, "99999999999999999999", NOW_MS).is_err());
        let millis = Window {
            unit: Unit::Millis,
            ..window
        };
        assert!(check_window(&millis, &i64::MIN.to_string(), NOW_MS).is_err());
        assert!(check_window(&millis, &NOW_MS.to_string(), NOW_MS).is_ok());
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = digest(
            Mac::Hmac(Digest::Sha256),
            b"Jefe",
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
