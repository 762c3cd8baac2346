//! Capture: when a training run takes snapshots, and where they go (a recording file, a
//! viewer's socket, an in-process queue). It is a [`train::Observer`], so the trainer knows
//! nothing of probes or files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::Model;
use crate::probe::{self, ProbeSet, Progress};
use crate::record::Writer;
use crate::snapshot::{Header, Message};
use crate::stream::{Queue, SocketSink};
use crate::train::{BatchStats, EpochStats, Observer};

pub use crate::recipe::Cadence;

/// Where snapshots go.
#[derive(Default)]
pub struct Sinks {
    pub file: Option<(PathBuf, Writer<std::io::BufWriter<std::fs::File>>)>,
    pub socket: Option<SocketSink>,
    pub queue: Option<Queue>,
}

impl Sinks {
    /// Opens the requested sinks and sends them the header.
    pub fn open(header: &Header, record: Option<&std::path::Path>, connect: Option<&str>, queue: Option<Queue>) -> anyhow::Result<Self> {
        let file = match record {
            Some(p) => Some((p.to_path_buf(), Writer::create(p, header)?)),
            None => None,
        };
        let socket = match connect {
            Some(addr) => Some(SocketSink::connect(addr, header.clone())?),
            None => None,
        };
        if let Some(q) = &queue {
            q.push(Arc::new(Message::Header(Box::new(header.clone()))));
        }
        Ok(Sinks { file, socket, queue })
    }

    pub fn send(&mut self, msg: Message) -> anyhow::Result<()> {
        let msg = Arc::new(msg);
        if let Some((path, w)) = &mut self.file {
            w.write(&msg).map_err(|e| anyhow::anyhow!("writing recording {}: {e}", path.display()))?;
        }
        if let Some(s) = &self.socket {
            s.send(msg.clone());
        }
        if let Some(q) = &self.queue {
            q.push(msg);
        }
        Ok(())
    }

    /// Snapshots the stream dropped for a slow or absent viewer.
    pub fn dropped(&self) -> u64 {
        self.socket.as_ref().map_or(0, |s| s.dropped()) + self.queue.as_ref().map_or(0, |q| q.dropped())
    }

    /// Flushes and closes the sinks; what the socket did, if there was one.
    pub fn finish(self) -> Option<crate::stream::StreamStats> {
        if let Some(q) = self.queue {
            q.close();
        }
        self.socket.map(|s| s.finish(Duration::from_secs(2)))
    }
}

/// Takes snapshots during training at a cadence (always at step 0 and at the end).
pub struct Capture {
    pub probe: ProbeSet,
    pub cadence: Cadence,
    pub sinks: Sinks,
    batches_per_epoch: usize,
    loss_sum: f64,
    correct_sum: f64,
    batches: usize,
    last_step: Option<usize>,
    pub snapshots: usize,
    /// Seconds spent probing and writing.
    pub seconds: f64,
}

impl Capture {
    pub fn new(probe: ProbeSet, cadence: Cadence, sinks: Sinks) -> Self {
        Capture {
            probe,
            cadence,
            sinks,
            batches_per_epoch: 1,
            loss_sum: 0.0,
            correct_sum: 0.0,
            batches: 0,
            last_step: None,
            snapshots: 0,
            seconds: 0.0,
        }
    }

    fn take(&mut self, model: &Model, step: usize, test_accuracy: Option<f64>) -> anyhow::Result<()> {
        if self.last_step == Some(step) {
            return Ok(());
        }
        let t = std::time::Instant::now();
        let n = self.batches.max(1) as f64;
        let nan_if_none = |v: f64| if self.batches == 0 { f64::NAN } else { v / n };
        let progress = Progress {
            step: step as u64,
            epoch: step as f64 / self.batches_per_epoch as f64,
            train_loss: nan_if_none(self.loss_sum),
            train_accuracy: nan_if_none(self.correct_sum),
            test_accuracy,
        };
        let snap = probe::snapshot(model, &self.probe, progress, None);
        self.sinks.send(Message::Snapshot(Box::new(snap)))?;
        (self.loss_sum, self.correct_sum, self.batches) = (0.0, 0.0, 0);
        self.last_step = Some(step);
        self.snapshots += 1;
        self.seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Observer for Capture {
    fn on_start(&mut self, _epochs: usize, batches_per_epoch: usize, model: &Model) -> anyhow::Result<()> {
        self.batches_per_epoch = batches_per_epoch.max(1);
        self.take(model, 0, None)
    }
    fn on_batch(&mut self, s: &BatchStats, model: &Model) -> anyhow::Result<()> {
        self.loss_sum += s.loss;
        self.correct_sum += s.accuracy;
        self.batches += 1;
        match self.cadence {
            Cadence::Steps(n) if s.step.is_multiple_of(n) => self.take(model, s.step, None),
            _ => Ok(()),
        }
    }
    fn on_epoch(&mut self, e: &EpochStats, model: &Model) -> anyhow::Result<()> {
        match self.cadence {
            Cadence::Epochs(n) if (e.epoch + 1).is_multiple_of(n) => self.take(model, e.step, Some(e.test_accuracy)),
            _ => Ok(()),
        }
    }
    fn on_finish(&mut self, model: &Model, step: usize, _epoch: f64) -> anyhow::Result<()> {
        self.take(model, step, None)
    }
}

/// Forwards every observer call to two observers (e.g. progress bars and a capture).
pub struct Both<'a, A: Observer + ?Sized, B: Observer + ?Sized>(pub &'a mut A, pub &'a mut B);

impl<A: Observer + ?Sized, B: Observer + ?Sized> Observer for Both<'_, A, B> {
    fn on_start(&mut self, e: usize, b: usize, m: &Model) -> anyhow::Result<()> {
        self.0.on_start(e, b, m)?;
        self.1.on_start(e, b, m)
    }
    fn on_batch(&mut self, s: &BatchStats, m: &Model) -> anyhow::Result<()> {
        self.0.on_batch(s, m)?;
        self.1.on_batch(s, m)
    }
    fn on_epoch(&mut self, e: &EpochStats, m: &Model) -> anyhow::Result<()> {
        self.0.on_epoch(e, m)?;
        self.1.on_epoch(e, m)
    }
    fn on_finish(&mut self, m: &Model, s: usize, e: f64) -> anyhow::Result<()> {
        self.0.on_finish(m, s, e)?;
        self.1.on_finish(m, s, e)
    }
}
