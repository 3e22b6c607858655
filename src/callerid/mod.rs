//! Caller ID: which number an outbound call shows, and the STIR/SHAKEN
//! signature that vouches for it on the trunk leg.
//!
//! `select` is the chain of rules (person, campaign, local presence,
//! enterprise default, PBX number, global default), `pool` the local
//! presence numbers and their health, `passport`/`identity`/`signer` the
//! PASSporT and its `Identity` header, `verify` the check of a header
//! against a certificate, `config` the two config sections. This file
//! joins them for the B2BUA core: [`CallerId::apply_to_trunk_invite`]
//! rewrites a trunk-side INVITE and says what it did, so the core only
//! makes one call and keeps the result with the call.

pub mod config;
pub mod identity;
pub mod passport;
pub mod pool;
pub mod select;
pub mod signer;
pub mod verify;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use self::config::{
    CallerIdConfig, CallerIdSettings, EnterpriseNumbers, RcdMode, StirShakenConfig,
};
use self::passport::{Attest, Claims, Ppt, Rcd};
use self::pool::PoolState;
use self::select::{ChainInput, Rule, Selection};
use crate::consent::{Region, E164};
use crate::sip::headers;
use crate::sip::message::{Message, Name};

pub use self::config::{RawCallerId, RawStirShaken};

/// Header the PBX names the enterprise with (interim: full classification
/// of calls will provide it instead).
pub const ENTERPRISE_HEADER: &str = "X-Slotgate-Enterprise";
/// Header the PBX names the campaign with (interim, like the enterprise).
pub const CAMPAIGN_HEADER: &str = "X-Slotgate-Campaign";

const IDENTITY: &str = "Identity";
const PAI: &str = "P-Asserted-Identity";

/// What the chain and the signer need to know about one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub enterprise: Option<String>,
    pub campaign: Option<String>,
    /// The callee as dialled (the To user part).
    pub callee: String,
    /// User parts of the PBX's From and P-Asserted-Identity.
    pub pbx_from: Option<String>,
    pub pbx_pai: Option<String>,
    /// Identity header values the PBX sent.
    pub pbx_identity: Vec<String>,
    /// A number set on the person for this enterprise (read by the gate
    /// with the callee's facts; `None` for calls the gate did not read).
    pub person_override: Option<E164>,
}

/// The user part of a From/To/P-Asserted-Identity value (`sip:` or `tel:`).
pub fn user_part(value: &str) -> Option<String> {
    let uri = headers::parse_name_addr(value)?.uri;
    let user = match headers::sip_uri_parts(uri) {
        Some((user, ..)) if uri.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("sip")) => user?,
        _ => {
            let (scheme, rest) = uri.split_once(':')?;
            if !scheme.eq_ignore_ascii_case("tel") {
                return None;
            }
            rest
        }
    };
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

impl CallContext {
    /// Reads the context from the PBX's INVITE (enterprise and campaign
    /// from the `X-Slotgate-*` headers).
    pub fn from_pbx_invite(msg: &Message) -> CallContext {
        let named = |name: &str| {
            msg.get_named(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        CallContext {
            enterprise: named(ENTERPRISE_HEADER),
            campaign: named(CAMPAIGN_HEADER),
            callee: msg.get(&Name::To).and_then(user_part).unwrap_or_default(),
            pbx_from: msg.get(&Name::From).and_then(user_part),
            pbx_pai: msg
                .headers
                .iter()
                .filter(|h| h.name.is(PAI))
                .find_map(|h| user_part(&h.value)),
            pbx_identity: msg
                .headers
                .iter()
                .filter(|h| h.name.is(IDENTITY))
                .map(|h| h.value.clone())
                .collect(),
            person_override: None,
        }
    }
}

/// What was done to one call's trunk INVITE, kept with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub selection: Selection,
    /// The `origid` of the PASSporT, when one was signed.
    pub origid: Option<String>,
    pub attest: Option<Attest>,
}

/// Caller ID selection and signing for the B2BUA: the settings and the
/// pool's state (answer rates, flags, rotation).
#[derive(Debug)]
pub struct CallerId {
    config: CallerIdConfig,
    stir: Option<StirShakenConfig>,
    pool: PoolState,
}

/// A random (version 4) UUID, as `origid` asks.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Replaces the number in the URI of a name-addr value (the user part of
/// a sip/sips URI, the number of a tel URI), keeping display name, host
/// and parameters.
pub fn with_number(value: &str, number: &E164) -> Option<String> {
    let na = headers::parse_name_addr(value)?;
    let start = (na.uri.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
    let end = start + na.uri.len();
    let uri = na.uri;
    let (scheme, rest) = uri.split_once(':')?;
    let new_uri = if scheme.eq_ignore_ascii_case("tel") {
        let params = rest.find(';').map_or("", |i| &rest[i..]);
        format!("{scheme}:{number}{params}")
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}:{number}@{host}")
    } else {
        return None;
    };
    // An addr-spec with header parameters must be bracketed once its URI
    // is rewritten, or the parameters would read as URI parameters.
    let bracketed = value[..start].trim_end().ends_with('<');
    if bracketed {
        Some(format!("{}{new_uri}{}", &value[..start], &value[end..]))
    } else {
        Some(format!("{}<{new_uri}>{}", &value[..start], &value[end..]))
    }
}

impl CallerId {
    /// `None` when nothing is configured: calls pass as before.
    pub fn from_config(settings: &CallerIdSettings) -> Option<CallerId> {
        if !settings.caller_id.rewrites() && settings.stir_shaken.is_none() {
            return None;
        }
        Some(CallerId {
            config: settings.caller_id.clone(),
            stir: settings.stir_shaken.clone(),
            pool: PoolState::default(),
        })
    }

