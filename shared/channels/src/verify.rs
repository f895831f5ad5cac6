//! Signature primitives shared by the channel modules. Every comparison is
//! constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::VerifyError;

/// HMAC-SHA256 of the parts, in order, keyed with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Compares an expected MAC with a lowercase- or uppercase-hex signature.
pub fn hex_signature_matches(expected: &[u8], presented_hex: &str) -> bool {
    match hex::decode(presented_hex.trim()) {
        Ok(presented) => constant_time_eq(expected, &presented),
        Err(_) => false,
    }
}

/// Rejects a signed timestamp (unix seconds) further than `window_secs` from now, either way.
pub fn check_replay_window(
    timestamp_secs: i64,
    now_ms: i64,
    window_secs: i64,
) -> Result<(), VerifyError> {
    let now_secs = now_ms.div_euclid(1000);
    // Checked: a hostile timestamp such as i64::MIN must not overflow.
    match now_secs.checked_sub(timestamp_secs) {
        Some(distance) if distance.unsigned_abs() <= window_secs.max(0).unsigned_abs() => Ok(()),
        _ => Err(VerifyError::Stale { window_secs }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_signatures_compare_exactly() {
        let mac = hmac_sha256(b"k", &[b"body"]);
        assert!(hex_signature_matches(&mac, &hex::encode(mac)));
        assert!(hex_signature_matches(
            &mac,
            &hex::encode(mac).to_uppercase()
        ));
        assert!(!hex_signature_matches(&mac, &hex::encode(&mac[..31])));
        assert!(!hex_signature_matches(&mac, "not hex"));
    }

    #[test]
    fn replay_window_is_two_sided() {
        let now_ms = 1_700_000_000_000;
        assert!(check_replay_window(1_700_000_000 - 300, now_ms, 300).is_ok());
        assert!(check_replay_window(1_700_000_000 - 301, now_ms, 300).is_err());
        assert!(check_replay_window(1_700_000_000 + 301, now_ms, 300).is_err());
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let now_ms = 1_700_000_000_000;
        for timestamp in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            assert!(
                check_replay_window(timestamp, now_ms, 300).is_err(),
                "{timestamp}"
            );
        }
        assert!(check_replay_window(0, i64::MIN, 300).is_err());
        assert!(check_replay_window(0, 0, i64::MAX).is_ok());
    }
}
