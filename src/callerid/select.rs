//! The caller ID selection chain: which number a call shows, as a pure
//! function of the call's inputs (local presence is handed in as a
//! function, so the pool's state stays in `pool.rs`).
//!
//! Rules are tried in a fixed order and the first that yields a number
//! wins; every rule tried leaves a line in `why`, so the call record says
//! not only which number was shown but why the earlier rules did not apply.

use super::config::EnterpriseNumbers;
use super::pool::Pick;
use crate::consent::E164;

/// The rule that chose the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A number set on the person for this enterprise.
    PersonOverride,
    Campaign,
    LocalPresence,
    EnterpriseDefault,
    /// The number the PBX sent, allowed by the enterprise.
    PbxNumber,
    GlobalDefault,
    /// No rule applied: the PBX's From and P-Asserted-Identity are kept.
    Unchanged,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::PersonOverride => "person_override",
            Rule::Campaign => "campaign",
            Rule::LocalPresence => "local_presence",
            Rule::EnterpriseDefault => "enterprise_default",
            Rule::PbxNumber => "pbx_number",
            Rule::GlobalDefault => "global_default",
            Rule::Unchanged => "unchanged",
        }
    }
}

/// The chain's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `None` with [`Rule::Unchanged`].
    pub number: Option<E164>,
    pub rule: Rule,
    /// One clause per rule tried, `; `-separated.
    pub why: String,
}

/// Everything the chain looks at for one call.
#[derive(Debug, Clone, Copy)]
pub struct ChainInput<'a> {
    /// The enterprise id the call was classified under, if any.
    pub enterprise_id: Option<&'a str>,
    /// Its configuration, if the id is configured.
    pub enterprise: Option<&'a EnterpriseNumbers>,
    pub campaign: Option<&'a str>,
    /// The callee, or why it could not be read as a number.
    pub callee: Result<&'a E164, &'a str>,
    pub person_override: Option<&'a E164>,
    /// The PBX's number (P-Asserted-Identity, else From), or why none.
    pub pbx_number: Result<&'a E164, &'a str>,
    pub global_default: Option<&'a E164>,
}