    /// The region national numbers of `enterprise` are read in, else the
    /// global default's.
    fn region(&self, enterprise: Option<&EnterpriseNumbers>) -> Option<Region> {
        enterprise.and_then(|e| e.region).or(self.config.region)
    }

    /// Runs the chain for `ctx` at `now` (marks a local-presence pick used).
    pub fn select(&mut self, ctx: &CallContext, now: DateTime<Utc>) -> Selection {
        let enterprise = ctx
            .enterprise
            .as_deref()
            .and_then(|id| self.config.enterprise(id));
        let region = self.region(enterprise);
        let callee =
            E164::parse(&ctx.callee, region).map_err(|e| format!("callee {:?}: {e}", ctx.callee));
        let pbx_user = ctx.pbx_pai.as_deref().or(ctx.pbx_from.as_deref());
        // Only read when rule 5 may use it: parsing a number is the dearest
        // step of the chain.
        let pbx = match pbx_user {
            _ if !enterprise.is_some_and(|e| e.allow_pbx_number) => {
                Err("not read (PBX numbers not allowed)".to_string())
            }
            Some(user) => E164::parse(user, region).map_err(|e| format!("PBX number: {e}")),
            None => Err("the PBX sent no number".to_string()),
        };
        let input = ChainInput {
            enterprise_id: ctx.enterprise.as_deref(),
            enterprise,
            campaign: ctx.campaign.as_deref(),
            callee: callee.as_ref().map_err(String::as_str),
            person_override: ctx.person_override.as_ref(),
            pbx_number: pbx.as_ref().map_err(String::as_str),
            global_default: self.config.global_default.as_ref(),
        };
        let pool = &mut self.pool;
        let policy = &self.config.health;
        select::select(&input, |e, callee| pool.pick(&e.pool, callee, policy, now))
    }

    /// Rewrites the trunk-side `invite` for the call `ctx` describes: From
    /// user part (in the INVITE and in `dialog_local`, the B leg's own From
    /// for later requests) and P-Asserted-Identity, then the `Identity`
    /// header(s) when signing is on. With signing off, an Identity the PBX
    /// sent is passed through and From/P-Asserted-Identity are left as the
    /// PBX signed them.
    pub fn apply_to_trunk_invite(
        &mut self,
        ctx: &CallContext,
        invite: &mut Message,
        dialog_local: &mut String,
        now: DateTime<Utc>,
    ) -> Applied {
        let identity = Name::Other(IDENTITY.into());
        if self.stir.is_none() && !ctx.pbx_identity.is_empty() {
            invite.headers.retain(|h| !h.name.is(IDENTITY));
            for value in &ctx.pbx_identity {
                invite.push(identity.clone(), value.clone());
            }
            let applied = Applied {
                selection: Selection {
                    number: None,
                    rule: Rule::Unchanged,
                    why: "the PBX signed the call (Identity) and signing is off: \
                          its Identity is passed through, From and P-Asserted-Identity kept"
                        .into(),
                },
                origid: None,
                attest: None,
            };
            log(&applied);
            return applied;
        }
        let mut selection = if self.config.rewrites() {
            self.select(ctx, now)
        } else {
            Selection {
                number: None,
                rule: Rule::Unchanged,
                why: "caller ID selection is not configured".into(),
            }
        };
        if let Some(number) = &selection.number {
            rewrite(invite, dialog_local, number);
        }
        let mut applied = Applied {
            selection: selection.clone(),
            origid: None,
            attest: None,
        };
        if let Some(stir) = &self.stir {
            invite.headers.retain(|h| !h.name.is(IDENTITY));
            let enterprise = ctx
                .enterprise
                .as_deref()
                .and_then(|id| self.config.enterprise(id));
            match sign(stir, enterprise, invite, now) {
                Ok((origid, attest)) => {
                    applied.origid = Some(origid);
                    applied.attest = Some(attest);
                }
                Err(reason) => {
                    selection.why.push_str(&format!("; not signed: {reason}"));
                    applied.selection.why = selection.why;
                }
            }
        }
        log(&applied);
        applied
    }

