//! slotgate: a consent-gated SIP B2BUA between an enterprise's PBX and its
//! outbound trunk.
//!
//! This file only wires the parts together: it binds the sockets, runs the
//! B2BUA core on them, hands finished calls to the store, and runs the
//! enterprise HTTP API, the consent exchange (prompts out, replies in)
//! and the CRM webhook deliverer beside them.
//! Everything with behaviour lives in the modules below (see
//! ARCHITECTURE.md).

pub mod api;
pub mod b2bua;
pub mod callerid;
pub mod config;
pub mod consent;
pub mod crm;
pub mod media;
pub mod pacing;
pub mod rcs;
pub mod sip;
pub mod store;
pub mod timing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::b2bua::gatekeeper::Gatekeeper;
use crate::b2bua::hold::{GateQuery, GateVerdict, HoldAnswer};
use crate::b2bua::Core;
use crate::config::Config;
use crate::sip::transport::{self, StreamEvent, TcpHub};
use crate::sip::{Peer, Transport};
use crate::store::caller_ids::CallerIdFlag;
use crate::store::{spawn_recorder, CallRecorder, Store};

/// Why slotgate could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Deliverer(#[from] crm::deliverer::DelivererError),
    #[error(transparent)]
    Channels(#[from] rcs::channels::ChannelSetupError),
    #[error("cannot start the media engine: {0}")]
    Media(#[from] media::MediaError),
    #[error("cannot listen for consent answers: {0}")]
    HoldWakes(#[from] store::ConsentStoreError),
}

/// Datagrams handled per wake-up before timers and TCP get a turn.
const UDP_BATCH: usize = 256;

/// How often caller ID flags are re-read from the store, for those another
/// node wrote (this process's own writes wake the reader at once).
const CALLER_ID_FLAGS_REFRESH: Duration = Duration::from_secs(10);

/// Runs slotgate until `shutdown` resolves, then drains: new INVITEs get
/// 503, calls in progress get up to the drain timeout to end, the rest are
/// hung up, and every call record is written before returning.
pub async fn serve(
    config: Config,
    store: Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let udp = transport::bind_udp(config.sip.udp_listen).map_err(|source| RunError::Bind {
        addr: config.sip.udp_listen,
        what: "udp",
        source,
    })?;
    let udp = Arc::new(udp);
    let (events_tx, mut events_rx) = mpsc::channel::<StreamEvent>(4096);
    if let Some(addr) = config.sip.tcp_listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind {
                addr,
                what: "tcp",
                source,
            })?;
        tokio::spawn(transport::accept_loop(
            listener,
            events_tx.clone(),
            config.sip.max_message_size,
        ));
    }
    let channels = Arc::new(rcs::channels::Channels::from_config(&config.channels)?);
    let inbound =
        rcs::inbound::Inbound::new(store.clone(), channels.clone(), config.prompts.clone());
    let exchange = api::Exchange {
        inbound: inbound.clone(),
        channels: channels.clone(),
    };
    let mut core = Core::new(&config, std::time::Instant::now(), chrono::Utc::now());
    // Placed calls anchor their media too: the dialler needs the engine
    // even when no campaign holds with early media.
    let (media_tx, mut media_rx) = mpsc::unbounded_channel::<media::MediaEvent>();
    let early_media = config.gate.enabled && config.gate.holds_with_early_media();
    if early_media || config.pacing.enabled {
        core.set_media(Box::new(b2bua::anchor::EngineAnchor::new(
            media::MediaEngine::start(&config.media)?,
            config.pacing.enabled.then_some(media_tx),
        )));
        info!(
            ports = %format!("{}-{}", config.media.port_min, config.media.port_max),
            early_media,
            placed_calls = config.pacing.enabled,
            "media engine started"
        );
    }
    let (dial_tx, mut dial_rx) = mpsc::unbounded_channel::<pacing::dialer::DialCommand>();
    let (placed_tx, placed_rx) = mpsc::unbounded_channel();
    let (dialler_stop, dialler_stopped) = tokio::sync::watch::channel(false);
    let dial_metrics = Arc::new(pacing::dialer::DialMetrics::default());
    let api = match config.api.listen {
        Some(addr) => {
            let sip = api::SipSide {
                gate: core.gate_metrics(),
                caller_id: Arc::new(api::caller_id::PoolNumbers::from_config(
                    &config.caller_id.caller_id,
                )),
                dialler: dial_metrics.clone(),
            };
            Some(spawn_api(addr, &config, store.clone(), exchange, sip).await?)
        }
        None => None,
    };
    // Flags only matter to local presence: without a pool there is nothing
    // to read.
    let (flags_tx, mut flags_rx) = mpsc::unbounded_channel::<Vec<CallerIdFlag>>();
    if config
        .caller_id
        .caller_id
        .enterprises
        .iter()
        .any(|e| !e.pool.is_empty())
    {
        // Read before the first call, so a restart never forgets a flag;
        // a failure here is retried by the reader.
        match store.caller_id_flags(chrono::Utc::now()).await {
            Ok(flags) => {
                info!(flagged = flags.len(), "caller ID flags loaded");
                core.set_caller_id_flags(&flags);
            }
            Err(e) => warn!(error = %e, "cannot read caller ID flags yet"),
        }
        spawn_caller_id_flags(store.clone(), flags_tx);
    }
    // Requests created before a restart, or by another node, are found by
    // the dispatcher's first scan.
    let prompts =
        rcs::service::spawn_exchange(store.clone(), channels, inbound, config.prompts.clone());
    // Events committed before a crash or by another node are found by the
    // deliverer's first scan: nothing is lost between commit and delivery.
    let deliverer = crm::spawn_deliverer(store.clone(), config.crm.clone())?;
    let mut hub = TcpHub::new(events_tx, config.sip.max_message_size);
    let gatekeeper = Gatekeeper::new(store.clone(), config.gate.clone(), config.prompts.clone());
    let (gate_tx, mut gate_rx) = mpsc::unbounded_channel::<GateEvent>();
    if config.gate.enabled {
        spawn_hold_wakes(&store, gate_tx.clone()).await?;
    }
    let dialler = config.pacing.enabled.then(|| {
        pacing::dialer::spawn(
            store.clone(),
            config.pacing.clone(),
            dial_tx,
            placed_rx,
            dialler_stopped,
            dial_metrics.clone(),
        )
    });
    let (recorder, recorder_handle) =
        spawn_recorder(store, config.store.batch_size, config.store.flush_interval);

    info!(
        udp = %config.sip.udp_listen,
        tcp = ?config.sip.tcp_listen,
        trunk = %config.trunk.address,
        "slotgate is listening"
    );

    let mut buf = vec![0u8; 65_536];
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let timer = tokio::time::sleep_until(far_future);
    tokio::pin!(timer);
    tokio::pin!(shutdown);
    let mut drain_deadline: Option<Instant> = None;

    loop {
        // Re-arming the tokio timer costs more than a spurious wake-up, and
        // almost every message adds a timer later than the earliest one: only
        // move the wake-up earlier, never later.
        let wake = core
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(far_future);
        if wake < timer.deadline() || timer.is_elapsed() {
            timer.as_mut().reset(wake);
        }
        let drain_at = drain_deadline.unwrap_or(far_future);
        tokio::select! {
            biased;
            _ = &mut shutdown, if drain_deadline.is_none() => {
                info!(active_calls = core.active_calls(), "shutting down: refusing new calls, draining");
                core.start_draining();
                let _ = dialler_stop.send(true);
                drain_deadline = Some(Instant::now() + config.shutdown.drain_timeout);
            }
            _ = tokio::time::sleep_until(drain_at), if drain_deadline.is_some() => {
                warn!(active_calls = core.active_calls(), "drain timeout: ending remaining calls");
                core.terminate_all(std::time::Instant::now());
                flush(&mut core, &udp, &mut hub, &recorder).await;
                break;
            }
            received = udp.recv_from(&mut buf) => {
                let now = std::time::Instant::now();
                if let Ok((n, from)) = received {
                    core.handle_datagram(udp_peer(from), &buf[..n], now);
                }
                for _ in 0..UDP_BATCH {
                    match udp.try_recv_from(&mut buf) {
                        Ok((n, from)) => core.handle_datagram(udp_peer(from), &buf[..n], now),
                        Err(_) => break,
                    }
                }
            }
            Some(event) = events_rx.recv() => {
                let now = std::time::Instant::now();
                match event {
                    StreamEvent::Connected { addr, writer } => hub.on_connected(addr, writer),
                    StreamEvent::Closed { addr } => hub.on_closed(addr),
                    StreamEvent::Message { peer, bytes } => core.handle_stream_message(peer, &bytes, now),
                }
            }
            Some(event) = gate_rx.recv() => {
                on_gate_event(&mut core, event, &gatekeeper, &gate_tx);
            }
            Some(flags) = flags_rx.recv() => {
                core.set_caller_id_flags(&flags);
            }
            Some(command) = dial_rx.recv() => {
                on_dial_command(&mut core, command);
            }
            Some(event) = media_rx.recv() => {
                core.handle_media_event(event, std::time::Instant::now());
            }
            _ = &mut timer => {
                core.handle_timeout(std::time::Instant::now());
            }
        }
        ask_gatekeeper(&mut core, &gatekeeper, &gate_tx);
        while let Some(event) = core.poll_placed_event() {
            let _ = placed_tx.send(event);
        }
        flush(&mut core, &udp, &mut hub, &recorder).await;
        if drain_deadline.is_some() && core.active_calls() == 0 {
            break;
        }
    }
    // Give the last BYEs and responses a moment on the wire.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(api) = api {
        api.stop().await;
    }
    let _ = dialler_stop.send(true);
    if let Some(dialler) = dialler {
        // Outcomes of the last calls are in the channel: let it record them.
        while let Some(event) = core.poll_placed_event() {
            let _ = placed_tx.send(event);
        }
        drop(placed_tx);
        if tokio::time::timeout(Duration::from_secs(5), dialler)
            .await
            .is_err()
        {
            warn!("the dialler did not stop in time");
        }
    }
    prompts.stop().await;
    deliverer.stop().await;
    let unwritten = recorder_handle.shutdown().await;
    if unwritten > 0 {
        warn!(unwritten, "call records could not be written before exit");
    }
    info!("slotgate stopped");
    Ok(())
}

