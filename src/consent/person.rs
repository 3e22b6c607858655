//! People and the identifiers by which enterprises know them.
//!
//! One person may have several numbers (any country) and other handles: a
//! CRM id, a profile URL, an e-mail address. Each identifier belongs to at
//! most one person, so a lookup by any of them finds the same profile and
//! a consent or a do-not-call entry cannot be dodged by a second spelling.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{NumberError, Region, UnknownValue, E164};

/// A person's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub identifiers: Vec<Identifier>,
    pub created_at: DateTime<Utc>,
}

impl Person {
    /// The person's telephone numbers, in the order they were added.
    pub fn numbers(&self) -> impl Iterator<Item = &E164> {
        self.identifiers.iter().filter_map(|i| match i {
            Identifier::Phone(n) => Some(n),
            _ => None,
        })
    }
}

/// One way of naming a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Phone(E164),
    /// A CRM's record id; CRM ids are only unique within one enterprise's
    /// CRM, so the enterprise is part of the identifier.
    CrmId {
        enterprise_id: String,
        id: String,
    },
    Url(String),
    /// Stored lower-cased: mail systems treat addresses case-insensitively
    /// in practice, and a lookup must not miss on case.
    Email(String),
}

/// The kinds of [`Identifier`], as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    Phone,
    CrmId,
    Url,
    Email,
}

impl IdentifierKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            IdentifierKind::Phone => "phone",
            IdentifierKind::CrmId => "crm",
            IdentifierKind::Url => "url",
            IdentifierKind::Email => "email",
        }
    }
}

impl FromStr for IdentifierKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "phone" => Ok(IdentifierKind::Phone),
            "crm" => Ok(IdentifierKind::CrmId),
            "url" => Ok(IdentifierKind::Url),
            "email" => Ok(IdentifierKind::Email),
            _ => Err(UnknownValue::new("identifier kind", s)),
        }
    }
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error(transparent)]
    Number(#[from] NumberError),
    #[error("{0:?} is not an e-mail address")]
    Email(String),
    #[error("{0:?} is not an http(s) URL")]
    Url(String),
    #[error("a {0} identifier must not be empty")]
    Empty(&'static str),
}

impl Identifier {
    /// A telephone number in any notation, national ones read in `region`.
    pub fn phone(input: &str, region: Option<Region>) -> Result<Identifier, IdentifierError> {
        Ok(Identifier::Phone(E164::parse(input, region)?))
    }

    pub fn crm_id(enterprise_id: &str, id: &str) -> Result<Identifier, IdentifierError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(IdentifierError::Empty("CRM id"));
        }
        Ok(Identifier::CrmId {
            enterprise_id: enterprise_id.to_string(),
            id: id.to_string(),
        })
    }

    pub fn email(input: &str) -> Result<Identifier, IdentifierError> {
        let text = input.trim().to_lowercase();
        let plausible = text
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !text.contains(char::is_whitespace);
        if !plausible {
            return Err(IdentifierError::Email(input.to_string()));
        }
        Ok(Identifier::Email(text))
    }

    pub fn url(input: &str) -> Result<Identifier, IdentifierError> {
        let text = input.trim();
        let lower = text.to_ascii_lowercase();
        let has_host = ["https://", "http://"]
            .iter()
            .any(|p| lower.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if !has_host || text.contains(char::is_whitespace) {
            return Err(IdentifierError::Url(input.to_string()));
        }
        Ok(Identifier::Url(text.to_string()))
    }

    pub fn kind(&self) -> IdentifierKind {
        match self {
            Identifier::Phone(_) => IdentifierKind::Phone,
            Identifier::CrmId { .. } => IdentifierKind::CrmId,
            Identifier::Url(_) => IdentifierKind::Url,
            Identifier::Email(_) => IdentifierKind::Email,
        }
    }

    /// The stored value: unique per kind across all people.
    pub fn value(&self) -> String {
        match self {
            Identifier::Phone(n) => n.as_str().to_string(),
            // The enterprise id is hex and never contains '/', so the split
            // on the first '/' when reading back is unambiguous.
            Identifier::CrmId { enterprise_id, id } => format!("{enterprise_id}/{id}"),
            Identifier::Url(u) | Identifier::Email(u) => u.clone(),
        }
    }

    /// Rebuilds an identifier from its stored kind and value.
    pub fn from_stored(kind: &str, value: &str) -> Result<Identifier, UnknownValue> {
        let bad = || UnknownValue::new("identifier", value);
        match kind.parse::<IdentifierKind>()? {
            IdentifierKind::Phone => E164::from_e164(value)
                .map(Identifier::Phone)
                .map_err(|_| bad()),
            IdentifierKind::CrmId => value
                .split_once('/')
                .map(|(e, id)| Identifier::CrmId {
                    enterprise_id: e.to_string(),
                    id: id.to_string(),
                })
                .ok_or_else(bad),
            IdentifierKind::Url => Ok(Identifier::Url(value.to_string())),
            IdentifierKind::Email => Ok(Identifier::Email(value.to_string())),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind().as_str(), self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_normalise_and_round_trip() {
        let email = Identifier::email("  Ann.Lee@Example.COM ").unwrap();
        assert_eq!(email, Identifier::Email("ann.lee@example.com".into()));
        assert!(Identifier::email("ann").is_err());
        assert!(Identifier::url("ftp://x").is_err());
        assert!(Identifier::crm_id("e1", " ").is_err());
        for ident in [
            email,
            Identifier::url("https://crm.example/p/1").unwrap(),
            Identifier::crm_id("ab12", "C-9/x").unwrap(),
            Identifier::phone("+33612345678", None).unwrap(),
        ] {
            let back = Identifier::from_stored(ident.kind().as_str(), &ident.value()).unwrap();
            assert_eq!(back, ident);
        }
    }
}
