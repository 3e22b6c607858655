//! Telephone numbers in E.164, the one form slotgate compares and stores.
//!
//! Numbers arrive in every shape (a CRM's national format, a SIP URI's
//! user part, a CSV cell); two spellings of one line must meet as one key,
//! or a do-not-call entry or a consent would silently miss. Parsing goes
//! through the `phonenumber` crate (libphonenumber's metadata), with the
//! enterprise's default region for numbers written without a country code.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;
use phonenumber::metadata::DATABASE;
use phonenumber::Mode;

/// Why a number or a region was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The region is not a two-letter ISO 3166 code known to the metadata.
    #[error("unknown region {0:?}: use an ISO 3166 alpha-2 code such as FR or US")]
    UnknownRegion(String),
    /// The text could not be read as a telephone number at all (or has no
    /// country code and no default region was given).
    #[error("{input:?} is not a telephone number: {reason}")]
    Unparsable { input: String, reason: String },
    /// It parses, but no such number can exist in its country's plan.
    #[error("{0:?} is not a valid telephone number")]
    Invalid(String),
}

/// A region (ISO 3166 alpha-2, e.g. `FR`) used to read national numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl FromStr for Region {
    type Err = NumberError;

    fn from_str(s: &str) -> Result<Region, NumberError> {
        let code = s.trim().to_ascii_uppercase();
        if code.len() != 2 {
            return Err(NumberError::UnknownRegion(s.to_string()));
        }
        country::Id::from_str(&code)
            .map(Region)
            .map_err(|_| NumberError::UnknownRegion(s.to_string()))
    }
}

