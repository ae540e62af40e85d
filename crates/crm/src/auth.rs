//! Who may do what: bearer tokens, roles and the actions each role may take.
//!
//! A token is `tt_` followed by 43 characters of base64url (256 random bits). Only its
//! SHA-256 is stored: a stolen database does not give working tokens, and because a token is
//! random rather than a password, one fast hash is enough. Each token belongs to one tenant and
//! has one role; every call checks the role against the action it takes, and the tenant scopes
//! every row it can see.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const PREFIX: &str = "tt_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A service advisor: works leads and quotes, keeps customers and vehicles.
    Advisor,
    /// A shop or group manager: everything an advisor does, and shops, advisors, the catalog.
    Manager,
    /// A machine (the ingest, a shop's management system): raises leads, reads them, keeps
    /// customers and vehicles in step.
    Integration,
}

/// What a call does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateLead,
    ReadLeads,
    /// Assign, move along, add notes.
    WorkLeads,
    ReadQuotes,
    /// Revise, send, record an answer, book.
    WorkQuotes,
    ReadCatalog,
    /// Customers and vehicles.
    WriteCustomers,
    /// Shops, advisors, parts and labor.
    ManageShop,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Advisor => "advisor",
            Role::Manager => "manager",
            Role::Integration => "integration",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        [Role::Advisor, Role::Manager, Role::Integration]
            .into_iter()
            .find(|r| r.name() == name)
    }

    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Manager => true,
            Role::Advisor => !matches!(action, ManageShop),
            Role::Integration => {
                matches!(
                    action,
                    CreateLead | ReadLeads | ReadQuotes | ReadCatalog | WriteCustomers
                )
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The caller behind a checked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
    /// The advisor's id, or the service account's name.
    pub subject: String,
    pub token_id: String,
    /// When the token stops working (ms since 1970), if ever.
    pub expires_ms: Option<i64>,
}

impl Principal {
    /// How the audit trail names this caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.subject)
    }
}

/// Callers recently authenticated, by token hash, so that a busy client's every call does not
/// look its token up again (one query of the two a `GetQuote` made). An entry is used for at
/// most `ttl` after its lookup and never past the token's expiry; a token revoked through
/// [`crate::app::Crm::revoke_token`] leaves at once, and one revoked in the database behind this
/// instance's back (by another instance, by hand) stops working within `ttl`. Unknown tokens
/// are never kept. Bounded: when full, it starts over.
#[derive(Debug)]
pub struct PrincipalCache {
    ttl_ms: i64,
    max: usize,
    /// Token hash → the principal and until when it may be used.
    entries: Mutex<HashMap<String, (Principal, i64)>>,
}

impl PrincipalCache {
    /// A `ttl` of zero keeps nothing: every call looks its token up.
    pub fn new(ttl: Duration, max: usize) -> PrincipalCache {
        PrincipalCache {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, hash: &str, now_ms: i64) -> Option<Principal> {
        let entries = self.lock();
        match entries.get(hash) {
            Some((who, until)) if now_ms < *until => Some(who.clone()),
            _ => None,
        }
    }

    /// Keeps `who`, looked up at `now_ms`.
    pub fn put(&self, hash: &str, who: &Principal, now_ms: i64) {
        if self.ttl_ms <= 0 || self.max == 0 {
            return;
        }
        let until = now_ms
            .saturating_add(self.ttl_ms)
            .min(who.expires_ms.unwrap_or(i64::MAX));
        let mut entries = self.lock();
        if entries.len() >= self.max && !entries.contains_key(hash) {
            entries.clear();
        }
        entries.insert(hash.to_owned(), (who.clone(), until));
    }

    /// Forgets every entry of token `token_id` (it was revoked).
    pub fn forget(&self, token_id: &str) {
        self.lock().retain(|_, (who, _)| who.token_id != token_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Principal, i64)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new token: the secret to hand over once, and what is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub secret: String,
    pub hash: String,
}

/// Makes a token from 32 random bytes.
pub fn new_token() -> Result<NewToken, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = token_hash(&secret);
    Ok(NewToken { secret, hash })
}

/// What is stored for a token, and what a presented token is looked up by.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The token from an `authorization` header value, or why it is unusable.
pub fn bearer(header: Option<&str>) -> Result<&str, &'static str> {
    let value = header.ok_or("no authorization header: send `authorization: Bearer <token>`")?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or("the authorization header is not `Bearer <token>`")?
        .trim();
    if !token.starts_with(PREFIX) || token.len() != PREFIX.len() + 43 {
        return Err("the bearer token is not a Telltale CRM token");
    }
    Ok(token)
}

