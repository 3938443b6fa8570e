//! The `Genq-Signature` header of a webhook delivery (SPEC §8):
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`. genq signs; a
//! receiver verifies (the README shows the same check in Python). Several `v1=` values may be
//! present while a secret is being rotated; any one that matches is enough.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "Genq-Signature";

fn mac(secret: &[u8], t: i64, body: &[u8]) -> hmac::Hmac<Sha256> {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at unix time `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the header is not t=<seconds>,v1=<hex>")]
    Malformed,
    #[error("the timestamp is {0} seconds away from now, more than the tolerance")]
    Stale(i64),
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// The timestamp and the `v1` tags of a header, in order.
pub fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), Invalid> {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(Invalid::Malformed)?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Invalid::Malformed);
        }
        match key {
            "t" if t.is_none() => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Invalid::Malformed);
                }
                t = Some(value.parse::<i64>().map_err(|_| Invalid::Malformed)?);
            }
            "v1" => tags.push(unhex(value).ok_or(Invalid::Malformed)?),
            // Later schemes (v2=…) are ignored, so receivers keep working when one is added.
            _ if key != "t" => {}
            _ => return Err(Invalid::Malformed),
        }
    }
    match t {
        Some(t) if !tags.is_empty() => Ok((t, tags)),
        _ => Err(Invalid::Malformed),
    }
}

/// 32 bytes written as 64 hex digits, either case (and nothing else: no sign, no space).
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Check `header` for `body` at unix time `now`, refusing timestamps more than `tolerance`
/// seconds away (replays). Comparison is in constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), Invalid> {
    let (t, tags) = parse(header)?;
    let skew = now.saturating_sub(t);
    if skew.abs() > tolerance {
        return Err(Invalid::Stale(skew));
    }
    let expected = mac(secret, t, body);
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(Invalid::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_nothing_else_does() {
        let header = sign(b"whsec", 1_700_000_000, br#"{"id":"e1"}"#);
        // The example in the README: HMAC-SHA256("whsec", "1700000000.{\"id\":\"e1\"}").
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(
            verify(b"whsec", &header, br#"{"id":"e1"}"#, 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify(b"whsec", &header, br#"{"id":"e2"}"#, 1_700_000_000, 300),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, br#"{"id":"e1"}"#, 1_700_000_000, 300),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(b"whsec", &header, br#"{"id":"e1"}"#, 1_700_001_000, 300),
            Err(Invalid::Stale(1000))
        );
        // Rotation: an old and a new tag, either matches.
        let old = sign(b"old", 5, b"x");
        let new = sign(b"whsec", 5, b"x");
        let both = format!("{old},v1={}", new.split("v1=").nth(1).unwrap());
        assert_eq!(verify(b"whsec", &both, b"x", 5, 300), Ok(()));
        let plus = format!("t=1,v1=+{}", "0".repeat(63));
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=2,v1=00",
            "garbage",
            &plus,
        ] {
            assert_eq!(parse(bad).unwrap_err(), Invalid::Malformed, "{bad}");
        }
    }
}
