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
use crate::stream::Queue;
use crate::train::{self, TrainConfig};

/// A file opened: a recording, or a model with the session that can probe any sample.
pub enum Opened {
    Recording(Recording),
    Model(Recording, ModelSession),
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
}

/// A model kept on a worker thread, answering "trace training example i".
pub struct ModelSession {
    requests: mpsc::Sender<usize>,
    pub results: mpsc::Receiver<anyhow::Result<SampleTrace>>,
    pub train_len: usize,
}

impl ModelSession {
    fn start(path: &Path) -> anyhow::Result<(Recording, ModelSession)> {
        let (model, card, data) = open_model(path, None)?;
        let probe = ProbeSet::new(&data, ProbeSize::Count(10_000), 32);
        let m = card.metrics.clone().unwrap_or_default();
        let progress = Progress { step: m.steps as u64, epoch: m.epochs_completed as f64, train_loss: m.train_loss, train_accuracy: m.train_accuracy, test_accuracy: None };
        let snap = probe::snapshot(&model, &probe, progress, None);
        let header = probe.header(card, format!("model file {}", path.display()));
        let rec = Recording { header, snapshots: vec![snap], dropped: 0, torn_tail: None };
        let (req_tx, req_rx) = mpsc::channel::<usize>();
        let (res_tx, res_rx) = mpsc::channel();
        let train_len = data.train.len();
        std::thread::spawn(move || serve(model, data, req_rx, res_tx));
        Ok((rec, ModelSession { requests: req_tx, results: res_rx, train_len }))
    }

    pub fn request(&self, index: usize) {
        let _ = self.requests.send(index);
    }
}

fn serve(model: Model, data: Dataset, requests: mpsc::Receiver<usize>, results: mpsc::Sender<anyhow::Result<SampleTrace>>) {
    let dim = data.input_dim();
    while let Ok(mut index) = requests.recv() {
        while let Ok(newer) = requests.try_recv() {
            index = newer; // only the latest pick matters
        }
        let r = if index >= data.train.len() {
            Err(anyhow::anyhow!("training example {index} does not exist (0..{})", data.train.len()))
        } else {
            let image = data.train.images[index * dim..(index + 1) * dim].to_vec();
            let fwd = tch::no_grad(|| model.forward(&images_tensor(&image, dim), ForwardOpts { trace: true, lesion: None }));
            let squeeze = |ts: &[tch::Tensor]| {
                if ts.is_empty() {
                    Array::zeros(vec![0, model.arch.width])
                } else {
                    to_array(&tch::Tensor::cat(ts, 0))
                }
            };
            Ok(SampleTrace {
                index,
                label: data.train.labels[index] as u32,
                prediction: i64::try_from(fwd.logits.argmax(-1, false).get(0)).unwrap_or(-1) as u32,
                gates: squeeze(&fwd.gates),
                blocks: squeeze(&fwd.blocks),
                image,
            })
        };
        if results.send(r).is_err() {
            return;
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
