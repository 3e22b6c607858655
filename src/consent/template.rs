//! The text of a consent prompt: per-enterprise templates, per locale.
//!
//! An enterprise words its own prompt ("Bonjour {name}, …") in each locale
//! it serves; slotgate fills in the person's name, the purpose of the call
//! and the enterprise's display name. Templates are checked when they are
//! stored, not when a prompt is sent: a typo such as `{nmae}` must be
//! refused to the enterprise that wrote it, not discovered by a customer.
//!
//! Values are inserted verbatim and never read again as template text, so
//! a name like `{purpose}` stays exactly that. Literal braces are written
//! doubled (`{{`, `}}`).
//!
//! Locale lookup falls back from the most specific tag to the least:
//! `fr-CA` → `fr` → `en`, and finally to the built-in English
//! [`DEFAULT_TEMPLATE`], so every prompt has a text.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::OfferedChoice;

/// Used when the enterprise has no template for the person's locale, nor
/// for English.
pub const DEFAULT_TEMPLATE: &str =
    "Hi {name}, {enterprise} would like to call you about {purpose}. When suits you?";

/// The locale every lookup falls back to last.
pub const FALLBACK_LOCALE: &str = "en";

/// Why a template or a locale was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{placeholder}}}: use {{name}}, {{purpose}} or {{enterprise}} (write {{{{ for a literal brace)")]
    UnknownPlaceholder { placeholder: String },
    #[error("'{{' at character {at} is never closed (write {{{{ for a literal brace)")]
    Unclosed { at: usize },
    #[error("'}}' at character {at} closes nothing (write }}}} for a literal brace)")]
    StrayClose { at: usize },
    #[error("the template is empty")]
    Empty,
    #[error("{0:?} is not a locale tag (e.g. en, fr-FR)")]
    BadLocale(String),
}

/// The values a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{name}`: the person's name as the enterprise knows it.
    Name,
    /// `{purpose}`: why the enterprise wants to call.
    Purpose,
    /// `{enterprise}`: the enterprise's display name.
    Enterprise,
}

impl Placeholder {
    fn from_key(key: &str) -> Option<Placeholder> {
        match key {
            "name" => Some(Placeholder::Name),
            "purpose" => Some(Placeholder::Purpose),
            "enterprise" => Some(Placeholder::Enterprise),
            _ => None,
        }
    }
}

/// What fills the placeholders of one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptValues<'a> {
    pub name: &'a str,
    pub purpose: &'a str,
    pub enterprise: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// A checked template: rendering it cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    source: String,
    parts: Vec<Part>,
}

impl PromptTemplate {
    /// Checks `text` and keeps it; every error names what to fix.
    pub fn parse(text: &str) -> Result<PromptTemplate, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().enumerate().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::StrayClose { at }),
                '{' => {
                    let mut key = String::new();
                    let mut closed = false;
                    for (_, k) in chars.by_ref() {
                        if k == '}' {
                            closed = true;
                            break;
                        }
                        key.push(k);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed { at });
                    }
                    let key = key.trim();
                    let placeholder = Placeholder::from_key(key).ok_or_else(|| {
                        TemplateError::UnknownPlaceholder {
                            placeholder: key.to_string(),
                        }
                    })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Value(placeholder));
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(PromptTemplate {
            source: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholders the template uses, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, values: &PromptValues<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            let value = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Value(Placeholder::Name) => values.name,
                Part::Value(Placeholder::Purpose) => values.purpose,
                Part::Value(Placeholder::Enterprise) => values.enterprise,
            };
            if value.is_empty() {
                // "Hi {name}, …" for a person without a name reads "Hi, …",
                // not "Hi , …".
                if out.ends_with(' ') {
                    out.pop();
                }
            } else {
                out.push_str(value);
            }
        }
        out
    }

    /// The built-in English prompt.
    pub fn builtin() -> PromptTemplate {
        use Placeholder as P;
        let text = |s: &str| Part::Text(s.to_string());
        // Spelled out rather than parsed so that no error path exists; a
        // test checks it equals `parse(DEFAULT_TEMPLATE)`.
        PromptTemplate {
            source: DEFAULT_TEMPLATE.to_string(),
            parts: vec![
                text("Hi "),
                Part::Value(P::Name),
                text(", "),
                Part::Value(P::Enterprise),
                text(" would like to call you about "),
                Part::Value(P::Purpose),
                text(". When suits you?"),
            ],
        }
    }
}

