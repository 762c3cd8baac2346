//! Transport: the recording's frames over a TCP socket, and the same [`Message`]s through an
//! in-process queue. Nothing here waits on a slow reader: the trainer side pushes into a
//! bounded [`Queue`] that coalesces (drops the oldest snapshot) when full, and counts drops.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::record::{self, Decoder};
use crate::snapshot::{Header, Message};

/// The port `view --listen` and `train --connect` use by default.
pub const DEFAULT_PORT: u16 = 7817;
pub const DEFAULT_ADDR: &str = "127.0.0.1:7817";

/// Snapshots a queue holds before it starts dropping the oldest.
pub const QUEUE_CAPACITY: usize = 4;

#[derive(Default)]
struct QueueState {
    items: VecDeque<Arc<Message>>,
    dropped: u64,
    closed: bool,
}

/// A bounded multi-producer queue that never blocks the producer: when full, the oldest
/// message is dropped (and counted).
#[derive(Clone)]
pub struct Queue {
    inner: Arc<(Mutex<QueueState>, Condvar)>,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Queue { inner: Arc::new((Mutex::new(QueueState::default()), Condvar::new())), capacity: capacity.max(1) }
    }

    /// Adds a message; drops the oldest if the queue is full. Never blocks on the reader.
    pub fn push(&self, msg: Arc<Message>) {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock().expect("queue lock");
        if s.items.len() >= self.capacity {
            s.items.pop_front();
            s.dropped += 1;
        }
        s.items.push_back(msg);
        cv.notify_one();
    }

    /// Waits up to `timeout` for a message. `None` on timeout or when closed and empty.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<Arc<Message>> {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock().expect("queue lock");
        if s.items.is_empty() && !s.closed {
            s = cv.wait_timeout(s, timeout).expect("queue lock").0;
        }
        s.items.pop_front()
    }

    pub fn try_pop(&self) -> Option<Arc<Message>> {
        self.inner.0.lock().expect("queue lock").items.pop_front()
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner.0.lock().expect("queue lock").dropped
    }

    pub fn close(&self) {
        let (lock, cv) = &*self.inner;
        lock.lock().expect("queue lock").closed = true;
        cv.notify_all();
    }

    pub fn is_closed_and_empty(&self) -> bool {
        let s = self.inner.0.lock().expect("queue lock");
        s.closed && s.items.is_empty()
    }
}

/// Streams a run's messages to a viewer at `addr`, reconnecting when the viewer goes away.
/// Each (re)connection starts with the preamble and the header, then the next snapshots.
pub struct SocketSink {
    queue: Queue,
    thread: Option<JoinHandle<()>>,
    connected: Arc<AtomicBool>,
    stats: Arc<Counters>,
    addr: SocketAddr,
}

/// What a sink did, counted by its thread.
#[derive(Debug, Default)]
struct Counters {
    connections: std::sync::atomic::AtomicUsize,
    sent: std::sync::atomic::AtomicU64,
}

/// What a stream did: for an honest summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    pub addr: SocketAddr,
    /// Times a viewer was reached (more than one: it reconnected).
    pub connections: usize,
    /// Snapshots written to a viewer.
    pub sent: u64,
    /// Snapshots dropped for a slow or absent viewer.
    pub dropped: u64,
}

impl SocketSink {
    pub fn connect(addr: &str, header: Header) -> anyhow::Result<Self> {
        let addr: SocketAddr = addr
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("--connect {addr}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("--connect {addr}: no address"))?;
        let queue = Queue::new(QUEUE_CAPACITY);
        let connected = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Counters::default());
        let (q, c, st) = (queue.clone(), connected.clone(), stats.clone());
        let header_frame = record::encode(&Message::Header(Box::new(header)));
        let thread =
            std::thread::Builder::new().name("gatescope-stream".into()).spawn(move || socket_loop(addr, &header_frame, &q, &c, &st))?;
        Ok(SocketSink { queue, thread: Some(thread), connected, stats, addr })
    }

