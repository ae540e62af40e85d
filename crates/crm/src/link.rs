//! The owner's quote link: signed, expiring, unguessable, no account needed.
//!
//! A link names the quote, when it stops working and a nonce, and carries an HMAC-SHA256 of
//! those under the CRM's link key: `/q/{payload}.{signature}`, both base64url. Changing any
//! character breaks the signature; the expiry is inside what is signed; the nonce is stored
//! with the quote, so sending the quote again makes a new link and retires the old one. The
//! check takes `now` rather than reading a clock, so expiry is tested without waiting.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The secret links are signed with: at least 32 bytes, kept in the CRM's config.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a valid link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub quote_id: String,
    pub expires_ms: i64,
    pub nonce: String,
}

/// Why a link does not open a quote; each gets its own page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is damaged or was changed")]
    Tampered,
    #[error("the link expired")]
    Expired { quote_id: String },
}

impl LinkKey {
    pub fn new(secret: &[u8]) -> Result<LinkKey, String> {
        if secret.len() < 32 {
            return Err(format!(
                "the link key is {} bytes; it must be at least 32 random bytes",
                secret.len()
            ));
        }
        Ok(LinkKey(secret.to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// The token part of the link (what follows `/q/`).
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!("{}.{}.{}", claims.quote_id, claims.expires_ms, claims.nonce);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Checks a link's token at `now_ms`. The caller still compares the nonce with the quote's.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, LinkError> {
        let (payload, signature) = token.split_once('.').ok_or(LinkError::Tampered)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Tampered)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Tampered)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&signature)
            .map_err(|_| LinkError::Tampered)?;
        let payload = String::from_utf8(payload).map_err(|_| LinkError::Tampered)?;
        let mut parts = payload.splitn(3, '.');
        let (Some(quote_id), Some(expires), Some(nonce)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Tampered);
        };
        let expires_ms: i64 = expires.parse().map_err(|_| LinkError::Tampered)?;
        if now_ms >= expires_ms {
            return Err(LinkError::Expired {
                quote_id: quote_id.to_owned(),
            });
        }
        Ok(Claims {
            quote_id: quote_id.to_owned(),
            expires_ms,
            nonce: nonce.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::new(&[7u8; 32]).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            quote_id: "qt_0123".into(),
            expires_ms: 1_000_000,
            nonce: "n1".into(),
        }
    }

    #[test]
    fn a_signed_link_opens_until_it_expires() {
        let token = key().sign(&claims());
        assert_eq!(key().verify(&token, 999_999), Ok(claims()));
        assert_eq!(
            key().verify(&token, 1_000_000),
            Err(LinkError::Expired {
                quote_id: "qt_0123".into()
            })
        );
    }

    #[test]
    fn any_changed_character_is_refused() {
        let token = key().sign(&claims());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != token {
                assert_eq!(
                    key().verify(&changed, 0),
                    Err(LinkError::Tampered),
                    "position {i}"
                );
            }
        }
        assert_eq!(key().verify("", 0), Err(LinkError::Tampered));
        assert_eq!(key().verify("garbage", 0), Err(LinkError::Tampered));
    }

    #[test]
    fn a_longer_expiry_cannot_be_forged_and_other_keys_do_not_verify() {
        let mut later = claims();
        later.expires_ms = i64::MAX;
        let forged_payload = key().sign(&later);
        let genuine = key().sign(&claims());
        let forged = format!(
            "{}.{}",
            forged_payload.split('.').next().unwrap(),
            genuine.split('.').nth(1).unwrap()
        );
        assert_eq!(key().verify(&forged, 0), Err(LinkError::Tampered));
        let other = LinkKey::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&genuine, 0), Err(LinkError::Tampered));
        assert!(LinkKey::new(b"short").unwrap_err().contains("at least 32"));
    }
}
