//! What the viewer shows: one run's header and snapshots, from a file, a socket, an in-process
//! trainer or a probed model. Plain data.

use crate::record::Recording;
use crate::snapshot::{Header, Message, Snapshot};

#[derive(Default)]
pub struct Store {
    pub header: Option<Header>,
    pub snapshots: Vec<Snapshot>,
    /// Snapshots a stream dropped for us (a slow viewer).
    pub dropped: u64,
    /// Where the data came from, for the title bar.
    pub source: String,
    pub torn_tail: Option<String>,
    /// Bumped whenever the data is replaced (not when a snapshot is appended).
    pub generation: u64,
}

impl Store {
    pub fn from_recording(rec: Recording, source: String) -> Self {
        Store {
            header: Some(rec.header),
            snapshots: rec.snapshots,
            dropped: rec.dropped,
            source,
            torn_tail: rec.torn_tail.map(|t| t.to_string()),
            generation: 0,
        }
    }

    /// Replaces everything (a new file or run), keeping the generation counter rising.
    pub fn replace(&mut self, other: Store) {
        let g = self.generation + 1;
        *self = other;
        self.generation = g;
    }

    /// Applies a streamed message. A header different from the current one starts a new run.
    /// Returns true if a snapshot was added.
    pub fn apply(&mut self, msg: Message, source: &str) -> bool {
        match msg {
            Message::Header(h) => {
                if self.header.as_ref() != Some(&*h) {
                    self.replace(Store { header: Some(*h), source: source.to_string(), ..Default::default() });
                }
                false
            }
            Message::Snapshot(s) => {
                if self.header.is_none() {
                    return false;
                }
                if let Some(last) = self.snapshots.last() {
                    if s.step <= last.step {
                        return false; // a repeat after a reconnect
                    }
                }
                self.snapshots.push(*s);
                true
            }
            Message::Dropped(n) => {
                self.dropped = n;
                false
            }
        }
    }

    /// Moves the data out, leaving an empty store that keeps the generation counter.
    pub fn take(&mut self) -> Store {
        let g = self.generation;
        let out = std::mem::take(self);
        self.generation = g;
        out
    }

    pub fn class_names(&self) -> Vec<String> {
        self.header.as_ref().map(|h| h.class_names().to_vec()).unwrap_or_default()
    }
}
