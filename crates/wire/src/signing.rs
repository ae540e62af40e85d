//! Signed downlink commands: how the cloud signs a [`v1::Command`] and how a vehicle decides
//! whether to obey one.
//!
//! The signature covers the encoded `Command` bytes exactly as they travel inside
//! [`v1::SignedCommand`], so the agent checks what it received and never re-encodes anything
//! (protobuf encoding is not canonical; re-encoding could change the bytes that were signed).
//!
//! Every command must be signed, reads included: a read still loads the vehicle's bus, and one
//! rule is simpler to audit than a list of exceptions. The checks run in a fixed order
//! (decode, signature, device, validity window, action) and the first failure decides the
//! [`v1::CommandError`] code of the [`Rejection`]. Replay protection needs state (the ids seen)
//! and lives in the agent; this module is pure: no I/O and no clock reads, the caller passes
//! `now`.
//!
//! Keys travel as text: the base64 (standard alphabet, padded) of the raw 32 bytes, the public
//! key in the agent's configuration and the secret seed in the operator's key file.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use prost::Message as _;

use crate::v1;

/// Longest command id accepted; a UUID is 36 characters, 16 random bytes in hex are 32.
pub const MAX_COMMAND_ID_LEN: usize = 64;

/// A public key the agent trusts, under the id a [`v1::SignedCommand`] names it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub id: String,
    pub key: VerifyingKey,
}

impl TrustedKey {
    /// A key from configuration: its id and the base64 of its raw 32 bytes.
    pub fn parse(id: &str, public_key_base64: &str) -> Result<TrustedKey, KeyError> {
        Ok(TrustedKey {
            id: id.to_owned(),
            key: parse_verifying_key(public_key_base64)?,
        })
    }
}

/// What a vehicle accepts: whose signatures, addressed to whom, and how far its clock and the
/// cloud's may disagree.
#[derive(Debug, Clone)]
pub struct Policy {
    /// This vehicle's device id; a command for another device is refused so that a signed
    /// command cannot be moved to another car.
    pub device_id: String,
    pub trusted_keys: Vec<TrustedKey>,
    /// Longest a command may still be valid for when it arrives. Bounds how long the agent's
    /// replay guard must remember an id, and how long a captured command stays useful.
    pub max_ttl: Duration,
    /// How far in the future `issued_unix_ms` may be (the cloud's clock ahead of the car's);
    /// also added to `max_ttl` for the same reason.
    pub max_clock_skew: Duration,
}

/// Why a command was refused, with what the command result needs to say so.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub code: v1::CommandError,
    /// The command's id when its bytes could be decoded (even if the signature was bad, so the
    /// sender can match the refusal to its request); empty otherwise.
    pub command_id: String,
    /// Words for a person.
    pub reason: String,
}

