//! What STIR/SHAKEN costs per call: one ES256 PASSporT signature alone,
//! and an answered call through the sans-I/O core (14 messages, as in
//! `core_calls`) with caller ID selection and signing off, selection only,
//! and selection plus signing, measured in one run so the figures compare.
//!
//! `cargo bench --bench identity` prints µs per signature and µs and
//! calls/s per call for each configuration (each the best of three runs).

mod common;

use std::path::Path;
use std::time::Instant;

use slotgate::callerid::passport::{self, Attest, Claims, Ppt};
use slotgate::callerid::signer::Signer;
use slotgate::callerid::{identity, uuid_v4};

const SIGNATURES: usize = 20_000;
const CALLS: usize = 20_000;
const X5U: &str = "https://cert.example.org/slotgate.pem";

fn key_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/TEST-ONLY-stir-key.pem")
        .display()
        .to_string()
}

/// µs per PASSporT: claims, canonical JSON, base64url, ES256, header.
fn signing_cost() -> f64 {
    let signer = Signer::from_pem_file(Path::new(&key_file())).unwrap();
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..SIGNATURES {
        let claims = Claims {
            attest: Some(Attest::A),
            orig: "12125550122".into(),
            dest: format!("1212555{:04}", i % 10_000),
            iat: 1_700_000_000 + i as i64,
            origid: Some(uuid_v4()),
            rcd: None,
            crn: None,
        };
        let input =
            passport::signing_input(&passport::header(Ppt::Shaken, X5U), &claims.to_value());
        let sig = signer.sign(input.as_bytes()).unwrap();
        bytes += identity::build(&passport::compact(&input, &sig), X5U, Ppt::Shaken).len();
    }
    assert!(bytes > 0);
    start.elapsed().as_secs_f64() * 1e6 / SIGNATURES as f64
}

/// µs of core CPU per answered call under `extra` config. The gate is
/// off: this prices the pass-through path, where caller ID applies.
fn core_cost(extra: &str) -> f64 {
    let config = common::config(&format!("[gate]\nenabled = false\n{extra}"));
    common::answered_call_cost(
        &config,
        CALLS,
        |i| format!("+1212555{:04}", i % 10_000),
        "X-Slotgate-Enterprise: acme\r\n",
    )
}

fn main() {
    // The bench measures CPU, not the log line each call writes.
    let selection = "[caller_id]\nglobal_default = \"+18005550100\"\n\
         [[caller_id.enterprises]]\nid = \"acme\"\ndefault_number = \"+12125550100\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550122\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+12125550123\"\nattest = \"A\"\n\
         [[caller_id.enterprises.pool]]\nnumber = \"+13125550133\"\nattest = \"B\"\n";
    let signing = format!(
        "{selection}[stir_shaken]\nenabled = true\nkey_file = \"{}\"\nx5u = \"{X5U}\"\n",
        key_file()
    );
    let sign = (0..3).map(|_| signing_cost()).fold(f64::MAX, f64::min);
    println!("identity: ES256 PASSporT + Identity header: {sign:.1} µs per call ({SIGNATURES} signatures)");
    // Warm-up so the first configuration measured is not penalised.
    core_cost("");
    for (name, extra) in [
        ("caller ID off, signing off", ""),
        ("selection on, signing off", selection),
        ("selection on, signing on ", signing.as_str()),
    ] {
        // Best of three: the machine's other work only ever adds time.
        let per_call = (0..3).map(|_| core_cost(extra)).fold(f64::MAX, f64::min);
        println!(
            "core, {name}: {per_call:.1} µs CPU per answered call, {:.0} calls/s per core",
            1e6 / per_call
        );
    }
}
