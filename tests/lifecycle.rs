//! The process as an operator meets it: a wrong config stops it with exit 2
//! naming the key (from the file or from the environment); SIGTERM refuses
//! new calls with 503 + Retry-After while a call in progress finishes, then
//! exits 0; oversized messages are refused without harming the process.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, options_ping, status_code, Slotgate};

fn check_config(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slotgate.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slotgate"));
    cmd.arg("check-config").arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let (code, _) = check_config("[sip]\nudp_listen = \"127.0.0.1:5999\"\n", &[]);
    assert_eq!(code, Some(0));

    let (code, err) = check_config("[trunk]\ntransport = \"carrier-pigeon\"\n", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("trunk.transport"), "{err}");
    assert!(
        err.contains("\"udp\" or \"tcp\""),
        "says what is allowed: {err}"
    );

    let (code, err) = check_config("", &[("SLOTGATE_SIP__UDP_LISTEN", "not-an-address")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("sip.udp_listen"), "{err}");

    let (code, err) = check_config("[pbx]\nno_such_key = 1\n", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no_such_key"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_slotgate"))
        .args(["run", "--config", "/nonexistent/slotgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn environment_overrides_the_file() {
    let (code, err) = check_config(
        "[trunk]\ntransport = \"carrier-pigeon\"\n",
        &[
            ("SLOTGATE_TRUNK__TRANSPORT", "udp"),
            // Not SECTION__KEY: someone else's variable, ignored.
            ("SLOTGATE_TEST_SOMETHING", "x"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
}

/// A minimal trunk: answers INVITE with 200 (and BYE with 200) from a thread.
fn spawn_trunk(sock: UdpSocket) -> std::thread::JoinHandle<()> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 65535];
        while Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let first = text.lines().next().unwrap_or("");
            if first.starts_with("INVITE") || first.starts_with("BYE") {
                let resp = respond(
                    &text,
                    "200 OK",
                    &format!("<sip:gw@{}>", sock.local_addr().unwrap()),
                );
                sock.send_to(resp.as_bytes(), from).unwrap();
            }
        }
    })
}

/// A response to `req` copying Via/From/To/Call-ID/CSeq, with a To tag.
fn respond(req: &str, status: &str, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            if !lower.contains("tag=") {
                out.push_str(";tag=trunk1");
            }
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Contact: {contact}\r\nContent-Length: 0\r\n\r\n"));
    out
}

fn request(
    method: &str,
    local: SocketAddr,
    target: SocketAddr,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
    branch: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:+15551230001@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:4001@{local}>;tag=pbx1\r\n\
         To: <sip:+15551230001@{target}>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:4001@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Reads responses until one with a final status arrives.
fn final_response(sock: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 65535];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if status_code(&buf[..n]).is_some_and(|c| c >= 200) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

fn to_tag_of(resp: &str) -> String {
    resp.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .unwrap_or_default()
}

#[test]
fn sigterm_refuses_new_calls_lets_the_current_one_finish_and_exits_0() {
    let trunk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    let trunk_thread = spawn_trunk(trunk);
    let mut sg = Slotgate::start(
        free_port(),
        &format!(
            "[trunk]\naddress = \"{trunk_addr}\"\noptions_interval_secs = 0\n\
             [shutdown]\nretry_after_secs = 42\ndrain_timeout_secs = 20\n"
        ),
    );
    let pbx = UdpSocket::bind("127.0.0.1:0").unwrap();
    pbx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = pbx.local_addr().unwrap();
    let target = sg.addr();

    pbx.send_to(
        request("INVITE", local, target, "drain-1", 1, None, "d1").as_bytes(),
        target,
    )
    .unwrap();
    let ok = final_response(&pbx).expect("200 for the first call");
    assert_eq!(status_code(ok.as_bytes()), Some(200), "{ok}");
    let tag = to_tag_of(&ok);
    pbx.send_to(
        request("ACK", local, target, "drain-1", 1, Some(&tag), "d1ack").as_bytes(),
        target,
    )
    .unwrap();

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(sg.child.id().to_string())
        .status();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sg.child.try_wait().unwrap().is_none(),
        "still up while a call is in progress"
    );

    pbx.send_to(
        request("INVITE", local, target, "drain-2", 1, None, "d2").as_bytes(),
        target,
    )
    .unwrap();
    let refused = final_response(&pbx).expect("an answer while draining");
    assert_eq!(status_code(refused.as_bytes()), Some(503), "{refused}");
    assert!(refused.contains("Retry-After: 42"), "{refused}");

    pbx.send_to(
        request("BYE", local, target, "drain-1", 2, Some(&tag), "d1bye").as_bytes(),
        target,
    )
    .unwrap();
    let bye_ok = final_response(&pbx).expect("200 for the BYE");
    assert_eq!(status_code(bye_ok.as_bytes()), Some(200));

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = sg.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "slotgate did not exit after the last call; log:\n{}",
            sg.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}; log:\n{}", sg.log());
    drop(trunk_thread);
}

#[test]
fn oversized_messages_are_refused_and_the_process_carries_on() {
    let mut sg = Slotgate::start_with_sip(
        free_port(),
        "max_message_size = 8192",
        "[trunk]\noptions_interval_secs = 0\n",
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut big = request("OPTIONS", local, sg.addr(), "big-1", 1, None, "big1");
    big.insert_str(
        big.find("Content-Length").unwrap(),
        &format!("X-Filler: {}\r\n", "a".repeat(10_000)),
    );
    sock.send_to(big.as_bytes(), sg.addr()).unwrap();
    let mut buf = [0u8; 4096];
    if let Ok((n, _)) = sock.recv_from(&mut buf) {
        panic!(
            "oversized datagram got an answer: {}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    assert_eq!(options_ping(sg.addr(), Duration::from_secs(1)), Some(200));

    let mut tcp = TcpStream::connect(sg.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let endless = format!(
        "OPTIONS sip:x@{} SIP/2.0\r\nX-Filler: {}",
        sg.addr(),
        "b".repeat(20_000)
    );
    let _ = tcp.write_all(endless.as_bytes());
    let mut sink = Vec::new();
    // EOF, or a reset when the server closed with our bytes still unread.
    let closed = match tcp.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the connection is closed");
    assert_eq!(options_ping(sg.addr(), Duration::from_secs(1)), Some(200));
    assert!(sg.child.try_wait().unwrap().is_none());
    let _ = sg.stop(Duration::from_secs(5));
}
