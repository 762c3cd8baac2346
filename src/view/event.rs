//! Everything that reaches the viewer from outside (an opened file, a model session's reply,
//! a trainer on a socket, the in-viewer trainer) comes as one [`Event`] through one channel,
//! which the app drains once per frame. Senders wake the UI after each event.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use crate::probe::ProbeSet;
use crate::record::Recording;
use crate::report::{LesionReport, Report};
use crate::session::{Loaded, SampleTrace};
use crate::snapshot::Message;
use crate::stream::StreamEvent;

/// Where an opened file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The run the views show.
    Main,
    /// The second run of the comparison (B).
    Other,
}

/// A file opened for the viewer: a model comes with what its weights alone show (the gate
/// biases) and the probe set built for that, which its session then probes it over.
pub enum Opened {
    Recording(Recording),
    Model(Recording, Box<Loaded>, Box<ProbeSet>),
    Report(Report),
}

/// A run the viewer's training panel finished (or stopped): where it was kept, and its model,
/// open.
pub struct TrainedRun {
    pub summary: String,
    pub recording: PathBuf,
    pub model_path: PathBuf,
    pub model: Box<Loaded>,
}

/// What the viewer asks of an open model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Request {
    /// Trace training example i (with the current lesion, if any).
    Trace(usize),
    /// Close all gates of one layer (or none) and probe again.
    Lesion(Option<usize>),
    /// Lesion every layer in turn on the full training and test sets (Figure 4).
    LesionAll,
    /// Probe the model (with the current lesion) and show the result.
    Probe,
}

/// What an open model answers.
pub enum Reply {
    Trace(SampleTrace),
    /// A fresh probe of the model with `lesion` applied.
    Probed {
        recording: Box<Recording>,
        lesion: Option<usize>,
    },
    Lesions(LesionReport),
    /// Progress of `LesionAll`: steps done of the total, and Figure 4 over the examples done
    /// so far, where the analysis sums as it goes.
    Progress {
        done: usize,
        total: usize,
        so_far: Option<Box<LesionReport>>,
    },
    /// Progress of a probe pass: (examples done, total).
    Probing(usize, usize),
    /// A probe pass was cancelled.
    ProbeCancelled,
    /// A lesion analysis (`LesionAll`) was cancelled.
    LesionsCancelled,
}

pub enum Event {
    /// A file opened on a worker thread (or the error that stopped it).
    Opened { path: PathBuf, slot: Slot, result: anyhow::Result<Box<Opened>> },
    /// An open model's answer; `session` tells a current session from one replaced since.
    Model { session: u64, reply: anyhow::Result<Reply> },
    /// A trainer streaming over a socket.
    Stream(StreamEvent),
    /// A message of the in-viewer trainer.
    Trained(Arc<Message>),
    /// The in-viewer trainer finished (where it kept the run) or failed.
    TrainingDone(anyhow::Result<Box<TrainedRun>>),
    /// The model of an opened recording, found beside it and checked (None: there is none).
    Attached { recording: PathBuf, result: anyhow::Result<Option<(PathBuf, Box<Loaded>)>> },
}

type Wake = Arc<dyn Fn() + Send + Sync>;

/// The sending end: cloned into every worker thread, listener and trainer.
#[derive(Clone)]
pub struct Events {
    tx: Arc<Mutex<mpsc::Sender<Event>>>,
    /// Shared by all clones, so that one set late reaches senders made before.
    wake: Arc<Mutex<Option<Wake>>>,
}

impl Events {
    /// A channel; its senders wake the UI (see [`Events::set_wake`]) after each event.
    pub fn channel() -> (Events, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (Events { tx: Arc::new(Mutex::new(tx)), wake: Arc::new(Mutex::new(None)) }, rx)
    }

    /// Sends `e` and wakes the UI; false once the viewer is gone.
    pub fn send(&self, e: Event) -> bool {
        let ok = self.tx.lock().map(|t| t.send(e).is_ok()).unwrap_or(false);
        let wake = self.wake.lock().ok().and_then(|w| w.clone());
        if let Some(wake) = wake {
            wake();
        }
        ok
    }

    /// Sets the function that wakes the UI (a repaint request), for every clone.
    pub fn set_wake(&self, wake: Wake) {
        if let Ok(mut w) = self.wake.lock() {
            *w = Some(wake);
        }
    }

    /// Hands a listener's events to this channel.
    pub fn stream_sink(&self) -> crate::stream::EventSink {
        let me = self.clone();
        Arc::new(move |e| me.send(Event::Stream(e)))
    }
}
