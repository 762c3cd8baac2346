//! Heavy work the viewer asks for, off the UI thread: opening files, probing models, training.
//! Results come back through channels that the UI drains each frame.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::capture::{Cadence, Capture, Sinks};
use crate::commands::open_model;
use crate::data::Dataset;
use crate::model::{images_tensor, ForwardOpts, Model};
use crate::probe::{self, to_array, ProbeSet, ProbeSize, Progress};
use crate::record::{self, Recording};
use crate::snapshot::Array;
use crate::report::{LesionReport, Report};
use crate::stream::Queue;
use crate::train::{self, TrainConfig};

/// A file opened: a recording, a model with the session that can probe any sample, or an
/// analysis report (lesion, sweep, ablation JSON).
pub enum Opened {
    Recording(Recording),
    Model(Recording, ModelSession),
    Report(Report),
}

/// Opens `path` on a worker thread; `wake` asks the UI to repaint when done.
pub fn open(path: PathBuf, wake: impl Fn() + Send + 'static) -> mpsc::Receiver<(PathBuf, anyhow::Result<Opened>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = open_now(&path);
        let _ = tx.send((path, r));
        wake();
    });
    rx
}

fn open_now(path: &Path) -> anyhow::Result<Opened> {
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let n = f.read(&mut head)?;
        if n >= 8 && &head == record::MAGIC {
            return Ok(Opened::Recording(record::open(path)?));
        }
        if n >= 1 && head[0] == b'{' {
            let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if !crate::model::import::is_spec(&bytes) {
                return Ok(Opened::Report(Report::read(path)?));
            }
        }
    }
    let (rec, session) = ModelSession::start(path)?;
    Ok(Opened::Model(rec, session))
}

/// One training example run through a model with tracing: what Figure 2 shows for a sample.
pub struct SampleTrace {
    pub index: usize,
    pub label: u32,
    pub prediction: u32,
    /// [L, W]
    pub gates: Array,
    /// [depth, W]
    pub blocks: Array,
    pub image: Vec<u8>,
    /// Conv nets: per gated layer, the full T maps of this example, [channels, h, w].
    pub spatial: Vec<Array>,
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
}

/// What an open model answers.
pub enum Reply {
    Trace(SampleTrace),
    /// A fresh probe of the model with `lesion` applied.
    Probed { recording: Recording, lesion: Option<usize> },
    Lesions(LesionReport),
    /// Progress of `LesionAll`: (done, total).
    Progress(usize, usize),
}

/// A model kept on a worker thread, answering the viewer's [`Request`]s.
pub struct ModelSession {
    requests: mpsc::Sender<Request>,
    pub results: mpsc::Receiver<anyhow::Result<Reply>>,
    pub train_len: usize,
    /// Layers a lesion can close (empty for plain nets).
    pub lesionable: Vec<usize>,
}

/// Everything the session thread owns.
struct Served {
    model: Model,
    data: Dataset,
    probe: ProbeSet,
    card: crate::card::ModelCard,
    source: String,
    lesion: Option<usize>,
}

impl Served {
    fn progress(&self) -> Progress {
        let m = self.card.metrics.clone().unwrap_or_default();
        Progress { step: m.steps as u64, epoch: m.epochs_completed as f64, train_loss: m.train_loss, train_accuracy: m.train_accuracy, test_accuracy: None }
    }

    fn probe(&self) -> Recording {
        let snap = probe::snapshot(&self.model, &self.probe, self.progress(), self.lesion);
        let mut header = self.probe.header(self.card.clone(), self.source.clone());
        if let Some(l) = self.lesion {
            header.source = format!("{} with layer {l} lesioned", self.source);
        }
        Recording { header, snapshots: vec![snap], dropped: 0, torn_tail: None }
    }

    fn trace(&self, index: usize) -> anyhow::Result<SampleTrace> {
        let (model, data) = (&self.model, &self.data);
        anyhow::ensure!(index < data.train.len(), "training example {index} does not exist (0..{})", data.train.len());
        let dim = data.input_dim();
        let image = data.train.images[index * dim..(index + 1) * dim].to_vec();
        let spatial = model.arch.family == crate::model::Family::Conv;
        let fwd = tch::no_grad(|| model.forward(&images_tensor(&image, dim), ForwardOpts { trace: true, lesion: self.lesion, spatial }));
        let squeeze = |ts: &[tch::Tensor]| if ts.is_empty() { Array::zeros(vec![0, model.arch.width]) } else { to_array(&tch::Tensor::cat(ts, 0)) };
        Ok(SampleTrace {
            index,
            label: data.train.labels[index] as u32,
            prediction: i64::try_from(fwd.logits.argmax(-1, false).get(0)).unwrap_or(-1) as u32,
            gates: squeeze(&fwd.gates),
            blocks: squeeze(&fwd.blocks),
            image,
            spatial: fwd.spatial_gates.iter().map(|t| to_array(&t.get(0))).collect(),
        })
    }
}