/// Random id with a prefix naming what it is (`ld_`, `qt_`, ...): 96 bits, lower-case hex.
pub fn new_id(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(token_id: &str, expires_ms: Option<i64>) -> Principal {
        Principal {
            tenant: "north".into(),
            role: Role::Advisor,
            subject: "ann".into(),
            token_id: token_id.into(),
            expires_ms,
        }
    }

    #[test]
    fn the_token_cache_trusts_an_entry_for_its_time_and_never_past_the_tokens_expiry() {
        let cache = PrincipalCache::new(Duration::from_secs(5), 10);
        cache.put("h1", &principal("tk_1", None), 1_000);
        assert_eq!(cache.get("h1", 5_999), Some(principal("tk_1", None)));
        assert_eq!(cache.get("h1", 6_000), None, "5 s after the lookup");
        cache.put("h2", &principal("tk_2", Some(3_000)), 1_000);
        assert!(cache.get("h2", 2_999).is_some());
        assert_eq!(cache.get("h2", 3_000), None, "the token expired");
        assert_eq!(cache.get("unknown", 1_000), None);
    }

    #[test]
    fn a_revoked_token_leaves_the_cache_and_a_zero_time_keeps_nothing() {
        let cache = PrincipalCache::new(Duration::from_secs(5), 10);
        cache.put("h1", &principal("tk_1", None), 0);
        cache.put("h2", &principal("tk_2", None), 0);
        cache.forget("tk_1");
        assert_eq!(cache.get("h1", 1), None);
        assert!(cache.get("h2", 1).is_some());
        let off = PrincipalCache::new(Duration::ZERO, 10);
        off.put("h1", &principal("tk_1", None), 0);
        assert_eq!(off.get("h1", 0), None);
    }

    #[test]
    fn a_full_token_cache_starts_over() {
        let cache = PrincipalCache::new(Duration::from_secs(5), 2);
        cache.put("h1", &principal("tk_1", None), 0);
        cache.put("h2", &principal("tk_2", None), 0);
        cache.put("h2", &principal("tk_2", None), 1);
        assert!(
            cache.get("h1", 1).is_some(),
            "refreshing a kept one does not clear"
        );
        cache.put("h3", &principal("tk_3", None), 1);
        assert_eq!(cache.get("h1", 1), None);
        assert!(cache.get("h3", 1).is_some());
    }

    #[test]
    fn roles_are_scoped() {
        assert!(Role::Integration.may(Action::CreateLead));
        assert!(!Role::Integration.may(Action::WorkLeads));
        assert!(!Role::Integration.may(Action::WorkQuotes));
        assert!(!Role::Integration.may(Action::ManageShop));
        assert!(Role::Advisor.may(Action::WorkQuotes));
        assert!(!Role::Advisor.may(Action::ManageShop));
        assert!(Role::Manager.may(Action::ManageShop));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, token_hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[3..]));
        let header = format!("Bearer {}", a.secret);
        assert_eq!(bearer(Some(&header)), Ok(a.secret.as_str()));
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert!(
            bearer(None)
                .unwrap_err()
                .contains("no authorization header")
        );
        assert!(
            bearer(Some("Basic abc"))
                .unwrap_err()
                .contains("not `Bearer <token>`")
        );
        assert!(
            bearer(Some("Bearer tt_short"))
                .unwrap_err()
                .contains("not a Telltale CRM token")
        );
    }

    #[test]
    fn ids_carry_their_kind() {
        let id = new_id("ld_").unwrap();
        assert!(id.starts_with("ld_") && id.len() == 27, "{id}");
    }
}