    pub fn send(&self, msg: Arc<Message>) {
        self.queue.push(msg);
    }

    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// What the sink did so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            addr: self.addr,
            connections: self.stats.connections.load(Ordering::Relaxed),
            sent: self.stats.sent.load(Ordering::Relaxed),
            dropped: self.dropped(),
        }
    }

    /// Sends what is queued (waiting at most `grace` for a viewer), then stops; what it did.
    pub fn finish(mut self, grace: Duration) -> StreamStats {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + grace;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        // what never left the queue was not streamed either
        let unsent = std::iter::from_fn(|| self.queue.try_pop()).filter(|m| matches!(**m, Message::Snapshot(_))).count() as u64;
        let mut stats = self.stats();
        stats.dropped += unsent;
        stats
    }
}

/// A connected sender with nothing to send writes a `dropped` frame this often, so that a
/// listener can tell a quiet trainer from a dead or stalled peer.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

fn socket_loop(addr: SocketAddr, header_frame: &[u8], queue: &Queue, connected: &AtomicBool, stats: &Counters) {
    let mut stream: Option<TcpStream> = None;
    let mut sent_dropped = 0u64;
    let mut last_write = std::time::Instant::now();
    loop {
        if stream.is_none() {
            if queue.is_closed_and_empty() {
                return;
            }
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    let ok = s.write_all(&record::preamble()).and_then(|_| s.write_all(header_frame));
                    if ok.is_ok() {
                        last_write = std::time::Instant::now();
                        stream = Some(s);
                        connected.store(true, Ordering::Relaxed);
                        stats.connections.fetch_add(1, Ordering::Relaxed);
                        sent_dropped = u64::MAX; // resend the drop count on a new connection
                    }
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            }
            continue;
        }
        let Some(msg) = queue.pop_timeout(Duration::from_millis(200)) else {
            if queue.is_closed_and_empty() {
                return;
            }
            if last_write.elapsed() >= HEARTBEAT {
                let beat = record::encode(&Message::Dropped(queue.dropped()));
                if stream.as_mut().is_some_and(|s| s.write_all(&beat).is_err()) {
                    stream = None;
                    connected.store(false, Ordering::Relaxed);
                }
                last_write = std::time::Instant::now();
            }
            continue;
        };
        let s = stream.as_mut().expect("connected");
        let dropped = queue.dropped();
        let mut frames = Vec::new();
        if dropped != sent_dropped && dropped > 0 {
            frames.extend(record::encode(&Message::Dropped(dropped)));
        }
        frames.extend(record::encode(&msg));
        if s.write_all(&frames).is_err() {
            // the viewer went away: this snapshot is lost, later ones go to the next viewer
            stream = None;
            connected.store(false, Ordering::Relaxed);
        } else {
            sent_dropped = dropped;
            last_write = std::time::Instant::now();
            if matches!(*msg, Message::Snapshot(_)) {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What a listening viewer hears.
#[derive(Debug)]
pub enum StreamEvent {
    Connected {
        peer: SocketAddr,
    },
    Message {
        peer: SocketAddr,
        message: Message,
    },
    /// The trainer closed the connection (`error: None`) or the stream broke.
    Disconnected {
        peer: SocketAddr,
        error: Option<String>,
    },
}

/// Where a listener's events go; false when nobody listens any more.
pub type EventSink = Arc<dyn Fn(StreamEvent) -> bool + Send + Sync>;

/// How much a listener puts up with from its peers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Peers connected at once; more are refused (an event says so) and closed.
    pub max_peers: usize,
    /// A peer that sends nothing for this long is disconnected (senders heartbeat every
    /// [`HEARTBEAT`]).
    pub idle: Duration,
    /// A frame must arrive whole within this long of its first byte.
    pub frame: Duration,
    /// The largest frame a peer may send (what it can make the listener buffer).
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_peers: 8, idle: Duration::from_secs(60), frame: Duration::from_secs(60), max_frame: 64 << 20 }
    }
}