/// Carries out what the dialler asks of the core.
fn on_dial_command(core: &mut Core, command: pacing::dialer::DialCommand) {
    use pacing::dialer::DialCommand;
    let now = std::time::Instant::now();
    match command {
        DialCommand::Place { request, reply } => {
            let _ = reply.send(core.place_call(request, now));
        }
        DialCommand::ConnectAgent {
            call,
            target,
            context,
        } => {
            if let Err(e) = core.connect_agent(call, &target, context, now) {
                warn!(error = %e, "cannot connect an agent");
            }
        }
        DialCommand::PlayAndHangUp {
            call,
            outcome,
            message,
        } => core.play_and_hang_up(call, outcome, message, now),
        DialCommand::HangUp { call, outcome } => core.hang_up(call, outcome, now),
    }
}

/// The enterprise API running beside the SIP side.
struct RunningApi {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApi {
    /// Stops accepting, lets requests in progress finish (for a bounded
    /// time: a stuck client must not hold up the exit).
    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "the API server failed"),
            Ok(Err(e)) => warn!(error = %e, "the API server task failed"),
            Err(_) => warn!("the API server did not stop in time"),
        }
    }
}

/// Binds the API's socket (so a bad address fails the start, like SIP's)
/// and serves it in a task until stopped.
async fn spawn_api(
    addr: SocketAddr,
    config: &Config,
    store: Store,
    exchange: api::Exchange,
    sip: api::SipSide,
) -> Result<RunningApi, RunError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind {
            addr,
            what: "api",
            source,
        })?;
    let local = listener.local_addr().unwrap_or(addr);
    info!(api = %local, "enterprise API is listening");
    let router = api::router_with_sip(store, &config.api, Some(exchange), sip);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Ok(RunningApi { stop, task })
}