impl Rejection {
    fn new(code: v1::CommandError, command_id: &str, reason: impl Into<String>) -> Rejection {
        Rejection {
            code,
            command_id: command_id.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Why key text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not base64 (standard alphabet): {0}")]
    NotBase64(String),
    #[error("key is {0} bytes, an Ed25519 key is 32 bytes (base64 of the raw key)")]
    WrongLength(usize),
    #[error("the 32 bytes are not a valid Ed25519 public key")]
    NotAPublicKey,
}

/// Signs `command` with `key`, to be verified by agents that trust `key` under `key_id`.
pub fn sign(command: &v1::Command, key_id: &str, key: &SigningKey) -> v1::SignedCommand {
    let bytes = command.encode_to_vec();
    let signature = key.sign(&bytes);
    v1::SignedCommand {
        command: bytes,
        signature: signature.to_bytes().to_vec(),
        key_id: key_id.to_owned(),
    }
}

/// Decodes and checks a [`v1::SignedCommand`] as received on the `cmd` topic, returning the
/// command to execute. `now_unix_ms` is the device clock. Replays are not checked here.
pub fn verify(
    signed_bytes: &[u8],
    now_unix_ms: i64,
    policy: &Policy,
) -> Result<v1::Command, Rejection> {
    use v1::CommandError as E;

    let signed = v1::SignedCommand::decode(signed_bytes)
        .map_err(|err| Rejection::new(E::Malformed, "", format!("not a SignedCommand: {err}")))?;
    // Decoded before the signature check only to name the command in a refusal; nothing in it
    // is trusted until the signature has been checked.
    let decoded = v1::Command::decode(signed.command.as_slice());
    let id = decoded
        .as_ref()
        .map(|c| c.command_id.as_str())
        .unwrap_or("");

    check_signature(&signed, policy)
        .map_err(|reason| Rejection::new(E::BadSignature, id, reason))?;

    let command = decoded.map_err(|err| {
        Rejection::new(
            E::Malformed,
            "",
            format!("signed bytes are not a Command: {err}"),
        )
    })?;
    let id = command.command_id.as_str();
    if !valid_command_id(id) {
        return Err(Rejection::new(
            E::Malformed,
            "",
            format!("command id must be 1-{MAX_COMMAND_ID_LEN} characters of A-Z a-z 0-9 - _ . :"),
        ));
    }
    if command.device_id != policy.device_id {
        return Err(Rejection::new(
            E::WrongDevice,
            id,
            format!(
                "command is for device {:?}, this is {:?}",
                command.device_id, policy.device_id
            ),
        ));
    }
    check_window(&command, now_unix_ms, policy)
        .map_err(|reason| Rejection::new(E::Expired, id, reason))?;
    if command.action.is_none() {
        return Err(Rejection::new(E::Malformed, id, "command has no action"));
    }
    Ok(command)
}

fn check_signature(signed: &v1::SignedCommand, policy: &Policy) -> Result<(), String> {
    if signed.signature.is_empty() {
        return Err("command is not signed; every command must be".into());
    }
    let Some(trusted) = policy.trusted_keys.iter().find(|k| k.id == signed.key_id) else {
        return Err(format!(
            "key id {:?} is not among the trusted keys",
            signed.key_id
        ));
    };
    let signature = Signature::from_slice(&signed.signature).map_err(|_| {
        format!(
            "signature is {} bytes, Ed25519 needs 64",
            signed.signature.len()
        )
    })?;
    trusted
        .key
        .verify(&signed.command, &signature)
        .map_err(|_| format!("signature does not verify with key {:?}", trusted.id))
}

/// The validity window: not expired, not valid for longer than the policy allows, not issued
/// in the future beyond the clock-skew allowance. Skew is not granted on the expiry side: an
/// expired command stays expired, so the replay guard can forget an id once it has expired.
fn check_window(command: &v1::Command, now: i64, policy: &Policy) -> Result<(), String> {
    let skew = millis(policy.max_clock_skew);
    let ttl = millis(policy.max_ttl);
    if command.expires_unix_ms <= now {
        return Err(format!(
            "command expired {} ms ago (device clock {now})",
            now.saturating_sub(command.expires_unix_ms)
        ));
    }
    let remaining = command.expires_unix_ms.saturating_sub(now);
    if remaining > ttl.saturating_add(skew) {
        return Err(format!(
            "command expires {remaining} ms from now, more than the {ttl} ms (+{skew} ms skew) this device allows"
        ));
    }
    if command.issued_unix_ms > now.saturating_add(skew) {
        return Err(format!(
            "command issued {} ms in the future by this device's clock, more than the {skew} ms skew allowed",
            command.issued_unix_ms.saturating_sub(now)
        ));
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Command ids are written to the agent's replay file and logs, so they are kept short and
/// plain.
pub fn valid_command_id(id: &str) -> bool {
    (1..=MAX_COMMAND_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn decode_32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|err| KeyError::NotBase64(err.to_string()))?;
    let len = bytes.len();
    <[u8; 32]>::try_from(bytes).map_err(|_| KeyError::WrongLength(len))
}

/// Parses a public key (base64 of the raw 32 bytes; surrounding whitespace ignored).
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&decode_32(text)?).map_err(|_| KeyError::NotAPublicKey)
}

/// Parses a secret key file's content (base64 of the 32-byte seed; whitespace ignored).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&decode_32(text)?))
}

/// The text form of a public key, as [`parse_verifying_key`] reads it.
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// The text form of a secret key (its seed), as [`parse_signing_key`] reads it.
pub fn encode_signing_key(key: &SigningKey) -> String {
    STANDARD.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::CommandError as E;

    const NOW: i64 = 1_700_000_000_000;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn policy() -> Policy {
        Policy {
            device_id: "car-1".into(),
            trusted_keys: vec![TrustedKey {
                id: "ops".into(),
                key: key(1).verifying_key(),
            }],
            max_ttl: Duration::from_secs(300),
            max_clock_skew: Duration::from_secs(30),
        }
    }

    fn command() -> v1::Command {
        v1::Command {
            command_id: "c0ffee".into(),
            device_id: "car-1".into(),
            issued_unix_ms: NOW,
            expires_unix_ms: NOW + 60_000,
            action: Some(v1::command::Action::ReadDtcs(v1::ReadDtcs {})),
        }
    }

    fn check(signed: &v1::SignedCommand) -> Result<v1::Command, Rejection> {
        verify(&signed.encode_to_vec(), NOW, &policy())
    }

    fn refused(signed: &v1::SignedCommand) -> Rejection {
        match check(signed) {
            Ok(c) => panic!("accepted {c:?}"),
            Err(r) => r,
        }
    }

    #[test]
    fn a_signed_command_verifies_and_comes_back_unchanged() {
        let signed = sign(&command(), "ops", &key(1));
        assert_eq!(check(&signed), Ok(command()));
    }

    #[test]
    fn signature_failures_are_bad_signature_and_name_the_command() {
        let mut unsigned = sign(&command(), "ops", &key(1));
        unsigned.signature.clear();
        let wrong_key = sign(&command(), "ops", &key(2));
        let unknown_id = sign(&command(), "someone", &key(1));
        let mut tampered = sign(&command(), "ops", &key(1));
        let last = tampered.command.len() - 1;
        tampered.command[last] ^= 1;
        let mut short = sign(&command(), "ops", &key(1));
        short.signature.truncate(10);
        for (what, signed) in [
            ("unsigned", unsigned),
            ("wrong key", wrong_key),
            ("unknown key id", unknown_id),
            ("short", short),
        ] {
            let r = refused(&signed);
            assert_eq!(r.code, E::BadSignature, "{what}: {r}");
            assert_eq!(r.command_id, "c0ffee", "{what}");
        }
        assert_eq!(refused(&tampered).code, E::BadSignature);
    }

    #[test]
    fn device_window_and_action_are_checked_after_the_signature() {
        let mut other = command();
        other.device_id = "car-2".into();
        let r = refused(&sign(&other, "ops", &key(1)));
        assert_eq!((r.code, r.command_id.as_str()), (E::WrongDevice, "c0ffee"));

        let mut expired = command();
        expired.expires_unix_ms = NOW;
        assert_eq!(refused(&sign(&expired, "ops", &key(1))).code, E::Expired);

        // 300 s ttl + 30 s skew is the most a command may have left.
        let mut long = command();
        long.expires_unix_ms = NOW + 330_000;
        assert!(check(&sign(&long, "ops", &key(1))).is_ok());
        long.expires_unix_ms += 1;
        assert_eq!(refused(&sign(&long, "ops", &key(1))).code, E::Expired);

        let mut future = command();
        future.issued_unix_ms = NOW + 30_000;
        assert!(check(&sign(&future, "ops", &key(1))).is_ok());
        future.issued_unix_ms += 1;
        assert_eq!(refused(&sign(&future, "ops", &key(1))).code, E::Expired);

        let mut empty = command();
        empty.action = None;
        let r = refused(&sign(&empty, "ops", &key(1)));
        assert_eq!((r.code, r.command_id.as_str()), (E::Malformed, "c0ffee"));
    }

    #[test]
    fn garbage_and_bad_ids_are_malformed() {
        let r = match verify(&[0xFF, 0x01, 0x02], NOW, &policy()) {
            Ok(c) => panic!("accepted {c:?}"),
            Err(r) => r,
        };
        assert_eq!((r.code, r.command_id.as_str()), (E::Malformed, ""));

        // Validly signed bytes that are not a Command.
        let key1 = key(1);
        let bytes = vec![0x0A, 0x05, 0x01];
        let signed = v1::SignedCommand {
            signature: key1.sign(&bytes).to_bytes().to_vec(),
            command: bytes,
            key_id: "ops".into(),
        };
        assert_eq!(refused(&signed).code, E::Malformed);

        for bad in ["", "a b", "line\nbreak", &"x".repeat(65)] {
            let mut c = command();
            c.command_id = bad.into();
            let r = refused(&sign(&c, "ops", &key(1)));
            assert_eq!(
                (r.code, r.command_id.as_str()),
                (E::Malformed, ""),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_text_round_trips_and_bad_text_is_named() {
        let k = key(7);
        let secret = encode_signing_key(&k);
        let public = encode_verifying_key(&k.verifying_key());
        assert_eq!(
            parse_signing_key(&format!("{secret}\n")).map(|s| s.to_bytes()),
            Ok(k.to_bytes())
        );
        assert_eq!(parse_verifying_key(&public), Ok(k.verifying_key()));
        assert_eq!(
            TrustedKey::parse("ops", &public),
            Ok(TrustedKey {
                id: "ops".into(),
                key: k.verifying_key()
            })
        );
        assert!(TrustedKey::parse("ops", "").is_err());
        assert!(matches!(
            parse_verifying_key("not base64!"),
            Err(KeyError::NotBase64(_))
        ));
        assert_eq!(parse_signing_key("AAAA"), Err(KeyError::WrongLength(3)));
    }
}
