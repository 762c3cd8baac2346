//! Heavy work the viewer asks for, off the UI thread: opening files, the model session that
//! traces, lesions and re-probes, and the in-viewer trainer. Each runs the shared services
//! (`session`) on a thread and reports through the viewer's one [`Event`] channel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use super::event::{Event, Events, Opened, Reply, Request, Slot};
use crate::recipe::{Cadence, DeviceChoice, ProbeOpts, TrainConfig};
use crate::session::{self, CaptureOpts, Loaded};
use crate::stream::Queue;

pub use crate::session::SampleTrace;

/// Opens `path` on a worker thread into `slot` (the main view, or the comparison's B): the
/// answer comes back as [`Event::Opened`]. A model is probed before it is shown.
pub fn open(path: PathBuf, slot: Slot, events: Events) {
    std::thread::spawn(move || {
        let result = session::open(&path, None, DeviceChoice::Cpu).map(|o| match o {
            session::Opened::Model(m) => {
                let rec = m.probe(&m.probe_set(ProbeOpts::default()), None);
                Opened::Model(rec, m)
            }
            session::Opened::Recording(r) => Opened::Recording(*r),
            session::Opened::Report(r) => Opened::Report(r),
        });
        events.send(Event::Opened { path, slot, result: result.map(Box::new) });
    });
}

/// A model kept on a worker thread, answering the viewer's [`Request`]s with
/// [`Event::Model`]s.
pub struct ModelSession {
    requests: mpsc::Sender<Request>,
    pub train_len: usize,
    /// Layers a lesion can close (empty for plain nets).
    pub lesionable: Vec<usize>,
    /// Tells this session's events from those of a session it replaced.
    pub id: u64,
}

impl ModelSession {
    /// Serves `model` on a thread of its own.
    pub fn start(model: Box<Loaded>, events: Events) -> ModelSession {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Request>();
        let train_len = model.data.train.len();
        let lesionable = model.lesionable().unwrap_or_default();
        std::thread::spawn(move || serve(*model, id, rx, events));
        ModelSession { requests: tx, train_len, lesionable, id }
    }

    pub fn request(&self, r: Request) {
        let _ = self.requests.send(r);
    }
}

struct Served {
    model: Loaded,
    probe: crate::probe::ProbeSet,
    lesion: Option<usize>,
}

fn serve(model: Loaded, id: u64, requests: mpsc::Receiver<Request>, events: Events) {
    let probe = model.probe_set(ProbeOpts::default());
    let mut s = Served { model, probe, lesion: None };
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
            Ok(Reply::Probed { recording: Box::new(s.model.probe(&s.probe, l)), lesion: l })
        }
        Request::LesionAll => {
            let mut last = std::time::Instant::now();
            let r = s.model.lesion_all(&mut |d, t| {
                if last.elapsed().as_millis() > 200 {
                    last = std::time::Instant::now();
                    send(Ok(Reply::Progress(d, t)));
                }
            })?;
            Ok(Reply::Lesions(r))
        }
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
    pub fn start(cfg: TrainConfig, every: Cadence, events: Events) -> anyhow::Result<Self> {
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
            let r = (|| {
                let data = crate::data::load(cfg.dataset, cfg.data_dir.as_deref())?;
                let capture = CaptureOpts { queue: Some(queue.clone()), every: Some(every), ..Default::default() };
                let run = session::train_recorded(&cfg, &data, capture, TRAINER_SOURCE, &s, &mut ())?;
                let m = run.outcome.card.metrics.unwrap_or_default();
                Ok(format!(
                    "training finished: test accuracy {:.4} after {} steps{}",
                    m.test_accuracy,
                    m.steps,
                    if m.interrupted { " (stopped)" } else { "" }
                ))
            })();
            queue.close();
            let _ = forward.join();
            events.send(Event::TrainingDone(r));
        })?;
        Ok(TrainerHandle { stop })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
