//! Running SIPp from tests: processes bounded in time, their trace files,
//! and the call counts they report.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

#[derive(Clone, Copy, PartialEq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn sipp_mode(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    pub fn toml(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One SIPp process and the files it writes.
pub struct Sipp {
    pub role: &'static str,
    pub child: Child,
    pub dir: PathBuf,
}

impl Sipp {
    pub fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}_{suffix}", self.role))
    }

    pub fn stat_file(&self) -> PathBuf {
        self.file("stat.csv")
    }

    pub fn error_file(&self) -> PathBuf {
        self.file("errors.log")
    }

    pub fn message_file(&self) -> PathBuf {
        self.file("messages.log")
    }

    pub fn log_file(&self) -> PathBuf {
        self.file("actions.log")
    }

    pub fn screen_file(&self) -> PathBuf {
        self.file("screen.txt")
    }

    /// Waits at most `limit` for the exit status; kills the process and
    /// returns None when it is still running then.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_child(&mut self.child, limit);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails the test unless the `sipp` binary can be run.
pub fn require_sipp() {
    match Command::new("sipp")
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "cannot run `sipp` ({e}): these end-to-end tests need SIPp; \
             install Debian's sip-tester package (apt-get install -y sip-tester)"
        ),
    }
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip-scenarios")
        .join(name)
}

/// Distinct free loopback ports.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut ports = [0u16; N];
    let mut seen = HashSet::new();
    for port in ports.iter_mut() {
        loop {
            let p = free_port();
            if seen.insert(p) {
                *port = p;
                break;
            }
        }
    }
    ports
}

/// The SIPp command line shared by both sides: scenario, bind address,
/// transport, call count, bounded waits, and every trace file in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn sipp_args(
    role: &str,
    scenario_file: &str,
    ip: &str,
    port: u16,
    transport: Transport,
    dir: &Path,
    calls: u32,
    service: Option<&str>,
) -> Vec<String> {
    let file = |suffix: &str| dir.join(format!("{role}_{suffix}")).display().to_string();
    let mut args: Vec<String> = vec![
        "-sf".into(),
        scenario(scenario_file).display().to_string(),
        "-i".into(),
        ip.into(),
        "-p".into(),
        port.to_string(),
        "-t".into(),
        transport.sipp_mode().into(),
        "-m".into(),
        calls.to_string(),
        "-nostdin".into(),
        "-timeout".into(),
        "20s".into(),
        "-timeout_error".into(),
        "-recv_timeout".into(),
        "8s".into(),
        "-trace_stat".into(),
        "-stf".into(),
        file("stat.csv"),
        "-fd".into(),
        "1".into(),
        "-trace_err".into(),
        "-error_file".into(),
        file("errors.log"),
        "-trace_msg".into(),
        "-message_file".into(),
        file("messages.log"),
        "-trace_logs".into(),
        "-log_file".into(),
        file("actions.log"),
    ];
    if let Some(service) = service {
        args.extend(["-s".into(), service.into(), "-r".into(), "10".into()]);
    }
    args
}

pub fn spawn_sipp(role: &'static str, args: Vec<String>, dir: &Path) -> Sipp {
    let screen =
        std::fs::File::create(dir.join(format!("{role}_screen.txt"))).expect("screen file");
    let child = Command::new("sipp")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(screen.try_clone().expect("screen clone"))
        .stderr(screen)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start sipp ({e}); install Debian's sip-tester (apt-get install -y sip-tester)")
        });
    Sipp {
        role,
        child,
        dir: dir.to_path_buf(),
    }
}

/// True once something holds `port` on 127.0.0.1 for `transport`
/// (a bind of our own fails).
pub fn port_taken(port: u16, transport: Transport) -> bool {
    match transport {
        Transport::Udp => UdpSocket::bind(("127.0.0.1", port)).is_err(),
        Transport::Tcp => TcpListener::bind(("127.0.0.1", port)).is_err(),
    }
}

/// Successful and failed call counts from the last line of a SIPp
/// `-trace_stat` file.
pub fn call_counts(stat_file: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(stat_file)
        .map_err(|e| format!("cannot read {}: {e}", stat_file.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| format!("{} is empty", stat_file.display()))?
        .split(';')
        .collect();
    let last: Vec<&str> = lines
        .next_back()
        .ok_or_else(|| format!("{} has no data line", stat_file.display()))?
        .split(';')
        .collect();
    let column = |name: &str| -> Result<u64, String> {
        let i = header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no column {name} in {}", stat_file.display()))?;
        last.get(i)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no value for {name} in {}", stat_file.display()))
    };
    Ok((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

pub fn read_or_note(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| "(absent)".into())
}

/// The end of a possibly long text, whole lines.
pub fn tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}