impl ModelSession {
    fn start(path: &Path) -> anyhow::Result<(Recording, ModelSession)> {
        let (model, card, data) = open_model(path, None)?;
        let probe = ProbeSet::new(&data, ProbeSize::Count(10_000), 32);
        let lesionable = crate::lesion::lesionable_layers(&model).unwrap_or_default();
        let served = Served { model, data, probe, card, source: format!("model file {}", path.display()), lesion: None };
        let rec = served.probe();
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        let (res_tx, res_rx) = mpsc::channel();
        let train_len = served.data.train.len();
        std::thread::spawn(move || serve(served, req_rx, res_tx));
        Ok((rec, ModelSession { requests: req_tx, results: res_rx, train_len, lesionable }))
    }

    pub fn request(&self, r: Request) {
        let _ = self.requests.send(r);
    }
}

fn serve(mut s: Served, requests: mpsc::Receiver<Request>, results: mpsc::Sender<anyhow::Result<Reply>>) {
    while let Ok(mut req) = requests.recv() {
        // Only the latest of a run of traces (or of lesion picks) matters.
        while let Ok(newer) = requests.try_recv() {
            let same_kind = matches!((req, newer), (Request::Trace(_), Request::Trace(_)) | (Request::Lesion(_), Request::Lesion(_)));
            if !same_kind {
                let r = answer(&mut s, req, &results);
                if results.send(r).is_err() {
                    return;
                }
            }
            req = newer;
        }
        let r = answer(&mut s, req, &results);
        if results.send(r).is_err() {
            return;
        }
    }
}

fn answer(s: &mut Served, req: Request, results: &mpsc::Sender<anyhow::Result<Reply>>) -> anyhow::Result<Reply> {
    match req {
        Request::Trace(i) => s.trace(i).map(Reply::Trace),
        Request::Lesion(l) => {
            if let Some(layer) = l {
                let ok = crate::lesion::lesionable_layers(&s.model)?;
                anyhow::ensure!(ok.contains(&layer), "layer {layer} cannot be lesioned (layers {}..{})", ok.first().unwrap_or(&0), ok.last().unwrap_or(&0));
            }
            s.lesion = l;
            Ok(Reply::Probed { recording: s.probe(), lesion: l })
        }
        Request::LesionAll => {
            let (tr, te) = (crate::train::Tensors::train(&s.data), crate::train::Tensors::test(&s.data));
            let name = s.card.dataset.name.name();
            let mut last = std::time::Instant::now();
            let r = crate::lesion::lesion_all(&s.model, &s.source, name, &tr, &te, &mut |d, t| {
                if last.elapsed().as_millis() > 200 {
                    last = std::time::Instant::now();
                    let _ = results.send(Ok(Reply::Progress(d, t)));
                }
            })?;
            Ok(Reply::Lesions(r))
        }
    }
}

/// A training run inside the viewer: its snapshots arrive through `queue`.
pub struct TrainerHandle {
    pub queue: Queue,
    pub stop: Arc<AtomicBool>,
    pub done: mpsc::Receiver<anyhow::Result<String>>,
    _thread: JoinHandle<()>,
}

impl TrainerHandle {
    pub fn start(cfg: TrainConfig, every: Cadence, wake: impl Fn() + Send + 'static) -> anyhow::Result<Self> {
        cfg.validate()?;
        let queue = Queue::new(64);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (q, s) = (queue.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("gatescope-trainer".into()).spawn(move || {
            let r = (|| {
                let data = crate::data::load(cfg.dataset, cfg.data_dir.as_deref())?;
                let probe = ProbeSet::new(&data, ProbeSize::Count(10_000), 32);
                let header = probe.header(train::initial_card(&cfg, &data)?, "viewer training panel");
                let mut capture = Capture::new(probe, every, Sinks::open(&header, None, None, Some(q.clone()))?);
                let out = train::train(&cfg, &data, &s, &mut capture)?;
                capture.sinks.finish();
                let m = out.card.metrics.unwrap_or_default();
                Ok(format!("training finished: test accuracy {:.4} after {} steps{}", m.test_accuracy, m.steps, if m.interrupted { " (stopped)" } else { "" }))
            })();
            q.close();
            let _ = tx.send(r);
            wake();
        })?;
        Ok(TrainerHandle { queue, stop, done: rx, _thread: thread })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