/// Re-reads the caller ID flags when this process writes one and every
/// [`CALLER_ID_FLAGS_REFRESH`] (other nodes' writes), and hands them to the
/// SIP loop when they changed. Store reads stay off the SIP loop.
fn spawn_caller_id_flags(store: Store, flags: mpsc::UnboundedSender<Vec<CallerIdFlag>>) {
    let wake = store.caller_id_flag_wakes();
    tokio::spawn(async move {
        let mut last: Option<Vec<CallerIdFlag>> = None;
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(CALLER_ID_FLAGS_REFRESH) => {}
            }
            match store.caller_id_flags(chrono::Utc::now()).await {
                Ok(now) if last.as_ref() == Some(&now) => {}
                Ok(now) => {
                    last = Some(now.clone());
                    if flags.send(now).is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "cannot read caller ID flags"),
            }
        }
    });
}

/// What the gate's store side reports back to the SIP loop.
enum GateEvent {
    Verdict {
        hold_id: String,
        verdict: GateVerdict,
    },
    /// An answer for this hold was stored (`None`: wake-ups were lost,
    /// look at every hold).
    Wake(Option<String>),
    Answer {
        hold_id: String,
        answer: HoldAnswer,
        stored_at: chrono::DateTime<chrono::Utc>,
    },
}

