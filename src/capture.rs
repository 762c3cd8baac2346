//! Capture: when a training run takes snapshots, and where they go (a recording file, a
//! viewer's socket, an in-process queue). It is a [`train::Observer`], so the trainer knows
//! nothing of probes or files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{cpu, Model};
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
///
/// The trainer only hands each snapshot over, as a copy of the parameters, and goes on: a
/// thread of its own ([`Prober`]) probes the copies and writes their frames, in order, at the
/// lowest priority, so that it runs on the cores the training step leaves idle (between a
/// step's shards, while the batch is gathered and the optimiser updates). At most
/// [`PENDING`] snapshots wait for it; the trainer waits when more would, and then the prober
/// has the cores to itself. What a snapshot shows does not depend on when it is probed: it is
/// of the parameters at its step, with that step's figures.
pub struct Capture {
    pub cadence: Cadence,
    prober: Prober,
    batches_per_epoch: usize,
    loss_sum: f64,
    correct_sum: f64,
    batches: usize,
    last_step: Option<usize>,
    /// Seconds the trainer spent handing snapshots over: copying the parameters, and waiting
    /// while [`PENDING`] were pending.
    seconds: f64,
}

/// Snapshots that may wait for the prober while the trainer goes on.
pub const PENDING: usize = 1;

/// What a finished capture did.
pub struct Captured {
    pub snapshots: usize,
    /// Seconds the trainer spent handing snapshots over (see [`Capture::seconds`]).
    pub handover_seconds: f64,
    /// Seconds the prober spent probing and writing, beside the training.
    pub probe_seconds: f64,
    /// What the stream to a viewer did, if there was one.
    pub stream: Option<crate::stream::StreamStats>,
}

impl Capture {
    /// Starts the prober over `probe`, writing to `sinks`; the probe passes of the CPU kernels
    /// run on this thread's [`cpu::threads`].
    pub fn new(probe: ProbeSet, cadence: Cadence, sinks: Sinks) -> anyhow::Result<Self> {
        Ok(Capture {
            cadence,
            prober: Prober::start(probe, sinks, cpu::threads())?,
            batches_per_epoch: 1,
            loss_sum: 0.0,
            correct_sum: 0.0,
            batches: 0,
            last_step: None,
            seconds: 0.0,
        })
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
        let copy = tch::no_grad(|| Model::from_flat(model.arch.clone(), model.flat.copy()))?;
        self.prober.send(copy, progress)?;
        (self.loss_sum, self.correct_sum, self.batches) = (0.0, 0.0, 0);
        self.last_step = Some(step);
        self.seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    /// Waits for the prober to write every snapshot handed over, then closes the sinks; the
    /// prober's error, unless the trainer was given it already.
    pub fn finish(self) -> anyhow::Result<Captured> {
        let (worker, result) = self.prober.finish();
        let stream = worker.sinks.finish();
        result?;
        Ok(Captured { snapshots: worker.snapshots, handover_seconds: self.seconds, probe_seconds: worker.seconds, stream })
    }
}

/// A snapshot to take: the parameters at its step, and the step's figures.
struct Job {
    model: Model,
    progress: Progress,
}

/// The thread that probes and writes a capture's snapshots, one at a time, in the order they
/// were handed over.
struct Prober {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<(Worker, anyhow::Result<()>)>>,
    /// The prober's state once its thread has ended.
    ended: Option<Worker>,
}

/// What the prober owns: the probe set and the sinks, and what it has done.
struct Worker {
    probe: ProbeSet,
    sinks: Sinks,
    snapshots: usize,
    seconds: f64,
}

impl Prober {
    fn start(probe: ProbeSet, sinks: Sinks, threads: usize) -> anyhow::Result<Prober> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(PENDING);
        let mut worker = Worker { probe, sinks, snapshots: 0, seconds: 0.0 };
        let thread = std::thread::Builder::new().name("gatescope-prober".into()).spawn(move || {
            lowest_priority();
            let _kernels = cpu::Threads::set(threads);
            for job in queue {
                let t = std::time::Instant::now();
                let snap = probe::snapshot(&job.model, &worker.probe, job.progress, None);
                if let Err(e) = worker.sinks.send(Message::Snapshot(Box::new(snap))) {
                    return (worker, Err(e));
                }
                worker.snapshots += 1;
                worker.seconds += t.elapsed().as_secs_f64();
            }
            (worker, Ok(()))
        })?;
        Ok(Prober { jobs: Some(jobs), thread: Some(thread), ended: None })
    }

    /// Hands a snapshot over (waiting while [`PENDING`] are pending); the prober's error if it
    /// has stopped on one.
    fn send(&mut self, model: Model, progress: Progress) -> anyhow::Result<()> {
        if self.jobs.as_ref().is_some_and(|jobs| jobs.send(Job { model, progress }).is_ok()) {
            return Ok(());
        }
        self.join()?;
        anyhow::bail!("the prober has stopped")
    }

    /// Ends the prober once its queue is done; its error, the first time only (an error is
    /// reported once).
    fn join(&mut self) -> anyhow::Result<()> {
        self.jobs = None;
        let Some(thread) = self.thread.take() else { return Ok(()) };
        let (worker, result) = thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        self.ended = Some(worker);
        result
    }

    fn finish(mut self) -> (Worker, anyhow::Result<()>) {
        let result = self.join();
        (self.ended.expect("the prober's thread has ended"), result)
    }
}

/// Puts this thread (and the threads it starts) at the lowest priority: on Linux SCHED_IDLE,
/// which runs only on a core that nothing else wants and gives way as soon as something does.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on this thread (pid 0); failing leaves the priority as it was
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
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