/// Runs the chain. `local` picks a pool number for the callee; it is only
/// called when the chain reaches local presence with a callee to match.
pub fn select(
    input: &ChainInput<'_>,
    local: impl FnOnce(&EnterpriseNumbers, &E164) -> Result<Pick, String>,
) -> Selection {
    let mut why: Vec<String> = Vec::with_capacity(6);
    let done = |number: &E164, rule: Rule, mut why: Vec<String>, clause: String| {
        why.push(clause);
        Selection {
            number: Some(number.clone()),
            rule,
            why: why.join("; "),
        }
    };

    // 1. A number set on the person.
    match input.person_override {
        Some(n) => return done(n, Rule::PersonOverride, why, format!("person override {n}")),
        None => why.push("no person override".into()),
    }

    let enterprise = match (input.enterprise_id, input.enterprise) {
        (_, Some(e)) => Some(e),
        (Some(id), None) => {
            why.push(format!("enterprise {id:?} has no caller ID settings"));
            None
        }
        (None, None) => {
            why.push("no enterprise".into());
            None
        }
    };

    if let Some(e) = enterprise {
        // 2. The campaign's number.
        match input.campaign {
            Some(c) => match e.campaigns.get(c) {
                Some(n) => {
                    return done(n, Rule::Campaign, why, format!("campaign {c:?} number {n}"))
                }
                None => why.push(format!("campaign {c:?} has no number")),
            },
            None => why.push("no campaign".into()),
        }

        // 3. Local presence.
        match input.callee {
            Ok(callee) => match local(e, callee) {
                Ok(pick) => {
                    return done(
                        &pick.number,
                        Rule::LocalPresence,
                        why,
                        format!("local presence {}", pick.why),
                    )
                }
                Err(reason) => why.push(format!("local presence: {reason}")),
            },
            Err(reason) => why.push(format!("local presence skipped: {reason}")),
        }

        // 4. The enterprise's default.
        match &e.default_number {
            Some(n) => {
                return done(
                    n,
                    Rule::EnterpriseDefault,
                    why,
                    format!("enterprise default {n}"),
                )
            }
            None => why.push("no enterprise default".into()),
        }

        // 5. The PBX's own number, if the enterprise allows it.
        if e.allow_pbx_number {
            match input.pbx_number {
                Ok(n) => return done(n, Rule::PbxNumber, why, format!("PBX number {n} allowed")),
                Err(reason) => why.push(format!("PBX number allowed but unusable: {reason}")),
            }
        } else {
            why.push("PBX number not allowed".into());
        }
    }

    // 6. The global default.
    match input.global_default {
        Some(n) => done(n, Rule::GlobalDefault, why, format!("global default {n}")),
        None => {
            why.push("no global default: From kept".into());
            Selection {
                number: None,
                rule: Rule::Unchanged,
                why: why.join("; "),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn n(text: &str) -> E164 {
        E164::from_e164(text).unwrap()
    }

    fn enterprise(default: Option<&str>, allow_pbx: bool) -> EnterpriseNumbers {
        EnterpriseNumbers {
            id: "acme".into(),
            default_number: default.map(n),
            allow_pbx_number: allow_pbx,
            display_name: None,
            logo_url: None,
            campaigns: BTreeMap::from([("spring".to_string(), n("+12125550111"))]),
            pool: Vec::new(),
            region: None,
        }
    }

    /// One row of the table: the inputs that differ, and what must come out.
    struct Row {
        name: &'static str,
        person: Option<&'static str>,
        enterprise_id: Option<&'static str>,
        configured: bool,
        default: Option<&'static str>,
        allow_pbx: bool,
        campaign: Option<&'static str>,
        callee: Result<&'static str, &'static str>,
        /// What local presence answers (`None`: no local number).
        local: Option<&'static str>,
        pbx: Result<&'static str, &'static str>,
        global: Option<&'static str>,
        want: (Rule, Option<&'static str>),
        /// Clauses `why` must contain.
        why: &'static [&'static str],
    }

    const BASE: Row = Row {
        name: "",
        person: None,
        enterprise_id: Some("acme"),
        configured: true,
        default: Some("+12125550100"),
        allow_pbx: false,
        campaign: None,
        callee: Ok("+12125550143"),
        local: Some("+12125550122"),
        pbx: Ok("+12125550199"),
        global: Some("+18005550100"),
        want: (Rule::Unchanged, None),
        why: &[],
    };

    #[test]
    fn the_chain_table() {
        let rows = [
            Row {
                name: "1 person override beats everything",
                person: Some("+12125550177"),
                campaign: Some("spring"),
                want: (Rule::PersonOverride, Some("+12125550177")),
                why: &["person override +12125550177"],
                ..BASE
            },
            Row {
                name: "2 campaign number",
                campaign: Some("spring"),
                want: (Rule::Campaign, Some("+12125550111")),
                why: &["no person override", "campaign \"spring\" number"],
                ..BASE
            },
            Row {
                name: "3 local presence when the campaign has no number",
                campaign: Some("autumn"),
                want: (Rule::LocalPresence, Some("+12125550122")),
                why: &[
                    "campaign \"autumn\" has no number",
                    "local presence +12125550122",
                ],
                ..BASE
            },
            Row {
                name: "4 enterprise default without a local number",
                local: None,
                want: (Rule::EnterpriseDefault, Some("+12125550100")),
                why: &[
                    "no campaign",
                    "local presence: nothing local",
                    "enterprise default",
                ],
                ..BASE
            },
            Row {
                name: "4 unparsable callee falls to the default and says why",
                callee: Err("\"alice\" is not a telephone number"),
                want: (Rule::EnterpriseDefault, Some("+12125550100")),
                why: &["local presence skipped: \"alice\" is not a telephone number"],
                ..BASE
            },
            Row {
                name: "5 PBX number when allowed",
                local: None,
                default: None,
                allow_pbx: true,
                want: (Rule::PbxNumber, Some("+12125550199")),
                why: &["no enterprise default", "PBX number +12125550199 allowed"],
                ..BASE
            },
            Row {
                name: "6 global default when the PBX number is not allowed",
                local: None,
                default: None,
                want: (Rule::GlobalDefault, Some("+18005550100")),
                why: &["PBX number not allowed", "global default +18005550100"],
                ..BASE
            },
            Row {
                name: "6 global default when the PBX number is unusable",
                local: None,
                default: None,
                allow_pbx: true,
                pbx: Err("From user \"4001\" is not a telephone number"),
                want: (Rule::GlobalDefault, Some("+18005550100")),
                why: &["PBX number allowed but unusable: From user \"4001\""],
                ..BASE
            },
            Row {
                name: "6 unknown enterprise: global default",
                enterprise_id: Some("globex"),
                configured: false,
                campaign: Some("spring"),
                want: (Rule::GlobalDefault, Some("+18005550100")),
                why: &["enterprise \"globex\" has no caller ID settings"],
                ..BASE
            },
            Row {
                name: "no enterprise at all, no global default: unchanged",
                enterprise_id: None,
                configured: false,
                global: None,
                want: (Rule::Unchanged, None),
                why: &["no enterprise", "no global default: From kept"],
                ..BASE
            },
        ];
        for row in rows {
            let e = enterprise(row.default, row.allow_pbx);
            let callee = row.callee.map(n);
            let pbx = row.pbx.map(n);
            let person = row.person.map(n);
            let global = row.global.map(n);
            let input = ChainInput {
                enterprise_id: row.enterprise_id,
                enterprise: row.configured.then_some(&e),
                campaign: row.campaign,
                callee: callee.as_ref().map_err(|s| *s),
                person_override: person.as_ref(),
                pbx_number: pbx.as_ref().map_err(|s| *s),
                global_default: global.as_ref(),
            };
            let mut asked = false;
            let got = select(&input, |_, _| {
                asked = true;
                row.local
                    .map(|l| Pick {
                        number: n(l),
                        why: format!("{l} same area"),
                    })
                    .ok_or_else(|| "nothing local".to_string())
            });
            assert_eq!(
                (got.rule, got.number.as_ref().map(E164::as_str)),
                row.want,
                "{}: {}",
                row.name,
                got.why
            );
            for clause in row.why {
                assert!(
                    got.why.contains(clause),
                    "{}: {:?} lacks {clause:?}",
                    row.name,
                    got.why
                );
            }
            // Local presence is consulted only when the chain reaches it
            // with a callee to match.
            let reached = row.person.is_none()
                && row.configured
                && row.campaign != Some("spring")
                && row.callee.is_ok();
            assert_eq!(asked, reached, "{}", row.name);
        }
    }
}
