//! Heavy work the viewer asks for, off the UI thread: opening files, the model session that
//! traces, lesions and re-probes, and the in-viewer trainer. Each runs the shared services
//! (`session`) on a thread and reports through the viewer's one [`Event`] channel.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use super::event::{Event, Events, Opened, Reply, Request, Slot, TrainedRun};
use crate::probe::ProbeSet;
use crate::recipe::{Cadence, DeviceChoice, ProbeOpts, TrainConfig};
use crate::session::{self, CaptureOpts, Loaded};
use crate::snapshot::Header;
use crate::stream::Queue;

pub use crate::session::SampleTrace;

/// Opens `path` on a worker thread into `slot` (the main view, or the comparison's B): the
/// answer comes back as [`Event::Opened`]. A model comes at once with its weight-only maps
/// (gate biases); its session probes it afterwards ([`Request::Probe`]).
pub fn open(path: PathBuf, slot: Slot, events: Events) {
    std::thread::spawn(move || {
        let result = session::open(&path, None, DeviceChoice::Cpu).map(|o| match o {
            session::Opened::Model(m) => {
                let set = m.probe_set(ProbeOpts::default());
                Opened::Model(m.weights_only(&set), m, Box::new(set))
            }
            session::Opened::Recording(r) => Opened::Recording(*r),
            session::Opened::Report(r) => Opened::Report(r),
        });
        events.send(Event::Opened { path, slot, result: result.map(Box::new) });
    });
}

/// Looks for the model of the recording at `path` (named in its header, or beside it) on a
/// worker thread and loads it: the answer comes back as [`Event::Attached`].
pub fn attach(path: PathBuf, header: Header, events: Events) {
    std::thread::spawn(move || {
        let result = session::attach_model(&path, &header, DeviceChoice::Cpu).map(|o| o.map(|(p, m)| (p, Box::new(m))));
        events.send(Event::Attached { recording: path, result });
    });
}

/// A model kept on a worker thread, answering the viewer's [`Request`]s with
/// [`Event::Model`]s.
pub struct ModelSession {
    requests: mpsc::Sender<Request>,
    /// Set to cancel the probe pass or lesion analysis under way.
    cancel: Arc<AtomicBool>,
    pub train_len: usize,
    /// Layers a lesion can close (empty for plain nets).
    pub lesionable: Vec<usize>,
    /// Tells this session's events from those of a session it replaced.
    pub id: u64,
    /// The model file.
    pub path: PathBuf,
}

impl ModelSession {
    /// Serves `model` (read from `path`) on a thread of its own, probing over `probe` (built
    /// there when None).
    pub fn start(model: Box<Loaded>, probe: Option<Box<ProbeSet>>, path: PathBuf, events: Events) -> ModelSession {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Request>();
        let train_len = model.data.train.len();
        let lesionable = model.lesionable().unwrap_or_default();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        std::thread::spawn(move || serve(*model, probe, id, rx, c, events));
        ModelSession { requests: tx, cancel, train_len, lesionable, id, path }
    }

    pub fn request(&self, r: Request) {
        self.cancel.store(false, Ordering::SeqCst);
        let _ = self.requests.send(r);
    }

