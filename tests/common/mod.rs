//! Shared test support: start the built `slotgate` binary on loopback ports
//! with a generated config, wait until it answers OPTIONS, stop it cleanly.
#![allow(dead_code)]

pub mod callbacks;
#[macro_use]
pub mod engines;
pub mod seed;
pub mod sipp;
pub mod stir;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port for both UDP and TCP (best effort: it is released
/// before use, so a collision is possible but unlikely in a bounded suite).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Slotgate {
    pub child: Child,
    pub sip_port: u16,
    pub dir: tempfile::TempDir,
    /// The SQLite file of a node started with [`Slotgate::start_in`] (or
    /// `start`); unused when the store is elsewhere.
    pub db_path: PathBuf,
}

impl Slotgate {
    /// Starts slotgate listening on 127.0.0.1:`sip_port` (UDP and TCP) with
    /// `extra` TOML appended after the generated `[sip]` and `[store]`
    /// sections (so `extra` may hold `[pbx]`, `[trunk]`, `[shutdown]`, `[log]`).
    pub fn start(sip_port: u16, extra: &str) -> Slotgate {
        Slotgate::start_with_sip(sip_port, "", extra)
    }

    /// Like `start`, with `sip_extra` lines added to the `[sip]` section.
    pub fn start_with_sip(sip_port: u16, sip_extra: &str, extra: &str) -> Slotgate {
        Slotgate::start_in(
            tempfile::tempdir().expect("tempdir"),
            sip_port,
            sip_extra,
            extra,
        )
    }

    /// Like `start_with_sip`, in `dir`, whose `slotgate.db` may already
    /// hold what the test needs (see [`Slotgate::db_in`]).
    pub fn start_in(
        dir: tempfile::TempDir,
        sip_port: u16,
        sip_extra: &str,
        extra: &str,
    ) -> Slotgate {
        let store_url = Slotgate::db_in(dir.path());
        // Parallel tests must not fight over the API's default port.
        Slotgate::launch(dir, sip_port, sip_extra, &store_url, "127.0.0.1:0", extra)
    }

    /// Like `start`, with the store at `store_url` (e.g. a PostgreSQL
    /// schema shared with other nodes) and the API on `api_listen`.
    pub fn start_on_store(
        sip_port: u16,
        store_url: &str,
        api_listen: SocketAddr,
        extra: &str,
    ) -> Slotgate {
        Slotgate::launch(
            tempfile::tempdir().expect("tempdir"),
            sip_port,
            "",
            store_url,
            &api_listen.to_string(),
            extra,
        )
    }

    fn launch(
        dir: tempfile::TempDir,
        sip_port: u16,
        sip_extra: &str,
        store_url: &str,
        api_listen: &str,
        extra: &str,
    ) -> Slotgate {
        let db_path = dir.path().join("slotgate.db");
        let config = format!(
            "[sip]\nudp_listen = \"127.0.0.1:{sip_port}\"\ntcp_listen = \"127.0.0.1:{sip_port}\"\n{sip_extra}\n\
             [store]\nurl = \"{store_url}\"\nflush_interval_ms = 20\n{extra}\n"
        );
        let config_path = dir.path().join("slotgate.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("slotgate.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_slotgate"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .env("SLOTGATE_API__LISTEN", api_listen)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn slotgate");
        let mut sg = Slotgate {
            child,
            sip_port,
            dir,
            db_path,
        };
        sg.wait_ready(Duration::from_secs(20));
        sg
    }

    /// The SQLite URL slotgate uses when started in `dir`.
    pub fn db_in(dir: &std::path::Path) -> String {
        format!("sqlite://{}", dir.join("slotgate.db").display())
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slotgate exited early ({status}); log:\n{}", self.log());
            }
            if options_ping(self.addr(), Duration::from_millis(200)) == Some(200) {
                return;
            }
        }
        panic!("slotgate did not answer OPTIONS; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slotgate.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Slotgate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Calling hours that include now in Paris, for cases that must not
/// depend on when they run. Hours cannot span midnight, so in the last
/// minute of a Paris day the case waits for the next one.
pub fn hours_including_now() -> &'static str {
    use chrono::Timelike;
    let local = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .time();
    if local >= chrono::NaiveTime::from_hms_opt(23, 58, 30).expect("time") {
        let wait = 86_400 - local.num_seconds_from_midnight() + 2;
        std::thread::sleep(Duration::from_secs(u64::from(wait)));
    }
    "00:00-23:59"
}

/// Sends one OPTIONS over UDP from an ephemeral port and returns the status
/// code of the answer, if any arrived within `wait`.
pub fn options_ping(target: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let local = sock.local_addr().ok()?;
    let branch = format!("z9hG4bK-ping-{}", rand_token());
    let msg = format!(
        "OPTIONS sip:ping@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag}\r\n\
         To: <sip:ping@{target}>\r\n\
         Call-ID: {cid}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        tag = rand_token(),
        cid = rand_token()
    );
    sock.send_to(msg.as_bytes(), target).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    status_code(&buf[..n])
}

/// The status code of a SIP response, or None if `bytes` is not one.
pub fn status_code(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.splitn(3, ' ');
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    parts.next()?.parse().ok()
}

pub fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