/// Accepts trainers on `addr` and hands their messages, as [`StreamEvent`]s, to a sink.
pub struct Listener {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Binds `addr` (give a loopback address unless others should reach it); every event goes
    /// to `sink`, from the connection's own thread.
    pub fn bind(addr: &str, sink: EventSink) -> anyhow::Result<Self> {
        Self::bind_with(addr, sink, Limits::default())
    }

    /// [`Listener::bind`] with other [`Limits`].
    pub fn bind_with(addr: &str, sink: EventSink, limits: Limits) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let peers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::Builder::new().name("gatescope-listen".into()).spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, peer)) if peers.load(Ordering::SeqCst) >= limits.max_peers => {
                        drop(sock);
                        let error = format!("refused: {} peers are connected already (the limit)", limits.max_peers);
                        sink(StreamEvent::Disconnected { peer, error: Some(error) });
                    }
                    Ok((sock, peer)) => {
                        let (sink, st, peers) = (sink.clone(), st.clone(), peers.clone());
                        peers.fetch_add(1, Ordering::SeqCst);
                        let spawned = std::thread::Builder::new().name(format!("gatescope-peer-{peer}")).spawn(move || {
                            read_peer(sock, peer, &*sink, &st, limits);
                            peers.fetch_sub(1, Ordering::SeqCst);
                        });
                        if spawned.is_err() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
        Ok(Listener { addr: local, stop })
    }

    /// [`Listener::bind`] into a channel, for receivers that poll (tests, headless tools).
    pub fn channel(addr: &str) -> anyhow::Result<(Self, mpsc::Receiver<StreamEvent>)> {
        Self::channel_with(addr, Limits::default())
    }

    /// [`Listener::channel`] with other [`Limits`].
    pub fn channel_with(addr: &str, limits: Limits) -> anyhow::Result<(Self, mpsc::Receiver<StreamEvent>)> {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let l = Listener::bind_with(addr, Arc::new(move |e| tx.lock().map(|t| t.send(e).is_ok()).unwrap_or(false)), limits)?;
        Ok((l, rx))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_peer(mut sock: TcpStream, peer: SocketAddr, send: &(dyn Fn(StreamEvent) -> bool + Send + Sync), stop: &AtomicBool, limits: Limits) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    if !send(StreamEvent::Connected { peer }) {
        return;
    }
    let mut dec = Decoder::with_max_frame(limits.max_frame);
    let mut buf = vec![0u8; 1 << 16];
    let mut last_byte = std::time::Instant::now();
    // when the frame in progress began (None: between frames)
    let mut frame_began: Option<std::time::Instant> = None;
    let error = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        if last_byte.elapsed() > limits.idle {
            break Some(format!(
                "nothing received for {} s: closed (a sender heartbeats every {} s)",
                limits.idle.as_secs(),
                HEARTBEAT.as_secs()
            ));
        }
        if frame_began.is_some_and(|t| t.elapsed() > limits.frame) {
            break Some(format!(
                "a frame did not arrive whole within {} s ({} bytes of it came): closed",
                limits.frame.as_secs(),
                dec.pending()
            ));
        }
        match sock.read(&mut buf) {
            Ok(0) => break (dec.pending() > 0).then(|| format!("stream ended inside a frame ({} bytes)", dec.pending())),
            Ok(n) => {
                last_byte = std::time::Instant::now();
                dec.push(&buf[..n]);
                let mut progressed = false;
                loop {
                    match dec.next() {
                        Ok(Some(message)) => {
                            progressed = true;
                            if !send(StreamEvent::Message { peer, message }) {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = send(StreamEvent::Disconnected { peer, error: Some(e.to_string()) });
                            return;
                        }
                    }
                }
                // a frame completed: whatever is pending now is a new frame
                frame_began = match (dec.pending(), frame_began) {
                    (0, _) => None,
                    (_, Some(t)) if !progressed => Some(t),
                    _ => Some(last_byte),
                };
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    let _ = send(StreamEvent::Disconnected { peer, error });
}