    /// Cancels the probe pass or lesion analysis under way (its answer is
    /// [`Reply::ProbeCancelled`] or [`Reply::LesionsCancelled`]).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

struct Served {
    model: Loaded,
    probe: ProbeSet,
    lesion: Option<usize>,
    cancel: Arc<AtomicBool>,
}

fn serve(model: Loaded, probe: Option<Box<ProbeSet>>, id: u64, requests: mpsc::Receiver<Request>, cancel: Arc<AtomicBool>, events: Events) {
    let probe = probe.map_or_else(|| model.probe_set(ProbeOpts::default()), |p| *p);
    let mut s = Served { model, probe, lesion: None, cancel };
    let send = |r: anyhow::Result<Reply>| events.send(Event::Model { session: id, reply: r });
    while let Ok(mut req) = requests.recv() {
        // Only the latest of a run of traces (or of lesion picks) matters.
        while let Ok(newer) = requests.try_recv() {
            let same_kind = matches!((req, newer), (Request::Trace(_), Request::Trace(_)) | (Request::Lesion(_), Request::Lesion(_)));
            if !same_kind && !send(answer(&mut s, req, &send)) {
                return;
            }
            req = newer;
        }
        if !send(answer(&mut s, req, &send)) {
            return;
        }
    }
}

fn answer(s: &mut Served, req: Request, send: &dyn Fn(anyhow::Result<Reply>) -> bool) -> anyhow::Result<Reply> {
    match req {
        Request::Trace(i) => s.model.trace(i, s.lesion).map(Reply::Trace),
        Request::Lesion(l) => {
            if let Some(layer) = l {
                let ok = s.model.lesionable()?;
                anyhow::ensure!(
                    ok.contains(&layer),
                    "layer {layer} cannot be lesioned (layers {}..{})",
                    ok.first().unwrap_or(&0),
                    ok.last().unwrap_or(&0)
                );
            }
            s.lesion = l;
            Ok(probe(s, send))
        }
        Request::Probe => Ok(probe(s, send)),
        Request::LesionAll => {
            let mut last = std::time::Instant::now();
            let r = s.model.lesion_all(&mut |p| {
                if last.elapsed().as_millis() > 200 {
                    last = std::time::Instant::now();
                    send(Ok(Reply::Progress { done: p.done, total: p.total, so_far: p.so_far.map(Box::new) }));
                }
                !s.cancel.load(Ordering::SeqCst)
            })?;
            Ok(r.map_or(Reply::LesionsCancelled, Reply::Lesions))
        }
    }
}

/// A probe pass with the current lesion, reporting progress every 100 ms; cancellable.
fn probe(s: &Served, send: &dyn Fn(anyhow::Result<Reply>) -> bool) -> Reply {
    let mut last = std::time::Instant::now();
    let cancel = &s.cancel;
    let rec = s.model.probe_with(&s.probe, s.lesion, &mut |d, t| {
        if last.elapsed().as_millis() > 100 {
            last = std::time::Instant::now();
            send(Ok(Reply::Probing(d, t)));
        }
        !cancel.load(Ordering::SeqCst)
    });
    match rec {
        Some(r) => Reply::Probed { recording: Box::new(r), lesion: s.lesion },
        None => Reply::ProbeCancelled,
    }
}

/// A training run inside the viewer: its messages arrive as [`Event::Trained`], its end as
/// [`Event::TrainingDone`].
pub struct TrainerHandle {
    pub stop: Arc<AtomicBool>,
}

/// Where the viewer's trainer reports from: "viewer training panel".
pub const TRAINER_SOURCE: &str = "viewer training panel";

impl TrainerHandle {
    /// Trains `cfg` on a thread, snapshotting at `every`; keeps the recording and the model
    /// under `runs_dir` (see [`run_name`]).
    pub fn start(cfg: TrainConfig, every: Cadence, runs_dir: PathBuf, events: Events) -> anyhow::Result<Self> {
        cfg.validate()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::Builder::new().name("gatescope-trainer".into()).spawn(move || {
            let queue = Queue::new(64);
            let forward = {
                let (q, ev) = (queue.clone(), events.clone());
                std::thread::spawn(move || {
                    while !q.is_closed_and_empty() {
                        if let Some(m) = q.pop_timeout(std::time::Duration::from_millis(100)) {
                            ev.send(Event::Trained(m));
                        }
                    }
                })
            };
            let r = train_and_keep(&cfg, every, &runs_dir, queue.clone(), &s);
            queue.close();
            let _ = forward.join();
            events.send(Event::TrainingDone(r.map(Box::new)));
        })?;
        Ok(TrainerHandle { stop })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The in-viewer run: trained, recorded to `runs_dir/NAME.gsrec`, its model saved beside it.
fn train_and_keep(cfg: &TrainConfig, every: Cadence, runs_dir: &Path, queue: Queue, stop: &AtomicBool) -> anyhow::Result<TrainedRun> {
    let data = crate::data::load(cfg.dataset, cfg.data_dir.as_deref())?;
    std::fs::create_dir_all(runs_dir).with_context(|| format!("creating {}", runs_dir.display()))?;
    let name = run_name(cfg, std::time::SystemTime::now());
    let (recording, model_path) = (runs_dir.join(format!("{name}.gsrec")), runs_dir.join(format!("{name}.safetensors")));
    let capture = CaptureOpts {
        queue: Some(queue),
        every: Some(every),
        record: Some(recording.clone()),
        model: Some(model_path.clone()),
        ..Default::default()
    };
    let run = session::train_recorded(cfg, &data, capture, TRAINER_SOURCE, stop, &mut ())?;
    let m = run.outcome.card.metrics.clone().unwrap_or_default();
    let model = session::keep_model(run.outcome, data, &model_path)?;
    let summary = format!(
        "training {}: test accuracy {:.4} after {} steps; kept as {}",
        if m.interrupted { "stopped (interrupted, what was trained is kept)" } else { "finished" },
        m.test_accuracy,
        m.steps,
        recording.display()
    );
    Ok(TrainedRun { summary, recording, model_path, model: Box::new(model) })
}

/// A readable, unique-enough name for a run: `highway-d50-w50-20261201-031500`.
pub fn run_name(cfg: &TrainConfig, at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{}-d{}-w{}-{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}", cfg.arch.name(), cfg.depth, cfg.width())
}
