//! The headless collector: accept trainers (Rust's `train --connect`, Python's
//! `gatescope.Writer(connect=…)`) and write what each one streams to a recording file.
//!
//! For a cluster's head node or a machine without a display: run `gatescope collect` there,
//! open the files later. It is the viewer's receiver ([`Listener`]) with a file per peer
//! instead of a window.
//!
//! Naming: each connection takes the first free name of `OUT`, `STEM-2.EXT`, `STEM-3.EXT`, …
//! (`runs/ddp.gsrec`, `runs/ddp-2.gsrec`, …). No file is ever overwritten. A file is created
//! when its peer's header arrives, and every complete frame after it is appended and flushed,
//! so a peer that dies mid-frame leaves a file with everything before that frame.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::record::Writer;
use crate::snapshot::Message;
use crate::stream::{Listener, StreamEvent};

/// What the collector tells its caller, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectEvent {
    Listening(SocketAddr),
    /// A peer's header arrived: its snapshots go to `path`.
    Recording {
        peer: SocketAddr,
        path: PathBuf,
        source: String,
    },
    Snapshot {
        peer: SocketAddr,
        step: u64,
        written: u64,
    },
    /// A peer went away (`error`: why, when it was not a clean close).
    Closed {
        peer: SocketAddr,
        written: u64,
        dropped: u64,
        error: Option<String>,
    },
    /// A frame could not be written (the disk): the peer's file stops here.
    WriteFailed {
        peer: SocketAddr,
        path: PathBuf,
        error: String,
    },
}

/// One file per finished or open connection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedFile {
    pub path: PathBuf,
    pub peer: SocketAddr,
    pub snapshots: u64,
    /// Snapshots the sender reported dropping for a slow collector.
    pub dropped: u64,
    /// Why the connection ended badly, if it did.
    pub error: Option<String>,
}

/// How a collection runs.
#[derive(Debug, Clone)]
pub struct CollectOpts {
    pub addr: String,
    pub out: PathBuf,
    /// Stop once the first peer that sent a header has gone.
    pub once: bool,
}

struct Peer {
    writer: Option<Writer<BufWriter<File>>>,
    file: Option<CollectedFile>,
}

/// The `n`-th name of the scheme (1: `out` itself).
pub fn numbered(out: &Path, n: usize) -> PathBuf {
    if n <= 1 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match out.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    out.with_file_name(name)
}

/// The first name of the scheme that no file (and no earlier connection) has taken.
fn free_name(out: &Path, taken: &[PathBuf]) -> PathBuf {
    (1..).map(|n| numbered(out, n)).find(|p| !p.exists() && !taken.contains(p)).expect("some name is free")
}

/// Listens until `stop` is set (or, with `once`, the first peer has gone); every file written.
pub fn run(opts: &CollectOpts, stop: &AtomicBool, mut on_event: impl FnMut(&CollectEvent)) -> anyhow::Result<Vec<CollectedFile>> {
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let (listener, rx) = Listener::channel(&opts.addr)?;
    on_event(&CollectEvent::Listening(listener.addr));
    let mut peers: HashMap<SocketAddr, Peer> = HashMap::new();
    let mut done: Vec<CollectedFile> = Vec::new();
    let mut taken: Vec<PathBuf> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(event) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
        match event {
            StreamEvent::Connected { peer } => {
                peers.insert(peer, Peer { writer: None, file: None });
            }
            StreamEvent::Message { peer, message } => {
                let p = peers.entry(peer).or_insert(Peer { writer: None, file: None });
                if let Some(e) = handle_message(p, peer, message, &opts.out, &mut taken) {
                    on_event(&e);
                }
            }
            StreamEvent::Disconnected { peer, error } => {
                let Some(mut p) = peers.remove(&peer) else {
                    on_event(&CollectEvent::Closed { peer, written: 0, dropped: 0, error });
                    continue;
                };
                drop(p.writer.take());
                let (written, dropped) = p.file.as_ref().map_or((0, 0), |f| (f.snapshots, f.dropped));
                on_event(&CollectEvent::Closed { peer, written, dropped, error: error.clone() });
                if let Some(mut f) = p.file {
                    f.error = f.error.or(error);
                    done.push(f);
                    if opts.once {
                        break;
                    }
                }
            }
        }
    }
    drop(listener);
    // connections still open: their files hold every frame that arrived whole
    done.extend(peers.into_values().filter_map(|p| p.file));
    Ok(done)
}

fn handle_message(p: &mut Peer, peer: SocketAddr, message: Message, out: &Path, taken: &mut Vec<PathBuf>) -> Option<CollectEvent> {
    match message {
        Message::Header(h) => {
            // a reconnecting sender starts over with its header: a new file
            let path = free_name(out, taken);
            taken.push(path.clone());
            let source = h.source.clone();
            match Writer::create(&path, &h) {
                Ok(w) => {
                    p.writer = Some(w);
                    p.file = Some(CollectedFile { path: path.clone(), peer, snapshots: 0, dropped: 0, error: None });
                    Some(CollectEvent::Recording { peer, path, source })
                }
                Err(e) => Some(CollectEvent::WriteFailed { peer, path, error: format!("{e:#}") }),
            }
        }
        Message::Snapshot(s) => {
            let (w, f) = (p.writer.as_mut()?, p.file.as_mut()?);
            let step = s.step;
            if let Err(e) = w.write(&Message::Snapshot(s)) {
                p.writer = None;
                f.error = Some(format!("writing {}: {e}", f.path.display()));
                return Some(CollectEvent::WriteFailed { peer, path: f.path.clone(), error: e.to_string() });
            }
            f.snapshots += 1;
            Some(CollectEvent::Snapshot { peer, step, written: f.snapshots })
        }
        Message::Dropped(n) => {
            let (w, f) = (p.writer.as_mut()?, p.file.as_mut()?);
            if n != f.dropped {
                f.dropped = n;
                let _ = w.write(&Message::Dropped(n)); // keeps the sender's count in the file
            }
            None
        }
    }
}
