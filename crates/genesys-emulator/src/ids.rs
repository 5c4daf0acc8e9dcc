//! Random identifiers: UUID v4 strings and opaque access tokens.
//!
//! These use the operating system's randomness, not the seeded fault
//! generator, so that fault sequences stay reproducible whatever ids are made.

use base64::Engine as _;
use rand::RngExt as _;

/// A fresh UUID v4, lower-case hyphenated.
pub(crate) fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A fresh opaque bearer token (64 URL-safe characters).
pub(crate) fn new_token() -> String {
    let b: [u8; 48] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_v4_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, new_uuid());
    }

    #[test]
    fn tokens_differ() {
        assert_eq!(new_token().len(), 64);
        assert_ne!(new_token(), new_token());
    }
}