impl FromStr for PromptTemplate {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, TemplateError> {
        PromptTemplate::parse(s)
    }
}

impl fmt::Display for PromptTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// One enterprise's templates, by locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplates {
    by_locale: BTreeMap<String, PromptTemplate>,
    builtin: PromptTemplate,
}

impl Default for PromptTemplates {
    fn default() -> PromptTemplates {
        PromptTemplates {
            by_locale: BTreeMap::new(),
            builtin: PromptTemplate::builtin(),
        }
    }
}

impl PromptTemplates {
    /// No templates of the enterprise's own: every locale gets the built-in.
    pub fn new() -> PromptTemplates {
        PromptTemplates::default()
    }

    /// Checks and stores the template for `locale` (`fr`, `fr-FR`, `fr_fr`
    /// are read alike), replacing any previous one.
    pub fn insert(&mut self, locale: &str, text: &str) -> Result<(), TemplateError> {
        let locale = normalize_locale(locale)?;
        let template = PromptTemplate::parse(text)?;
        self.by_locale.insert(locale, template);
        Ok(())
    }

    /// The stored templates as (normalised locale, source text), in locale
    /// order: what the store writes.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_locale
            .iter()
            .map(|(locale, template)| (locale.as_str(), template.as_str()))
    }

    /// The template for `locale`: the most specific one stored, then
    /// English, then the built-in. An unreadable locale is treated as
    /// unknown rather than refused: the person still gets a prompt.
    pub fn for_locale(&self, locale: &str) -> &PromptTemplate {
        let mut tag = normalize_locale(locale).unwrap_or_default();
        while !tag.is_empty() {
            if let Some(found) = self.by_locale.get(&tag) {
                return found;
            }
            tag = match tag.rfind('-') {
                Some(cut) => tag[..cut].to_string(),
                None => String::new(),
            };
        }
        self.by_locale.get(FALLBACK_LOCALE).unwrap_or(&self.builtin)
    }

    /// The prompt text for an RCS message (the options go on chips).
    pub fn render(&self, locale: &str, values: &PromptValues<'_>) -> String {
        self.for_locale(locale).render(values)
    }

    /// The prompt text for an SMS: the options follow, numbered, so that a
    /// person can answer with a digit ("Reply 1 Call me now, 2 In 15
    /// minutes, 3 Don't call, or STOP to opt out").
    pub fn render_sms(
        &self,
        locale: &str,
        values: &PromptValues<'_>,
        options: &[OfferedChoice],
    ) -> String {
        let mut text = self.render(locale, values);
        text.push('\n');
        text.push_str(&sms_reply_line(options));
        text
    }
}

/// `Reply 1 Call me now, 2 Don't call, or STOP to opt out`; numbers follow
/// the order offered, which is the order stored with the request.
pub fn sms_reply_line(options: &[OfferedChoice]) -> String {
    let mut line = String::from("Reply ");
    for (i, option) in options.iter().enumerate() {
        line.push_str(&format!("{} {}, ", i + 1, option.label));
    }
    line.push_str("or STOP to opt out");
    line
}