impl Region {
    /// The ISO 3166 alpha-2 code, upper case.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// A valid number in E.164 form (`+` and up to 15 digits): the only form in
/// which numbers are stored, compared and looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

impl E164 {
    /// Reads `input` in any common notation. A number without a country
    /// code is read as a national number of `region`; without a region such
    /// a number is refused rather than guessed.
    pub fn parse(input: &str, region: Option<Region>) -> Result<E164, NumberError> {
        let trimmed = input.trim();
        // Numbers copied from CRMs and links often carry a `tel:` prefix,
        // which the parser does not expect.
        let text = trimmed.strip_prefix("tel:").unwrap_or(trimmed);
        if region.is_none() && !text.starts_with('+') {
            // The parser would say "invalid country code", which misleads
            // when the real problem is a national number with no region.
            return Err(NumberError::Unparsable {
                input: input.to_string(),
                reason: "no country code (write it as +CC…) and no default region".into(),
            });
        }
        let parsed =
            phonenumber::parse(region.map(|r| r.0), text).map_err(|e| NumberError::Unparsable {
                input: input.to_string(),
                reason: e.to_string(),
            })?;
        if !parsed.is_valid() {
            return Err(NumberError::Invalid(input.to_string()));
        }
        Ok(E164(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Accepts text that is already E.164 (a stored value); anything else,
    /// even a valid national number, is refused.
    pub fn from_e164(text: &str) -> Result<E164, NumberError> {
        if !text.starts_with('+') {
            return Err(NumberError::Unparsable {
                input: text.to_string(),
                reason: "E.164 numbers start with +".into(),
            });
        }
        let number = E164::parse(text, None)?;
        if number.0 != text {
            return Err(NumberError::Unparsable {
                input: text.to_string(),
                reason: format!("not in E.164 form (expected {})", number.0),
            });
        }
        Ok(number)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's place in the numbering plan: its country calling code,
    /// the region the metadata assigns it to, and the national significant
    /// number (the digits after the country code).
    ///
    /// `None` only if the stored text no longer parses, which cannot happen
    /// for a value built by [`E164::parse`]; callers treat it as "nothing
    /// known about the number".
    pub fn parts(&self) -> Option<NumberParts<'_>> {
        let parsed = phonenumber::parse(None, &self.0).ok()?;
        let country_code = parsed.code().value();
        // E.164 text is `+`, the country code, then the national number, so
        // the national digits are what follows the code's own digits.
        let skip = 1 + country_code.to_string().len();
        let national = self.0.get(skip..)?;
        // The metadata finds the region from the national number read as an
        // integer, which drops a leading zero (every Italian landline), so
        // fall back to the country code's main region.
        let region = parsed.country().id().or_else(|| {
            DATABASE
                .region(&country_code)?
                .first()
                .and_then(|id| country::Id::from_str(id).ok())
        });
        Some(NumberParts {
            country_code,
            region: region.map(Region),
            national,
        })
    }

    /// The region (ISO 3166 alpha-2) the number belongs to, when the
    /// numbering plan names one: `US` or `CA` for `+1` numbers by area code,
    /// `RE` or `YT` for `+262`; `None` for international non-geographic
    /// services such as `+800`.
    pub fn region(&self) -> Option<Region> {
        self.parts().and_then(|parts| parts.region)
    }
}

/// Where an [`E164`] number sits in the numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberParts<'a> {
    /// The country calling code, e.g. 1, 33, 262.
    pub country_code: u16,
    /// The region the metadata assigns the number to, if any.
    pub region: Option<Region>,
    /// The national significant number: digits only, no trunk prefix.
    pub national: &'a str,
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr() -> Option<Region> {
        Some("fr".parse().unwrap())
    }

    #[test]
    fn national_and_international_forms_meet() {
        let national = E164::parse("06 12 34 56 78", fr()).unwrap();
        let international = E164::parse("+33 6 12 34 56 78", None).unwrap();
        let dialled = E164::parse("0033612345678", fr()).unwrap();
        assert_eq!(national.as_str(), "+33612345678");
        assert_eq!(national, international);
        assert_eq!(national, dialled);
        assert_eq!(
            E164::parse("tel:+1-202-555-0143", None).unwrap().as_str(),
            "+12025550143"
        );
    }

    #[test]
    fn other_countries_and_regions() {
        let us = E164::parse("(202) 555-0143", Some("US".parse().unwrap())).unwrap();
        assert_eq!(us.as_str(), "+12025550143");
        let uk = E164::parse("020 7946 0018", Some("GB".parse().unwrap())).unwrap();
        assert_eq!(uk.as_str(), "+442079460018");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        assert!(matches!(
            E164::parse("hello", fr()),
            Err(NumberError::Unparsable { .. })
        ));
        assert!(matches!(
            E164::parse("06 12 34 56 78", None),
            Err(NumberError::Unparsable { .. })
        ));
        assert!(E164::parse("+33 1", None).is_err());
        // Well formed, but no North American area code starts with 1.
        assert!(matches!(
            E164::parse("+1 123 456 7890", None),
            Err(NumberError::Invalid(_))
        ));
    }

    #[test]
    fn parts_name_country_code_region_and_national_digits() {
        let us = E164::parse("+1 212 736 5000", None).unwrap();
        let parts = us.parts().unwrap();
        assert_eq!(parts.country_code, 1);
        assert_eq!(parts.region.map(|r| r.to_string()).as_deref(), Some("US"));
        assert_eq!(parts.national, "2127365000");
        // Italian landlines keep their leading zero, which the metadata's
        // own region lookup loses.
        let rome = E164::parse("+39 06 1234 5678", None).unwrap();
        let parts = rome.parts().unwrap();
        assert_eq!(parts.national, "0612345678");
        assert_eq!(rome.region().map(|r| r.to_string()).as_deref(), Some("IT"));
        let reunion = E164::parse("+262 262 12 34 56", None).unwrap();
        assert_eq!(reunion.region().unwrap().as_str(), "RE");
        // International freephone belongs to no region.
        let freephone = E164::parse("+800 1234 5678", None).unwrap();
        assert_eq!(freephone.parts().unwrap().country_code, 800);
        assert_eq!(freephone.region(), None);
    }

    #[test]
    fn regions() {
        assert_eq!("fr".parse::<Region>().unwrap().to_string(), "FR");
        assert!(matches!(
            "France".parse::<Region>(),
            Err(NumberError::UnknownRegion(_))
        ));
        assert!(matches!(
            "QQ".parse::<Region>(),
            Err(NumberError::UnknownRegion(_))
        ));
    }

    #[test]
    fn stored_values_must_already_be_e164() {
        assert!(E164::from_e164("+33612345678").is_ok());
        assert!(E164::from_e164("0612345678").is_err());
        assert!(E164::from_e164("+33 6 12 34 56 78").is_err());
    }
}
