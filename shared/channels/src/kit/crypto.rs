//! Decrypting (and, for `simulate` and tests, encrypting) what providers
//! encrypt: AES-256-CBC with PKCS#7 padding, and the WeChat family's message
//! layout (WeChat safe mode, WeCom), where the block size of the padding is
//! 32 bytes and the plaintext carries its length and the receiving app's id.
//! Every failure is one opaque error: a padding oracle learns nothing.

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

const BLOCK: usize = 16;
/// The WeChat family pads to 32 bytes, not to the AES block.
const WECHAT_PAD_BLOCK: usize = 32;

/// A ciphertext that does not decrypt to a valid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the encrypted message cannot be decrypted")]
pub struct Undecryptable;

/// AES-256-CBC over whole blocks, no padding removed.
pub fn aes256_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, Undecryptable> {
    if data.is_empty() || !data.len().is_multiple_of(BLOCK) || iv.len() != BLOCK {
        return Err(Undecryptable);
    }
    let mut buffer = data.to_vec();
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .map_err(|_| Undecryptable)?;
    Ok(buffer)
}

/// AES-256-CBC over `data`, already padded to whole blocks.
pub fn aes256_cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    assert!(data.len().is_multiple_of(BLOCK), "padded to whole blocks");
    let mut buffer = data.to_vec();
    let length = buffer.len();
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, length)
        .expect("whole blocks");
    buffer
}

/// `data` with PKCS#7 padding to a multiple of `block` (at most 255).
pub fn pkcs7_pad(data: &[u8], block: usize) -> Vec<u8> {
    let pad = block - data.len() % block;
    let mut out = data.to_vec();
    out.extend(std::iter::repeat_n(pad as u8, pad));
    out
}

/// `data` without its PKCS#7 padding to a multiple of `block`.
pub fn pkcs7_unpad(data: &[u8], block: usize) -> Result<&[u8], Undecryptable> {
    let pad = usize::from(*data.last().ok_or(Undecryptable)?);
    if pad == 0 || pad > block || pad > data.len() {
        return Err(Undecryptable);
    }
    let (kept, padding) = data.split_at(data.len() - pad);
    match padding.iter().all(|byte| usize::from(*byte) == pad) {
        true => Ok(kept),
        false => Err(Undecryptable),
    }
}

/// Feishu / Lark: key SHA-256(encrypt key); base64 of IV ‖ ciphertext;
/// PKCS#7 to the AES block.
pub fn feishu_decrypt(encrypt_key: &str, encrypted: &str) -> Result<Vec<u8>, Undecryptable> {
    let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
    let raw = BASE64.decode(encrypted.trim()).map_err(|_| Undecryptable)?;
    if raw.len() < 2 * BLOCK {
        return Err(Undecryptable);
    }
    let (iv, data) = raw.split_at(BLOCK);
    let plain = aes256_cbc_decrypt(&key, iv, data)?;
    Ok(pkcs7_unpad(&plain, BLOCK)?.to_vec())
}

/// A Feishu JSON body, decrypted when it is `{"encrypt": …}`.
pub fn feishu_open(encrypt_key: &str, body: &[u8]) -> Result<serde_json::Value, Undecryptable> {
    let outer: serde_json::Value = serde_json::from_slice(body).map_err(|_| Undecryptable)?;
    let Some(sealed) = outer.get("encrypt").and_then(serde_json::Value::as_str) else {
        return Ok(outer);
    };
    serde_json::from_slice(&feishu_decrypt(encrypt_key, sealed)?).map_err(|_| Undecryptable)
}

/// What [`feishu_decrypt`] reads, with the given IV.
pub fn feishu_encrypt(encrypt_key: &str, iv: &[u8; 16], plain: &[u8]) -> String {
    let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
    let mut raw = iv.to_vec();
    raw.extend(aes256_cbc_encrypt(&key, iv, &pkcs7_pad(plain, BLOCK)));
    BASE64.encode(raw)
}

/// The key of the WeChat family: the 43-character `EncodingAESKey` is
/// base64 without its final `=`.
pub fn wechat_key(encoding_aes_key: &str) -> Option<[u8; 32]> {
    let text = encoding_aes_key.trim();
    if text.len() != 43 {
        return None;
    }
    // Tencent's keys need not end in zero bits, which strict decoders refuse.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    lenient.decode(format!("{text}=")).ok()?.try_into().ok()
}

/// Decrypts a WeChat-family message (base64): IV = the first 16 key bytes;
/// plaintext = 16 random bytes, 4-byte big-endian length, message, receiver
/// id, which must equal `receiver` (the AppID or CorpID).
pub fn wechat_decrypt(
    key: &[u8; 32],
    encrypted: &str,
    receiver: &str,
) -> Result<Vec<u8>, Undecryptable> {
    let raw = BASE64.decode(encrypted.trim()).map_err(|_| Undecryptable)?;
    let plain = aes256_cbc_decrypt(key, &key[..BLOCK], &raw)?;
    let plain = pkcs7_unpad(&plain, WECHAT_PAD_BLOCK)?;
    let rest = plain.get(BLOCK..).ok_or(Undecryptable)?;
    let (length, rest) = rest.split_first_chunk::<4>().ok_or(Undecryptable)?;
    let length = u32::from_be_bytes(*length) as usize;
    if length > rest.len() {
        return Err(Undecryptable);
    }
    let (message, from) = rest.split_at(length);
    match super::signature::constant_time_eq(from, receiver.as_bytes()) {
        true => Ok(message.to_vec()),
        false => Err(Undecryptable),
    }
}

