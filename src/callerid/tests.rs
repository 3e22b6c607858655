//! The trunk INVITE as `apply_to_trunk_invite` leaves it: numbers written,
//! Identity signed (and verified here with the certificate), PBX Identity
//! passed through or replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{validate, RawCallerId, RawStirShaken};
use super::*;
use crate::config::Config;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const X5U: &str = "https://cert.example.org/slotgate.pem";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// A config with one enterprise and signing as `stir` says.
fn settings(stir: &str) -> CallerIdSettings {
    let text = format!(
        "[caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"acme\"\ndefault_number = \"+12125550100\"\n\
         display_name = \"Acme Care\"\nlogo_url = \"https://cdn.example.com/acme.png\"\n\
         campaigns = {{ spring = \"+12125550111\" }}\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+13125550133\"\nattest = \"B\"\n\
         {stir}"
    );
    Config::from_toml_str(&text).unwrap().caller_id
}

fn signing(extra: &str) -> String {
    format!(
        "[stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n{extra}",
        fixture("TEST-ONLY-stir-key.pem").display()
    )
}

/// The trunk INVITE the core builds from a PBX INVITE with these headers.
fn invite(to_user: &str, extra: &[(&str, &str)]) -> Message {
    let mut m = Message::request(
        crate::sip::message::Method::Invite,
        format!("sip:{to_user}@trunk.example"),
    );
    m.push(Name::Via, "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1");
    m.push(
        Name::From,
        "\"PBX agent\" <sip:4001@10.0.0.5:5062;user=phone>;tag=b1",
    );
    m.push(Name::To, format!("<sip:{to_user}@trunk.example>"));
    m.push(Name::CallId, "b@slotgate");
    m.push(Name::CSeq, "1 INVITE");
    for (name, value) in extra {
        m.push(Name::parse(name), *value);
    }
    m
}

fn pbx_invite(to_user: &str, extra: &[(&str, &str)]) -> Message {
    invite(to_user, extra)
}

fn run(
    caller_id: &mut CallerId,
    to_user: &str,
    pbx_extra: &[(&str, &str)],
) -> (Message, String, Applied) {
    let pbx = pbx_invite(to_user, pbx_extra);
    let ctx = CallContext::from_pbx_invite(&pbx);
    // The core copies P-Asserted-Identity (and carried headers) over.
    let carried: Vec<(&str, &str)> = pbx_extra
        .iter()
        .filter(|(n, _)| !n.starts_with("X-Slotgate"))
        .copied()
        .collect();
    let mut trunk = invite(to_user, &carried);
    let mut local = trunk.get(&Name::From).unwrap().to_string();
    let applied = caller_id.apply_to_trunk_invite(&ctx, &mut trunk, &mut local, now());
    (trunk, local, applied)
}

fn identities(m: &Message) -> Vec<String> {
    m.headers
        .iter()
        .filter(|h| h.name.is("Identity"))
        .map(|h| h.value.clone())
        .collect()
}

fn cert_key() -> Vec<u8> {
    verify::public_key_from_certificate(&fixture("TEST-ONLY-stir-cert.pem")).unwrap()
}

#[test]
fn nothing_configured_means_no_caller_id_at_all() {
    assert!(CallerId::from_config(&CallerIdSettings::default()).is_none());
    let empty = Config::from_toml_str("").unwrap();
    assert!(CallerId::from_config(&empty.caller_id).is_none());
}

#[test]
fn local_presence_rewrites_from_and_pai_and_signs_them() {
    let mut cid = CallerId::from_config(&settings(&signing(""))).unwrap();
    let (trunk, local, applied) = run(
        &mut cid,
        "+12125550143",
        &[
            ("X-Slotgate-Enterprise", "acme"),
            ("P-Asserted-Identity", "<sip:4001@10.0.0.5>"),
            ("Privacy", "none"),
        ],
    );
    assert_eq!(applied.selection.rule, Rule::LocalPresence);
    let from = trunk.get(&Name::From).unwrap();
    assert_eq!(
        from,
        "\"PBX agent\" <sip:+12125550122@10.0.0.5:5062;user=phone>;tag=b1"
    );
    assert_eq!(local, from, "later requests of the B leg use the new From");
    assert_eq!(
        trunk.get_named("P-Asserted-Identity"),
        Some("<sip:+12125550122@10.0.0.5>")
    );
    assert_eq!(trunk.get_named("Privacy"), Some("none"));
    let ids = identities(&trunk);
    assert_eq!(ids.len(), 1);
    assert!(ids[0].ends_with(&format!(";info=<{X5U}>;alg=ES256;ppt=shaken")));
    let verified = verify::verify_header(&ids[0], &cert_key()).unwrap();
    let c = &verified.claims;
    assert_eq!(c["orig"]["tn"], "12125550122");
    assert_eq!(c["dest"]["tn"][0], "12125550143");
    assert_eq!(c["attest"], "A", "pool number with attest A");
    assert_eq!(c["iat"], now().timestamp());
    assert_eq!(c["origid"].as_str(), applied.origid.as_deref());
    assert_eq!(applied.attest, Some(Attest::A));
    // The token's payload is the canonical form of its own claims.
    let jws = passport::Jws::parse(&identity::parse(&ids[0]).unwrap().jws).unwrap();
    let payload = jws.signing_input.split('.').nth(1).unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), passport::canonical_json(c));
    assert!(!applied.selection.why.contains("not signed"));
}

