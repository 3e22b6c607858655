//! The socket shell: UDP and TCP in, framed messages out to the engine, and
//! bytes from the engine back onto the right socket.
//!
//! Only this file does network I/O. TCP connections each get a reader task
//! (which frames the stream and closes the connection on a framing error,
//! since the rest of the stream can no longer be trusted) and a writer fed by
//! a channel; the engine addresses them by the peer's socket address.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::debug;

use super::framing::{frame_stream, StreamFrame};
use super::transaction::{Peer, Transport};

/// What the TCP tasks tell the engine.
#[derive(Debug)]
pub enum StreamEvent {
    Connected {
        addr: SocketAddr,
        writer: mpsc::UnboundedSender<Bytes>,
    },
    Message {
        peer: Peer,
        bytes: Bytes,
    },
    Closed {
        addr: SocketAddr,
    },
}

/// Binds the UDP socket with buffers sized for bursts of thousands of
/// datagrams per second.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// The engine's view of open TCP connections.
pub struct TcpHub {
    conns: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    events: mpsc::Sender<StreamEvent>,
    max_message: usize,
}

impl TcpHub {
    pub fn new(events: mpsc::Sender<StreamEvent>, max_message: usize) -> TcpHub {
        TcpHub {
            conns: HashMap::new(),
            events,
            max_message,
        }
    }

    pub fn on_connected(&mut self, addr: SocketAddr, writer: mpsc::UnboundedSender<Bytes>) {
        self.conns.insert(addr, writer);
    }

    pub fn on_closed(&mut self, addr: SocketAddr) {
        if self.conns.get(&addr).is_some_and(|w| w.is_closed()) {
            self.conns.remove(&addr);
        }
    }

    /// Sends on the connection to `addr`, opening one if there is none.
    pub fn send(&mut self, addr: SocketAddr, bytes: Bytes) {
        if let Some(w) = self.conns.get(&addr) {
            if w.send(bytes.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(bytes);
        self.conns.insert(addr, tx);
        let events = self.events.clone();
        let max = self.max_message;
        tokio::spawn(async move {
            match TcpStream::connect(addr).await {
                Ok(stream) => run_connection(stream, addr, events, rx, max).await,
                Err(e) => {
                    debug!(%addr, error = %e, "TCP connect failed");
                    drop(rx);
                    let _ = events.send(StreamEvent::Closed { addr }).await;
                }
            }
        });
    }
}

/// Accepts connections until the listener fails.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<StreamEvent>, max: usize) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if events
            .send(StreamEvent::Connected { addr, writer: tx })
            .await
            .is_err()
        {
            return;
        }
        tokio::spawn(run_connection(stream, addr, events.clone(), rx, max));
    }
}

async fn run_connection(
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<StreamEvent>,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    max: usize,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        outgoing.close();
    });
    let peer = Peer {
        transport: Transport::Tcp,
        addr,
    };
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match frame_stream(&buf, max) {
                Ok(StreamFrame::KeepAlive(n)) => {
                    let _ = buf.split_to(n);
                }
                Ok(StreamFrame::Incomplete) => break,
                Ok(StreamFrame::Message { len }) => {
                    let bytes = buf.split_to(len).freeze();
                    if events
                        .send(StreamEvent::Message { peer, bytes })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Err(e) => {
                    debug!(%addr, error = %e, "closing TCP connection: unframeable stream");
                    break 'read;
                }
            }
        }
    }
    write_task.abort();
    let _ = write_task.await;
    let _ = events.send(StreamEvent::Closed { addr }).await;
}