/// What [`wechat_decrypt`] reads, with the given 16 random bytes.
pub fn wechat_encrypt(key: &[u8; 32], random: &[u8; 16], message: &[u8], receiver: &str) -> String {
    let mut plain = random.to_vec();
    plain.extend((message.len() as u32).to_be_bytes());
    plain.extend(message);
    plain.extend(receiver.as_bytes());
    let iv: [u8; 16] = key[..BLOCK].try_into().expect("32-byte key");
    BASE64.encode(aes256_cbc_encrypt(
        key,
        &iv,
        &pkcs7_pad(&plain, WECHAT_PAD_BLOCK),
    ))
}

/// 16 random bytes (an IV, WeChat's random prefix).
pub fn random_16() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeChat Official Account, the official sample (Tencent's WXBizMsgCrypt
    /// demo by jonyqin). Its padding is 2 bytes; WeCom's sample (in
    /// `wecom.rs`) has 22, more than one AES block.
    const OA_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const OA_APP_ID: &str = "wx2c2769f8efd9abc2";
    const OA_ENCRYPTED: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    #[test]
    fn official_account_sample_decrypts_and_checks_the_app_id() {
        let key = wechat_key(OA_KEY).unwrap();
        let message = wechat_decrypt(&key, OA_ENCRYPTED, OA_APP_ID).unwrap();
        let text = String::from_utf8(message).unwrap();
        assert!(
            text.contains("<Content><![CDATA[abcdteT]]></Content>"),
            "{text}"
        );
        assert!(
            text.contains("<MsgId>6054768590064713728</MsgId>"),
            "{text}"
        );
        let raw = BASE64.decode(OA_ENCRYPTED).unwrap();
        let plain = aes256_cbc_decrypt(&key, &key[..16], &raw).unwrap();
        assert_eq!(*plain.last().unwrap(), 2);
        assert_eq!(
            wechat_decrypt(&key, OA_ENCRYPTED, "wx2c2769f8efd9abc3"),
            Err(Undecryptable)
        );
    }

    /// wechatpy's WeCom test (`tests/test_crypto.py`, `test_encrypt_message`):
    /// a deterministic encryption with the random prefix `1234567890123456`.
    #[test]
    fn wechatpy_encryption_known_answer() {
        let key = wechat_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap();
        let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let encrypted = wechat_encrypt(
            &key,
            b"1234567890123456",
            reply.as_bytes(),
            "wx49f0ab532d5d035a",
        );
        assert_eq!(
            encrypted,
            "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
        );
        let back = wechat_decrypt(&key, &encrypted, "wx49f0ab532d5d035a").unwrap();
        assert_eq!(back, reply.as_bytes());
    }

    /// Feishu's documented example: key "test key", "hello world".
    #[test]
    fn feishu_documented_example_decrypts() {
        let plain =
            feishu_decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
        assert_eq!(plain, b"hello world");
        let iv = [7u8; 16];
        let sealed = feishu_encrypt("k", &iv, "你好".as_bytes());
        assert_eq!(feishu_decrypt("k", &sealed).unwrap(), "你好".as_bytes());
        assert!(
            feishu_decrypt("other", &sealed).is_err()
                || feishu_decrypt("other", &sealed).unwrap() != "你好".as_bytes()
        );
    }

    #[test]
    fn hostile_ciphertexts_are_errors_not_panics() {
        let key = wechat_key(OA_KEY).unwrap();
        for bad in [
            "",
            "!!",
            "AAAA",
            &BASE64.encode([0u8; 15]),
            &BASE64.encode([0u8; 32]),
            &BASE64.encode([0u8; 48]),
        ] {
            assert_eq!(
                wechat_decrypt(&key, bad, OA_APP_ID),
                Err(Undecryptable),
                "{bad}"
            );
            assert!(feishu_decrypt("k", bad).is_err(), "{bad}");
        }
        // A length field pointing past the end.
        let mut plain = [0u8; 16].to_vec();
        plain.extend(u32::MAX.to_be_bytes());
        plain.extend(b"short");
        let iv: [u8; 16] = key[..16].try_into().unwrap();
        let sealed = BASE64.encode(aes256_cbc_encrypt(&key, &iv, &pkcs7_pad(&plain, 32)));
        assert_eq!(wechat_decrypt(&key, &sealed, ""), Err(Undecryptable));
        assert!(wechat_key("short").is_none());
        assert_eq!(pkcs7_unpad(&[1, 2, 0], 16), Err(Undecryptable));
        assert_eq!(pkcs7_unpad(&[1, 3, 2], 16), Err(Undecryptable));
        assert_eq!(pkcs7_unpad(&[1, 2, 2], 16), Ok(&[1u8][..]));
    }
}