/// `fr_FR` → `fr-fr`: BCP 47 tags compare case-insensitively, and some
/// systems write them with underscores.
fn normalize_locale(locale: &str) -> Result<String, TemplateError> {
    let tag = locale.trim().replace('_', "-").to_ascii_lowercase();
    let well_formed = !tag.is_empty()
        && tag.split('-').all(|sub| {
            (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if well_formed {
        Ok(tag)
    } else {
        Err(TemplateError::BadLocale(locale.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Choice;
    use chrono::TimeDelta;

    const VALUES: PromptValues<'static> = PromptValues {
        name: "Ana",
        purpose: "your contract renewal",
        enterprise: "ACME Energy",
    };

    #[test]
    fn the_builtin_is_the_default_template() {
        assert_eq!(
            PromptTemplate::parse(DEFAULT_TEMPLATE),
            Ok(PromptTemplate::builtin())
        );
        assert_eq!(
            PromptTemplates::new().render("en-GB", &VALUES),
            "Hi Ana, ACME Energy would like to call you about your contract renewal. When suits you?"
        );
    }

    #[test]
    fn renders_placeholders_and_doubled_braces() {
        let t = PromptTemplate::parse("{{{ name }}} — {enterprise}: {purpose}").unwrap();
        assert_eq!(
            t.render(&VALUES),
            "{Ana} — ACME Energy: your contract renewal"
        );
        assert_eq!(
            t.placeholders().collect::<Vec<_>>(),
            [
                Placeholder::Name,
                Placeholder::Enterprise,
                Placeholder::Purpose
            ]
        );
        assert_eq!(t.to_string(), "{{{ name }}} — {enterprise}: {purpose}");
    }

    #[test]
    fn values_are_inserted_verbatim() {
        let nameless = PromptValues { name: "", ..VALUES };
        assert!(PromptTemplate::builtin()
            .render(&nameless)
            .starts_with("Hi, ACME Energy would like"));
        let t = PromptTemplate::parse("Hi {name}, about {purpose}").unwrap();
        let values = PromptValues {
            name: "{purpose}",
            purpose: "{{x}} }",
            enterprise: "",
        };
        assert_eq!(t.render(&values), "Hi {purpose}, about {{x}} }");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let err = PromptTemplate::parse("Hi {nmae}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownPlaceholder {
                placeholder: "nmae".into()
            }
        );
        assert!(err.to_string().contains("{nmae}"));
        assert_eq!(
            PromptTemplate::parse("Hi {name"),
            Err(TemplateError::Unclosed { at: 3 })
        );
        assert_eq!(
            PromptTemplate::parse("Hi } there"),
            Err(TemplateError::StrayClose { at: 3 })
        );
        assert_eq!(PromptTemplate::parse("  "), Err(TemplateError::Empty));
        assert!(matches!(
            PromptTemplate::parse("{}"),
            Err(TemplateError::UnknownPlaceholder { .. })
        ));
        let mut templates = PromptTemplates::new();
        assert_eq!(
            templates.insert("fr FR", "Bonjour {name}"),
            Err(TemplateError::BadLocale("fr FR".into()))
        );
        assert!(templates.insert("fr", "Bonjour {nom}").is_err());
        assert_eq!(templates, PromptTemplates::new());
    }

    #[test]
    fn locales_fall_back_to_language_then_english_then_builtin() {
        let mut templates = PromptTemplates::new();
        templates
            .insert("fr", "Bonjour {name}, {enterprise} souhaite vous appeler.")
            .unwrap();
        templates
            .insert("fr_CA", "Allô {name}, {enterprise} aimerait vous appeler.")
            .unwrap();
        assert!(templates.render("fr-CA", &VALUES).starts_with("Allô Ana"));
        assert!(templates.render("FR-ca", &VALUES).starts_with("Allô Ana"));
        assert!(templates
            .render("fr-FR", &VALUES)
            .starts_with("Bonjour Ana"));
        assert!(templates.render("fr", &VALUES).starts_with("Bonjour Ana"));
        assert!(templates.render("de-DE", &VALUES).starts_with("Hi Ana"));
        assert!(templates.render("", &VALUES).starts_with("Hi Ana"));
        assert!(templates.render("not a tag", &VALUES).starts_with("Hi Ana"));

        templates.insert("en", "Hello {name}!").unwrap();
        assert_eq!(templates.render("de-DE", &VALUES), "Hello Ana!");
        assert_eq!(templates.for_locale("es").as_str(), "Hello {name}!");
    }

    #[test]
    fn sms_appends_numbered_options() {
        let options = [
            OfferedChoice {
                label: "Call me now".into(),
                postback: "now".into(),
                choice: Choice::Now,
            },
            OfferedChoice {
                label: "In 15 minutes".into(),
                postback: "after:15".into(),
                choice: Choice::After(TimeDelta::minutes(15)),
            },
            OfferedChoice {
                label: "Don't call".into(),
                postback: "decline".into(),
                choice: Choice::Decline,
            },
        ];
        let mut templates = PromptTemplates::new();
        templates.insert("en", "{enterprise}: {purpose}.").unwrap();
        assert_eq!(
            templates.render_sms("en-US", &VALUES, &options),
            "ACME Energy: your contract renewal.\n\
             Reply 1 Call me now, 2 In 15 minutes, 3 Don't call, or STOP to opt out"
        );
    }
}
