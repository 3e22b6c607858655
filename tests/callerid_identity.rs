//! STIR/SHAKEN as the trunk sees it, without sockets: a PBX INVITE goes
//! through the B2BUA core, and the trunk-side INVITE's From,
//! P-Asserted-Identity and Identity are checked, the signature with the
//! `openssl` command (an implementation independent of the signer's).
//! Also the `slotgate identity verify` command and the refusal to start
//! with an unreadable key.

mod common;

use std::process::Command;

use common::stir::{self, json_field, openssl_verifies, split, tamper};
use slotgate::b2bua::Core;
use slotgate::config::Config;
use slotgate::sip::framing::frame_datagram;
use slotgate::sip::message::{Message, Name};
use slotgate::sip::parse::parse;
use slotgate::sip::{Peer, Transport};

const X5U: &str = "https://cert.example.org/slotgate.pem";

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().expect("address"),
    }
}

fn config(key: &std::path::Path, extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "[sip]\nudp_listen = \"127.0.0.1:5060\"\n\
         [trunk]\naddress = \"127.0.0.1:5080\"\noptions_interval_secs = 0\n\
         [gate]\nenabled = false\n\
         [caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"acme\"\ndefault_number = \"+12125550100\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+13125550133\"\nattest = \"A\"\n\
         [stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n{extra}",
        key.display()
    ))
    .expect("config")
}

/// Sends one PBX INVITE through a fresh core and returns the INVITE the
/// core sends to the trunk (the gate is off: the INVITE goes straight on).
fn trunk_invite(config: &Config, headers: &str, callee: &str) -> Message {
    let now = std::time::Instant::now();
    let mut core = Core::new(config, now, chrono::Utc::now());
    let invite = format!(
        "INVITE sip:{callee}@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-cid-1\r\nMax-Forwards: 70\r\n\
         From: \"Agent\" <sip:4001@127.0.0.1:5062>;tag=f1\r\nTo: <sip:{callee}@127.0.0.1:5060>\r\n\
         Call-ID: 1@callerid\r\nCSeq: 1 INVITE\r\nContact: <sip:4001@127.0.0.1:5062>\r\n\
         {headers}Content-Length: 0\r\n\r\n"
    );
    core.handle_datagram(peer("127.0.0.1:5062"), invite.as_bytes(), now);
    let trunk: std::net::SocketAddr = "127.0.0.1:5080".parse().expect("address");
    let sent = std::iter::from_fn(|| core.poll_transmit())
        .find(|t| t.peer.addr == trunk)
        .expect("an INVITE to the trunk");
    let framed = frame_datagram(&sent.bytes, 65_535).expect("framed");
    parse(framed.head, framed.body).expect("parsed")
}

fn identities(m: &Message) -> Vec<String> {
    m.headers
        .iter()
        .filter(|h| h.name.is("Identity"))
        .map(|h| h.value.clone())
        .collect()
}

/// The digits of the user part of a From/To/PAI value.
fn tn_of(value: &str) -> String {
    let user = value
        .split_once("sip:")
        .map(|(_, rest)| rest.split('@').next().unwrap_or_default())
        .unwrap_or_default();
    user.chars().filter(char::is_ascii_digit).collect()
}

