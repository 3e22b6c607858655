//! Which enterprise, campaign and callee an INVITE from the PBX is for.
//!
//! The gate can only look up consent once it knows who is calling whom.
//! The enterprise comes from, in order, a header the PBX sets, the digest
//! user it authenticated as, or the network it calls from, so one slotgate
//! can serve a shared PBX and several dedicated ones. The callee is read
//! from the Request-URI (where the PBX routes) before the To header; it is
//! only text here: the enterprise's region, needed to make it E.164, is in
//! the store.

use std::net::IpAddr;

use super::gate_config::GateConfig;
use crate::sip::headers;
use crate::sip::message::{Message, Name};

/// Who is calling whom, as far as the INVITE tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub enterprise_id: String,
    pub campaign: String,
    /// The dialled number as written (national or international).
    pub callee: String,
}

/// Reads the enterprise, campaign and callee of `invite`; `None` when no
/// enterprise or no dialled number can be found.
pub fn classify(
    config: &GateConfig,
    invite: &Message,
    source: IpAddr,
    digest_user: Option<&str>,
) -> Option<Classification> {
    let enterprise_id = header_value(invite, &config.enterprise_header)
        .or_else(|| digest_user.and_then(|u| config.digest_users.get(u).cloned()))
        .or_else(|| {
            config
                .sources
                .iter()
                .find(|(net, _)| net.contains(&source))
                .map(|(_, e)| e.clone())
        })
        .or_else(|| config.default_enterprise.clone())?;
    let campaign = header_value(invite, &config.campaign_header)
        .unwrap_or_else(|| config.default_campaign.clone());
    let callee = dialled_number(invite.request_uri()).or_else(|| {
        invite
            .get(&Name::To)
            .and_then(headers::parse_name_addr)
            .and_then(|to| dialled_number(to.uri))
    })?;
    Some(Classification {
        enterprise_id,
        campaign,
        callee,
    })
}

/// A header's trimmed value, when present and not empty.
fn header_value(msg: &Message, name: &str) -> Option<String> {
    msg.get_named(name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
}

/// The telephone number in a `sip:`/`sips:` user part or a `tel:` URI,
/// without parameters or visual separators; `None` when it holds letters
/// (an extension name, not a number).
pub fn dialled_number(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let raw = if scheme.eq_ignore_ascii_case("tel") {
        rest
    } else {
        headers::sip_uri_parts(uri)?.0?
    };
    let raw = raw.split(';').next().unwrap_or(raw);
    let number: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let digits = number.strip_prefix('+').unwrap_or(&number);
    (!digits.is_empty() && digits.len() <= 20 && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Method;

    fn config() -> GateConfig {
        let mut c = GateConfig {
            sources: vec![("10.1.0.0/16".parse().unwrap(), "ent-net".into())],
            ..GateConfig::default()
        };
        c.digest_users.insert("pbx-user".into(), "ent-user".into());
        c
    }

    fn invite(uri: &str, extra: &[(&str, &str)]) -> Message {
        let mut m = Message::request(Method::Invite, uri);
        m.push(Name::To, "<sip:15550100001@pbx.example>");
        for (n, v) in extra {
            m.push(Name::parse(n), *v);
        }
        m
    }

    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn the_header_wins_over_user_and_source() {
        let m = invite(
            "sip:+15550100002@sg",
            &[
                ("X-Slotgate-Enterprise", " ent-h "),
                ("X-Slotgate-Campaign", "spring"),
            ],
        );
        let c = classify(&config(), &m, "10.1.2.3".parse().unwrap(), Some("pbx-user")).unwrap();
        assert_eq!(c.enterprise_id, "ent-h");
        assert_eq!(c.campaign, "spring");
        assert_eq!(c.callee, "+15550100002");
    }

    #[test]
    fn then_the_digest_user_then_the_source_then_the_default() {
        let m = invite("sip:5550100002@sg", &[]);
        let cfg = config();
        let by_user = classify(&cfg, &m, "10.1.2.3".parse().unwrap(), Some("pbx-user")).unwrap();
        assert_eq!(by_user.enterprise_id, "ent-user");
        assert_eq!(by_user.campaign, "default");
        let by_source = classify(&cfg, &m, "10.1.2.3".parse().unwrap(), Some("other")).unwrap();
        assert_eq!(by_source.enterprise_id, "ent-net");
        assert_eq!(classify(&cfg, &m, ELSEWHERE, None), None);
        let mut with_default = cfg;
        with_default.default_enterprise = Some("ent-d".into());
        let by_default = classify(&with_default, &m, ELSEWHERE, None).unwrap();
        assert_eq!(by_default.enterprise_id, "ent-d");
    }

    #[test]
    fn the_callee_comes_from_the_request_uri_then_to() {
        let h = [("X-Slotgate-Enterprise", "e")];
        let cfg = config();
        let tel = classify(
            &cfg,
            &invite("tel:+1-555-010-0003;phone-context=x", &h),
            ELSEWHERE,
            None,
        );
        assert_eq!(tel.unwrap().callee, "+15550100003");
        let named = classify(&cfg, &invite("sip:sales@sg", &h), ELSEWHERE, None);
        assert_eq!(named.unwrap().callee, "15550100001", "falls back to To");
        let mut none = invite("sip:sales@sg", &h);
        none.set(Name::To, "<sip:reception@pbx>");
        assert_eq!(classify(&cfg, &none, ELSEWHERE, None), None);
    }

    #[test]
    fn dialled_numbers_drop_separators_and_parameters() {
        assert_eq!(
            dialled_number("sip:+33-1-42.68.53.00;user=phone@x").as_deref(),
            Some("+33142685300")
        );
        assert_eq!(
            dialled_number("sip:+33142685300;isub=1@x").as_deref(),
            Some("+33142685300")
        );
        assert_eq!(dialled_number("sip:x").as_deref(), None);
        assert_eq!(dialled_number("sip:@x").as_deref(), None);
        assert_eq!(dialled_number("tel:+").as_deref(), None);
        assert_eq!(dialled_number("sip:12a@x").as_deref(), None);
    }
}