#[test]
fn every_invite_gets_a_fresh_passport() {
    let mut cid = CallerId::from_config(&settings(&signing(""))).unwrap();
    let extra = [("X-Slotgate-Enterprise", "acme")];
    let (a, _, first) = run(&mut cid, "+12125550143", &extra);
    let (b, _, second) = run(&mut cid, "+12125550143", &extra);
    assert_ne!(first.origid, second.origid);
    assert_ne!(identities(&a), identities(&b));
    let origid = first.origid.unwrap();
    assert_eq!(origid.len(), 36);
    assert_eq!(&origid[14..15], "4", "version 4 UUID: {origid}");
}

#[test]
fn the_pbx_identity_is_replaced_when_signing() {
    let mut cid = CallerId::from_config(&settings(&signing(""))).unwrap();
    let theirs = "e30.e30.AA;info=<https://pbx.example/c.pem>;alg=ES256;ppt=shaken";
    let (trunk, _, _) = run(
        &mut cid,
        "+12125550143",
        &[("X-Slotgate-Enterprise", "acme"), ("Identity", theirs)],
    );
    let ids = identities(&trunk);
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], theirs);
    assert!(verify::verify_header(&ids[0], &cert_key()).is_ok());
}

#[test]
fn with_signing_off_a_pbx_identity_passes_untouched() {
    let mut cid = CallerId::from_config(&settings("")).unwrap();
    let theirs = "e30.e30.AA;info=<https://pbx.example/c.pem>;alg=ES256;ppt=shaken";
    let pai = "<sip:+12125550199@10.0.0.5>";
    let (trunk, _, applied) = run(
        &mut cid,
        "+12125550143",
        &[
            ("X-Slotgate-Enterprise", "acme"),
            ("P-Asserted-Identity", pai),
            ("Identity", theirs),
        ],
    );
    assert_eq!(identities(&trunk), [theirs]);
    assert_eq!(trunk.get_named("P-Asserted-Identity"), Some(pai));
    assert!(trunk.get(&Name::From).unwrap().contains("sip:4001@"));
    assert_eq!(applied.selection.rule, Rule::Unchanged);
    assert!(applied.selection.why.contains("passed through"));
    // Without a PBX Identity the same config rewrites, unsigned.
    let (trunk, _, applied) = run(
        &mut cid,
        "+12125550143",
        &[("X-Slotgate-Enterprise", "acme")],
    );
    assert_eq!(applied.selection.rule, Rule::LocalPresence);
    assert!(identities(&trunk).is_empty());
    assert_eq!(applied.origid, None);
}

#[test]
fn signing_alone_signs_the_pbx_number_with_the_unknown_attestation() {
    let stir = signing("unknown_attest = \"C\"\n");
    let settings = Config::from_toml_str(&stir).unwrap().caller_id;
    let mut cid = CallerId::from_config(&settings).unwrap();
    let (trunk, _, applied) = run(
        &mut cid,
        "12125550143",
        &[("P-Asserted-Identity", "<tel:+1-212-555-0199>")],
    );
    assert_eq!(applied.selection.rule, Rule::Unchanged);
    assert_eq!(
        trunk.get_named("P-Asserted-Identity"),
        Some("<tel:+1-212-555-0199>")
    );
    let verified = verify::verify_header(&identities(&trunk)[0], &cert_key()).unwrap();
    assert_eq!(verified.claims["orig"]["tn"], "12125550199");
    assert_eq!(verified.claims["dest"]["tn"][0], "12125550143");
    assert_eq!(verified.claims["attest"], "C");
}

#[test]
fn a_non_number_is_not_signed_and_says_why() {
    let settings = Config::from_toml_str(&signing("")).unwrap().caller_id;
    let mut cid = CallerId::from_config(&settings).unwrap();
    let (trunk, _, applied) = run(&mut cid, "alice", &[]);
    assert!(identities(&trunk).is_empty());
    assert!(
        applied
            .selection
            .why
            .contains("not signed: called party \"alice\""),
        "{}",
        applied.selection.why
    );
}