    /// Records how a call ended, for the answer rate of its number.
    pub fn record_outcome(&mut self, applied: &Applied, answered: bool) {
        if let Some(number) = &applied.selection.number {
            self.pool.record(number, answered, &self.config.health);
        }
    }

    /// Flags a pool number: it rests for the configured cool-down.
    pub fn flag(&mut self, number: &E164, now: DateTime<Utc>) {
        self.pool.flag(number, &self.config.health, now);
    }

    pub fn unflag(&mut self, number: &E164) {
        self.pool.unflag(number);
    }

    /// Makes `flags` (number, resting until) the only flags: those stored
    /// are the truth, and a flag lifted in the store is lifted here.
    pub fn set_flags(&mut self, flags: &[(E164, DateTime<Utc>)]) {
        self.pool.set_flags(flags);
    }
}

fn log(applied: &Applied) {
    info!(
        rule = applied.selection.rule.as_str(),
        number = applied.selection.number.as_ref().map(E164::as_str),
        origid = applied.origid.as_deref(),
        attest = applied.attest.map(Attest::as_str),
        why = %applied.selection.why,
        "caller id"
    );
}

/// Writes `number` into From (and the dialog's copy) and into every
/// P-Asserted-Identity, adding one when the PBX sent none.
fn rewrite(invite: &mut Message, dialog_local: &mut String, number: &E164) {
    if let Some(from) = invite.get(&Name::From).and_then(|f| with_number(f, number)) {
        invite.set(Name::From, from.clone());
        *dialog_local = from;
    } else {
        warn!("caller id: the trunk INVITE's From could not be rewritten");
    }
    let mut any = false;
    for h in invite.headers.iter_mut().filter(|h| h.name.is(PAI)) {
        if let Some(v) = with_number(&h.value, number) {
            h.value = v;
            any = true;
        }
    }
    if !any {
        invite.headers.retain(|h| !h.name.is(PAI));
        if let Some(uri) = invite
            .get(&Name::From)
            .and_then(headers::parse_name_addr)
            .map(|na| na.uri.to_string())
        {
            invite.push(Name::Other(PAI.into()), format!("<{uri}>"));
        }
    }
}

/// Signs the INVITE as it now stands: orig from P-Asserted-Identity (else
/// From), dest from To. Returns the origid and attestation.
fn sign(
    stir: &StirShakenConfig,
    enterprise: Option<&EnterpriseNumbers>,
    invite: &mut Message,
    now: DateTime<Utc>,
) -> Result<(String, Attest), String> {
    let orig_user = invite
        .headers
        .iter()
        .filter(|h| h.name.is(PAI))
        .find_map(|h| user_part(&h.value))
        .or_else(|| invite.get(&Name::From).and_then(user_part))
        .ok_or("no calling number in From or P-Asserted-Identity")?;
    let orig = passport::canonical_tn(&orig_user)
        .ok_or_else(|| format!("calling party {orig_user:?} is not a telephone number"))?;
    let dest_user = invite
        .get(&Name::To)
        .and_then(user_part)
        .ok_or("no called number in To")?;
    let dest = passport::canonical_tn(&dest_user)
        .ok_or_else(|| format!("called party {dest_user:?} is not a telephone number"))?;
    let attest = E164::from_e164(&format!("+{orig}"))
        .ok()
        .and_then(|n| enterprise.and_then(|e| e.attest_of(&n)))
        .unwrap_or(stir.unknown_attest);
    let origid = uuid_v4();
    let rcd = enterprise
        .map(|e| Rcd {
            nam: e.display_name.clone(),
            icn: e.logo_url.clone(),
        })
        .filter(|r| !r.is_empty());
    let with_rcd = rcd.is_some() || stir.call_reason.is_some();
    let mut claims = Claims {
        attest: Some(attest),
        orig,
        dest,
        iat: now.timestamp(),
        origid: Some(origid.clone()),
        rcd: None,
        crn: None,
    };
    if stir.rcd == RcdMode::Combined && with_rcd {
        claims.rcd = rcd.clone();
        claims.crn = stir.call_reason.clone();
    }
    let mut values = vec![token(stir, Ppt::Shaken, &claims)?];
    if stir.rcd == RcdMode::Separate && with_rcd {
        let rcd_claims = Claims {
            attest: None,
            origid: None,
            rcd,
            crn: stir.call_reason.clone(),
            ..claims
        };
        values.push(token(stir, Ppt::Rcd, &rcd_claims)?);
    }
    for value in values {
        invite.push(Name::Other(IDENTITY.into()), value);
    }
    Ok((origid, attest))
}

/// One signed Identity header value.
fn token(stir: &StirShakenConfig, ppt: Ppt, claims: &Claims) -> Result<String, String> {
    let input = passport::signing_input(&passport::header(ppt, &stir.x5u), &claims.to_value());
    let signature = stir
        .signer
        .sign(input.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(identity::build(
        &passport::compact(&input, &signature),
        &stir.x5u,
        ppt,
    ))
}

#[cfg(test)]
mod tests;