#[test]
fn the_trunk_invite_is_signed_for_its_final_from_and_to() {
    stir::require_openssl();
    for key in [stir::key(), stir::sec1_key()] {
        let config = config(&key, "");
        let before = chrono::Utc::now().timestamp();
        let invite = trunk_invite(
            &config,
            "X-Slotgate-Enterprise: acme\r\nP-Asserted-Identity: <sip:4001@127.0.0.1>\r\n\
             Privacy: id\r\nIdentity: e30.e30.AA;info=<https://pbx.example/c.pem>;alg=ES256;ppt=shaken\r\n",
            "+12125550143",
        );
        let after = chrono::Utc::now().timestamp();
        let from = invite.get(&Name::From).expect("From");
        let to = invite.get(&Name::To).expect("To");
        let pai = invite.get_named("P-Asserted-Identity").expect("PAI");
        assert!(
            from.starts_with("\"Agent\" <sip:+12125550122@127.0.0.1:5062>;tag="),
            "{from}"
        );
        assert_eq!(pai, "<sip:+12125550122@127.0.0.1>");
        assert_eq!(invite.get_named("Privacy"), Some("id"), "Privacy kept");
        assert!(invite.get_named("X-Slotgate-Enterprise").is_none());

        let ids = identities(&invite);
        assert_eq!(ids.len(), 1, "the PBX's Identity is replaced: {ids:?}");
        assert!(
            openssl_verifies(&ids[0], &stir::cert()),
            "openssl rejects {}",
            ids[0]
        );
        let token = split(&ids[0]);
        assert_eq!(token.params, format!("info=<{X5U}>;alg=ES256;ppt=shaken"));
        assert_eq!(
            token.header,
            format!(
                "{{\"alg\":\"ES256\",\"ppt\":\"shaken\",\"typ\":\"passport\",\"x5u\":\"{X5U}\"}}"
            )
        );
        // Canonical: keys in order, no whitespace; the holes filled from itself.
        let iat: i64 = json_field(&token.claims, "iat")
            .and_then(|v| v.parse().ok())
            .expect("iat");
        let origid = json_field(&token.claims, "origid").expect("origid");
        assert_eq!(
            token.claims,
            format!(
                "{{\"attest\":\"A\",\"dest\":{{\"tn\":[\"12125550143\"]}},\"iat\":{iat},\
                 \"orig\":{{\"tn\":\"12125550122\"}},\"origid\":\"{origid}\"}}"
            )
        );
        assert!(
            (before..=after).contains(&iat),
            "iat {iat} not in {before}..={after}"
        );
        assert_eq!(origid.len(), 36);
        // orig and dest are the numbers the trunk INVITE carries.
        assert_eq!(tn_of(from), "12125550122");
        assert_eq!(tn_of(pai), "12125550122");
        assert_eq!(tn_of(to), "12125550143");

        // A forged payload or a changed parameter does not verify.
        let forged = tamper(&ids[0], "12125550122", "12125550123");
        assert!(!openssl_verifies(&forged, &stir::cert()));
        let forged = tamper(&ids[0], "\"attest\":\"A\"", "\"attest\":\"B\"");
        assert!(!openssl_verifies(&forged, &stir::cert()));
    }
}

#[test]
fn an_unknown_number_gets_the_configured_attestation() {
    stir::require_openssl();
    let config = config(&stir::key(), "unknown_attest = \"C\"\n");
    // No enterprise: the global default, which no pool lists.
    let invite = trunk_invite(&config, "", "+12125550143");
    assert!(invite
        .get(&Name::From)
        .expect("From")
        .contains("sip:+18005550100@"));
    let ids = identities(&invite);
    assert!(openssl_verifies(&ids[0], &stir::cert()));
    assert!(split(&ids[0]).claims.starts_with("{\"attest\":\"C\","));
}

fn slotgate(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_slotgate"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run slotgate");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let out = child.wait_with_output().expect("slotgate output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn identity_verify_prints_the_claims_and_refuses_a_forgery() {
    let config = config(&stir::key(), "");
    let invite = trunk_invite(&config, "X-Slotgate-Enterprise: acme\r\n", "+12125550143");
    let id = identities(&invite).remove(0);
    let cert = stir::cert().display().to_string();

    let (ok, out, err) = slotgate(&["identity", "verify", "--cert", &cert, &id], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("signature: valid"), "{out}");
    assert!(out.contains("\"orig\":{\"tn\":\"12125550122\"}"), "{out}");
    // From standard input, header name included.
    let (ok, out, _) = slotgate(
        &["identity", "verify", "--cert", &cert],
        Some(&format!("Identity: {id}\n")),
    );
    assert!(
        ok && out.contains("\"dest\":{\"tn\":[\"12125550143\"]}"),
        "{out}"
    );

    let forged = tamper(&id, "12125550143", "12125550144");
    let (ok, out, err) = slotgate(&["identity", "verify", "--cert", &cert, &forged], None);
    assert!(!ok, "a forged header verified: {out}");
    assert!(err.contains("signature does not verify"), "{err}");
    // Another certificate's key.
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("other.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=other",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl req");
    assert!(made.status.success());
    let (ok, _, err) = slotgate(
        &[
            "identity",
            "verify",
            "--cert",
            &other.display().to_string(),
            &id,
        ],
        None,
    );
    assert!(!ok && err.contains("signature does not verify"), "{err}");
}

#[test]
fn slotgate_refuses_to_start_without_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("slotgate.toml");
    std::fs::write(
        &path,
        format!(
            "[stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n",
            dir.path().join("missing.pem").display()
        ),
    )
    .expect("write config");
    let config = path.display().to_string();
    for command in ["check-config", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_slotgate"))
            .args([command, "--config", &config])
            .env("SLOTGATE_API__LISTEN", "")
            .output()
            .expect("run slotgate");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("stir_shaken.key_file") && err.contains("cannot read"),
            "{command}: {err}"
        );
    }
}
