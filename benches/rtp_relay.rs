//! Concurrent G.711 calls relayed through the media engine over loopback:
//! for each N, N calls with PBX and trunk each sending 50 packets/s (PCMU on
//! the PBX side, PCMA on the trunk side, so every packet is converted), for
//! `RTP_BENCH_SECS` seconds. Prints packets sent and received, loss, CPU
//! per stream split between the engine's threads and the load generator's,
//! and peak RSS; stops at the first N losing 0.1 % or more.
//!
//! `cargo bench --bench rtp_relay` (`RTP_BENCH_CALLS=250,500`,
//! `RTP_BENCH_SECS=15`, `RTP_BENCH_THREADS=2` to change the run).
//!
//! The generator uses two sockets (one per side) and batches with
//! sendmmsg/recvmmsg, so its cost per packet stays small next to the
//! engine's, which handles each call on sockets of its own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slotgate::media::{CallMedia, MediaConfig, MediaEngine, SessionDescription};

/// High half of every generated SSRC; the low half is the call and side.
const TAG: u32 = 0x5107_0000;
const BATCH: usize = 64;
const SLICES_PER_PACKET_TIME: u32 = 10;

fn main() {
    let calls: Vec<usize> = std::env::var("RTP_BENCH_CALLS")
        .unwrap_or_else(|_| "250,500,1000,1500,2000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let secs: u64 = env_or("RTP_BENCH_SECS", 15);
    let threads: usize = env_or("RTP_BENCH_THREADS", 0);
    println!(
        "rtp_relay: {secs} s per N, media threads {}, {} CPU(s)",
        if threads == 0 {
            "= cores".into()
        } else {
            threads.to_string()
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let pbx = generator_socket();
    let trunk = generator_socket();
    let received = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = [(&pbx, 0usize), (&trunk, 1)]
        .into_iter()
        .map(|(socket, side)| {
            let socket = socket.try_clone().unwrap();
            let received = received.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("gen-recv".into())
                .spawn(move || receive_loop(&socket, &received[side], &stop))
                .unwrap()
        })
        .collect();

    for n in calls {
        let loss = run(n, secs, threads, &pbx, &trunk, &received);
        if loss >= 0.1 {
            println!("stopping: loss reached {loss:.3} % at N = {n}");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.join();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generator_socket() -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // One socket takes every call's packets of its side: give it room for
    // a whole 20 ms burst and more.
    let size: libc::c_int = 32 * 1024 * 1024;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: a valid fd and a c_int option value of the right length.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket
}

fn sdp(port: u16, formats: &str) -> SessionDescription {
    let text = format!(
        "v=0\r\no=gen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats} 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    SessionDescription::parse(text.as_bytes()).unwrap()
}

/// One direction of one call as the generator sends it.
struct Stream {
    to: libc::sockaddr_in,
    packet: [u8; 172],
    seq: u16,
}

impl Stream {
    fn new(to: SocketAddrV4, payload_type: u8, ssrc: u32, fill: u8) -> Stream {
        let mut packet = [fill; 172];
        packet[0] = 0x80;
        packet[1] = payload_type;
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = to.port().to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        Stream {
            to: sa,
            packet,
            seq: 0,
        }
    }

    fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        let ts = u32::from(self.seq) * 160;
        self.packet[4..8].copy_from_slice(&ts.to_be_bytes());
    }
}

/// Sends one packet of every stream in `streams` with as few system calls
/// as the kernel allows; returns how many left.
fn send_all(socket: &UdpSocket, streams: &mut [Stream]) -> u64 {
    let mut sent = 0;
    for chunk in streams.chunks_mut(BATCH) {
        let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(chunk.len());
        for s in chunk.iter_mut() {
            s.advance();
            iovecs.push(libc::iovec {
                iov_base: s.packet.as_mut_ptr().cast(),
                iov_len: s.packet.len(),
            });
        }
        let mut headers: Vec<libc::mmsghdr> = chunk
            .iter_mut()
            .zip(iovecs.iter_mut())
            .map(|(s, iov)| {
                // SAFETY: msghdr is plain data; all-zero is a valid value.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&mut s.to as *mut libc::sockaddr_in).cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let mut done = 0;
        while done < headers.len() {
            // SAFETY: every header points at a live buffer and address
            // owned by `chunk` and `iovecs`, both alive for the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[done..].as_mut_ptr(),
                    (headers.len() - done) as u32,
                    0,
                )
            };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        sent += done as u64;
    }
    sent
}

fn receive_loop(socket: &UdpSocket, received: &AtomicU64, stop: &AtomicBool) {
    let mut buffers = vec![[0u8; 256]; BATCH];
    let mut iovecs: Vec<libc::iovec> = buffers
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: msghdr is plain data; all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the headers point at `buffers` through `iovecs`, all
        // alive for the whole loop.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let mut ours = 0;
        for (h, buffer) in headers.iter().zip(buffers.iter()).take(n as usize) {
            let ssrc = u32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]);
            if h.msg_len >= 12 && ssrc & 0xFFFF_0000 == TAG {
                ours += 1;
            }
        }
        received.fetch_add(ours, Ordering::Relaxed);
    }
}

/// CPU seconds of this process's threads, by thread name.
fn cpu_by_thread() -> HashMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let used = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime: fields 14 and 15 of stat, 12th and 13th after comm.
        *out.entry(name).or_insert(0.0) += (used(11) + used(12)) / ticks;
    }
    out
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime fills the struct it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn process_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Jiffies of all CPUs from /proc/stat: (busy, softirq, total).
fn machine_jiffies() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let total: f64 = fields.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    (total - at(3) - at(4), at(6), total)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Engine threads are named "media", the generator's "gen-*".
fn split(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> (f64, f64, f64) {
    let (mut engine, mut generator, mut other) = (0.0, 0.0, 0.0);
    for (name, secs) in after {
        let used = secs - before.get(name).copied().unwrap_or(0.0);
        if name.starts_with("media") {
            engine += used;
        } else if name.starts_with("gen-") {
            generator += used;
        } else {
            other += used;
        }
    }
    (engine, generator, other)
}

fn run(
    n: usize,
    secs: u64,
    threads: usize,
    pbx: &UdpSocket,
    trunk: &UdpSocket,
    received: &[AtomicU64; 2],
) -> f64 {
    let config = MediaConfig {
        port_min: 20_000,
        port_max: 29_999,
        threads,
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(&config).unwrap();
    let pbx_port = pbx.local_addr().unwrap().port();
    let trunk_port = trunk.local_addr().unwrap().port();
    let mut calls: Vec<CallMedia> = Vec::with_capacity(n);
    let mut from_pbx = Vec::with_capacity(n);
    let mut from_trunk = Vec::with_capacity(n);
    for i in 0..n {
        let mut call = engine.open_early_media(&sdp(pbx_port, "0")).unwrap();
        let offer = call.offer_to_trunk().unwrap();
        let engine_trunk = SessionDescription::parse(offer.as_bytes()).unwrap().port;
        call.trunk_answered(&sdp(trunk_port, "8")).unwrap();
        let id = i as u32 * 2;
        from_pbx.push(Stream::new(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, call.pbx_port()),
            0,
            TAG | id,
            0x55,
        ));
        from_trunk.push(Stream::new(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, engine_trunk),
            8,
            TAG | (id + 1),
            0xD5,
        ));
        calls.push(call);
    }
    // Let the announcements stop before counting.
    std::thread::sleep(Duration::from_millis(300));
    let before_rx = [0, 1].map(|i| received[i].load(Ordering::Relaxed));
    let before_threads = cpu_by_thread();
    let before_process = process_cpu();
    let before_machine = machine_jiffies();
    let started = Instant::now();

    let pbx_sender = pbx.try_clone().unwrap();
    let trunk_sender = trunk.try_clone().unwrap();
    let sender = std::thread::Builder::new()
        .name("gen-send".into())
        .spawn(move || {
            let mut sent = 0u64;
            let slice = Duration::from_millis(20) / SLICES_PER_PACKET_TIME;
            let per_slice = n.div_ceil(SLICES_PER_PACKET_TIME as usize).max(1);
            let ticks = secs * 1000 / 20 * u64::from(SLICES_PER_PACKET_TIME);
            let start = Instant::now();
            for tick in 0..ticks {
                let at = start + slice * tick as u32;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let part = (tick % u64::from(SLICES_PER_PACKET_TIME)) as usize;
                let range = (part * per_slice).min(n)..((part + 1) * per_slice).min(n);
                sent += send_all(&pbx_sender, &mut from_pbx[range.clone()]);
                sent += send_all(&trunk_sender, &mut from_trunk[range]);
            }
            // This thread is gone before the others are read: it reports
            // its own CPU time.
            (sent, thread_cpu())
        })
        .unwrap();
    let (sent, sender_cpu) = sender.join().unwrap_or((0, 0.0));
    let elapsed = started.elapsed().as_secs_f64();
    // Packets still in flight.
    std::thread::sleep(Duration::from_millis(500));
    let got: u64 = [0, 1]
        .map(|i| received[i].load(Ordering::Relaxed) - before_rx[i])
        .iter()
        .sum();
    let (engine_cpu, receivers_cpu, other_cpu) = split(&before_threads, &cpu_by_thread());
    let generator_cpu = receivers_cpu + sender_cpu;
    let process = process_cpu() - before_process;
    let after_machine = machine_jiffies();
    let machine_total = (after_machine.2 - before_machine.2).max(1.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_busy = 100.0 * cores * (after_machine.0 - before_machine.0) / machine_total;
    let machine_softirq = 100.0 * cores * (after_machine.1 - before_machine.1) / machine_total;
    let loss = if sent == 0 {
        100.0
    } else {
        100.0 * sent.saturating_sub(got) as f64 / sent as f64
    };
    let streams = (2 * n) as f64;
    let rate = sent as f64 / elapsed / streams;
    println!(
        "N={n:>5} calls: sent {sent:>9} received {got:>9} loss {loss:.4} % \
         ({:.1} packets/s per stream) | CPU over {elapsed:.1} s: \
         engine {:.1} % of a core ({:.1} µs/s per stream), generator {:.1} %, other {:.1} %, \
         process {:.1} % ({:.1} µs/s per stream); machine {:.0} % of a core busy, softirq {:.0} % | RSS {} MiB, peak {} MiB",
        rate,
        100.0 * engine_cpu / elapsed,
        1e6 * engine_cpu / elapsed / streams,
        100.0 * generator_cpu / elapsed,
        100.0 * other_cpu / elapsed,
        100.0 * process / elapsed,
        1e6 * process / elapsed / streams,
        machine_busy,
        machine_softirq,
        status_kib("VmRSS:") / 1024,
        status_kib("VmHWM:") / 1024,
    );
    if rate < 49.0 {
        println!(
            "        the generator fell behind ({rate:.1} packets/s per stream instead of 50): \
             the machine's CPUs were saturated, so this N measures the machine as much as the engine"
        );
    }
    drop(calls);
    drop(engine);
    std::thread::sleep(Duration::from_millis(200));
    loss
}