#[test]
fn an_unparsable_callee_falls_to_the_default() {
    let mut cid = CallerId::from_config(&settings("")).unwrap();
    let (trunk, _, applied) = run(&mut cid, "alice", &[("X-Slotgate-Enterprise", "acme")]);
    assert_eq!(applied.selection.rule, Rule::EnterpriseDefault);
    assert!(
        applied
            .selection
            .why
            .contains("local presence skipped: callee \"alice\""),
        "{}",
        applied.selection.why
    );
    assert!(trunk
        .get(&Name::From)
        .unwrap()
        .contains("sip:+12125550100@"));
    // No PAI from the PBX: one is added with the chosen number.
    assert_eq!(
        trunk.get_named("P-Asserted-Identity"),
        Some("<sip:+12125550100@10.0.0.5:5062;user=phone>")
    );
}

#[test]
fn the_campaign_header_picks_the_campaign_number() {
    let mut cid = CallerId::from_config(&settings("")).unwrap();
    let (trunk, _, applied) = run(
        &mut cid,
        "2125550143",
        &[
            ("X-Slotgate-Enterprise", "acme"),
            ("X-Slotgate-Campaign", "spring"),
        ],
    );
    assert_eq!(applied.selection.rule, Rule::Campaign);
    assert!(trunk.get(&Name::From).unwrap().contains("+12125550111"));
}

#[test]
fn rich_call_data_separate_and_combined() {
    let reason = "call_reason = \"Your scheduled callback\"\n";
    let mut separate = CallerId::from_config(&settings(&signing(&format!(
        "rcd = \"separate\"\n{reason}"
    ))))
    .unwrap();
    let extra = [("X-Slotgate-Enterprise", "acme")];
    let (trunk, _, _) = run(&mut separate, "+12125550143", &extra);
    let ids = identities(&trunk);
    assert_eq!(ids.len(), 2);
    let shaken = verify::verify_header(&ids[0], &cert_key()).unwrap();
    let rcd = verify::verify_header(&ids[1], &cert_key()).unwrap();
    assert!(shaken.claims.get("rcd").is_none());
    assert_eq!(rcd.header["ppt"], "rcd");
    assert!(ids[1].ends_with("ppt=rcd"));
    assert_eq!(rcd.claims["rcd"]["nam"], "Acme Care");
    assert_eq!(rcd.claims["rcd"]["icn"], "https://cdn.example.com/acme.png");
    assert_eq!(rcd.claims["crn"], "Your scheduled callback");
    assert_eq!(rcd.claims["orig"], shaken.claims["orig"]);
    assert!(rcd.claims.get("attest").is_none());

    let mut combined = CallerId::from_config(&settings(&signing(&format!(
        "rcd = \"combined\"\n{reason}"
    ))))
    .unwrap();
    let (trunk, _, _) = run(&mut combined, "+12125550143", &extra);
    let ids = identities(&trunk);
    assert_eq!(ids.len(), 1);
    let both = verify::verify_header(&ids[0], &cert_key()).unwrap();
    assert_eq!(both.header["ppt"], "shaken");
    assert_eq!(both.claims["rcd"]["nam"], "Acme Care");
    assert_eq!(both.claims["crn"], "Your scheduled callback");
}

#[test]
fn outcomes_feed_the_answer_rate() {
    let text = "[caller_id]\nmin_answer_rate_percent = 50\nhealth_min_calls = 2\n\
                [[caller_id.enterprises]]\nid = \"acme\"\n\
                [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
                [[caller_id.enterprises.pool]]\nnumber = \"+12125550123\"\nattest = \"A\"\n";
    let settings = Config::from_toml_str(text).unwrap().caller_id;
    let mut cid = CallerId::from_config(&settings).unwrap();
    let extra = [("X-Slotgate-Enterprise", "acme")];
    let (_, _, first) = run(&mut cid, "+12125550143", &extra);
    assert_eq!(
        first.selection.number.as_ref().unwrap().as_str(),
        "+12125550122"
    );
    cid.record_outcome(&first, false);
    cid.record_outcome(&first, false);
    for _ in 0..3 {
        let (_, _, next) = run(&mut cid, "+12125550143", &extra);
        assert_eq!(
            next.selection.number.as_ref().unwrap().as_str(),
            "+12125550123"
        );
    }
    // Flagging the healthy one leaves only the unhealthy local number.
    cid.flag(&E164::from_e164("+12125550123").unwrap(), now());
    let (_, _, next) = run(&mut cid, "+12125550143", &extra);
    assert_eq!(
        next.selection.number.as_ref().unwrap().as_str(),
        "+12125550122"
    );
    assert!(
        next.selection.why.contains("low answer rate"),
        "{}",
        next.selection.why
    );
}

