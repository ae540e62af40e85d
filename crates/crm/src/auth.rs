//! Who may do what: bearer tokens, roles and the actions each role may take.
//!
//! A token is `tt_` followed by 43 characters of base64url (256 random bits). Only its
//! SHA-256 is stored: a stolen database does not give working tokens, and because a token is
//! random rather than a password, one fast hash is enough. Each token belongs to one tenant and
//! has one role; every call checks the role against the action it takes, and the tenant scopes
//! every row it can see.

use std::fmt;

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
}

impl Principal {
    /// How the audit trail names this caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.subject)
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