/// Forwards stored answers' wake-ups (this node's and, on PostgreSQL,
/// every node's) into the SIP loop.
async fn spawn_hold_wakes(
    store: &Store,
    events: mpsc::UnboundedSender<GateEvent>,
) -> Result<(), RunError> {
    let mut wakes = store.hold_wakes().await?;
    tokio::spawn(async move {
        while let Some(wake) = wakes.next().await {
            if events.send(GateEvent::Wake(wake)).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Runs the core's gate questions against the store, off the SIP loop.
fn ask_gatekeeper(
    core: &mut Core,
    gatekeeper: &Gatekeeper,
    events: &mpsc::UnboundedSender<GateEvent>,
) {
    while let Some(query) = core.poll_gate_query() {
        let gatekeeper = gatekeeper.clone();
        let events = events.clone();
        match query {
            GateQuery::Decide(req) => {
                tokio::spawn(async move {
                    let verdict = gatekeeper.decide(&req).await;
                    let _ = events.send(GateEvent::Verdict {
                        hold_id: req.hold_id,
                        verdict,
                    });
                });
            }
            GateQuery::Ended { hold_id, forwarded } => {
                tokio::spawn(async move {
                    gatekeeper
                        .hold_ended(&hold_id, forwarded, chrono::Utc::now())
                        .await;
                });
            }
        }
    }
}

fn on_gate_event(
    core: &mut Core,
    event: GateEvent,
    gatekeeper: &Gatekeeper,
    events: &mpsc::UnboundedSender<GateEvent>,
) {
    let now = std::time::Instant::now();
    let read_answer = |hold_id: String| {
        let gatekeeper = gatekeeper.clone();
        let events = events.clone();
        tokio::spawn(async move {
            if let Some((answer, stored_at)) = gatekeeper.answer(&hold_id, chrono::Utc::now()).await
            {
                let _ = events.send(GateEvent::Answer {
                    hold_id,
                    answer,
                    stored_at,
                });
            }
        });
    };
    match event {
        GateEvent::Verdict { hold_id, verdict } => core.handle_gate_verdict(&hold_id, verdict, now),
        GateEvent::Wake(Some(hold_id)) => {
            if core.is_holding(&hold_id) {
                read_answer(hold_id);
            }
        }
        GateEvent::Wake(None) => core.held_ids().into_iter().for_each(read_answer),
        GateEvent::Answer {
            hold_id,
            answer,
            stored_at,
        } => {
            let now_answer = answer == HoldAnswer::Now;
            if !core.handle_hold_answer(&hold_id, answer, stored_at, now) && now_answer {
                // The window closed while the answer was read: the PBX
                // heard no; the person's "now" becomes a callback.
                let gatekeeper = gatekeeper.clone();
                tokio::spawn(async move {
                    gatekeeper.missed_now(&hold_id, chrono::Utc::now()).await;
                });
            }
        }
    }
}

fn udp_peer(addr: SocketAddr) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr,
    }
}

/// Moves everything the core produced onto sockets and into the recorder.
async fn flush(core: &mut Core, udp: &UdpSocket, hub: &mut TcpHub, recorder: &CallRecorder) {
    while let Some(t) = core.poll_transmit() {
        match t.peer.transport {
            Transport::Udp => match udp.try_send_to(&t.bytes, t.peer.addr) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = udp.send_to(&t.bytes, t.peer.addr).await;
                }
                Err(e) => tracing::debug!(to = %t.peer.addr, error = %e, "UDP send failed"),
            },
            Transport::Tcp => hub.send(t.peer.addr, t.bytes),
        }
    }
    while let Some(record) = core.poll_record() {
        recorder.record(record);
    }
}