#[test]
fn rewriting_keeps_everything_but_the_number() {
    let n = E164::from_e164("+12125550122").unwrap();
    assert_eq!(
        with_number("<sip:4001@pbx;user=phone>;tag=1", &n).unwrap(),
        "<sip:+12125550122@pbx;user=phone>;tag=1"
    );
    assert_eq!(
        with_number("sip:4001@pbx;tag=1", &n).unwrap(),
        "<sip:+12125550122@pbx>;tag=1"
    );
    assert_eq!(
        with_number("<sip:pbx.example>", &n).unwrap(),
        "<sip:+12125550122@pbx.example>"
    );
    assert_eq!(
        with_number("\"A\" <tel:4001;phone-context=x>", &n).unwrap(),
        "\"A\" <tel:+12125550122;phone-context=x>"
    );
    assert_eq!(with_number("<mailto:a@b>", &n), None);
    assert_eq!(
        user_part("<tel:+1-212-555-0199;x=y>").as_deref(),
        Some("+1-212-555-0199")
    );
    assert_eq!(
        user_part("\"x\" <sip:+1212@h>;tag=1").as_deref(),
        Some("+1212")
    );
    assert_eq!(user_part("<sip:h>"), None);
}

#[test]
fn config_errors_name_their_key() {
    let cases: [(&str, &str); 12] = [
        (
            "[caller_id]\nglobal_default = \"+1555\"",
            "caller_id.global_default",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"a\"\n[[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
             [[caller_id.enterprises.pool]]\nnumber = \"+12125550123\"\nattest = \"A\"\n\
             [[caller_id.enterprises.pool]]\nnumber = \"+1555\"\nattest = \"A\"",
            "caller_id.enterprises[0].pool[2].number",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"a\"\n[[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"D\"",
            "caller_id.enterprises[0].pool[0].attest",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"a\"\n[[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\nareas = [\"212\"]",
            "caller_id.enterprises[0].pool[0].areas",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"a\"\ncampaigns = { x = \"2125550100\" }",
            "caller_id.enterprises[0].campaigns.x",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"\"",
            "caller_id.enterprises[0].id",
        ),
        (
            "[[caller_id.enterprises]]\nid = \"a\"\nlogo_url = \"http://x.example/l.png\"",
            "caller_id.enterprises[0].logo_url",
        ),
        (
            "[caller_id]\nmin_answer_rate_percent = 101",
            "caller_id.min_answer_rate_percent",
        ),
        ("[stir_shaken]\nenabled = true", "stir_shaken.key_file"),
        (
            "[stir_shaken]\nenabled = true\nkey_file = \"/nonexistent/key.pem\"\nx5u = \"https://c.example/c.pem\"",
            "stir_shaken.key_file",
        ),
        ("[stir_shaken]\nrcd = \"both\"", "stir_shaken.rcd"),
        ("[stir_shaken]\nunknown_attest = \"X\"", "stir_shaken.unknown_attest"),
    ];
    for (text, key) in cases {
        match Config::from_toml_str(text) {
            Err(crate::config::ConfigError::Key { key: got, reason }) => {
                assert_eq!(got, key, "{text}: {reason}")
            }
            other => panic!("{text}: expected an error on {key}, got {other:?}"),
        }
    }
    // The pool number's message quotes it, as the operator wrote it.
    let err = Config::from_toml_str(cases[1].0).unwrap_err().to_string();
    assert!(
        err.contains("\"+1555\" is not a valid E.164 number"),
        "{err}"
    );
    // A key file that is not a key (a certificate) is named too.
    let cert = fixture("TEST-ONLY-stir-cert.pem");
    let raw_stir: RawStirShaken = toml_value(&format!(
        "enabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"",
        cert.display()
    ));
    let err = validate(&RawCallerId::default(), &raw_stir).unwrap_err();
    assert!(err.to_string().contains("stir_shaken.key_file"), "{err}");
    // Signing with no x5u.
    let raw_stir: RawStirShaken = toml_value(&format!(
        "enabled = true\nkey_file = \"{}\"",
        fixture("TEST-ONLY-stir-key.pem").display()
    ));
    let err = validate(&RawCallerId::default(), &raw_stir).unwrap_err();
    assert!(err.to_string().contains("stir_shaken.x5u"), "{err}");
    // The loaded signer is shared, not re-read per call.
    let ok = settings(&signing(""));
    assert_eq!(Arc::strong_count(&ok.stir_shaken.unwrap().signer), 1);
}

fn toml_value<T: serde::de::DeserializeOwned>(text: &str) -> T {
    figment::Figment::new()
        .merge(<figment::providers::Toml as figment::providers::Format>::string(text))
        .extract()
        .unwrap()
}
