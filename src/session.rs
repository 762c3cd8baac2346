//! The services every front-end shares: what a file is, opening a model with its dataset,
//! probing it, tracing one example, lesioning it with progress, and a recorded training run.
//! The CLI (`cli`), the viewer's worker (`view::worker`) and the bench call these; none of
//! them opens, probes, lesions or records a run by itself. No clap, no egui, no progress bars:
//! progress goes to callbacks and observers.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::capture::{Both, Capture, Sinks};
use crate::card::ModelCard;
use crate::data::{self, Dataset};
use crate::model::{file, images_tensor, DeviceChoice, Family, ForwardOpts, Model};
use crate::probe::{self, to_array, ProbeSet, Progress};
use crate::recipe::{Cadence, ProbeOpts, TrainConfig, CADENCE};
use crate::record::{self, Recording};
use crate::report::{LesionReport, Report};
use crate::snapshot::{Array, Header};
use crate::stream::Queue;
use crate::train::{self, Observer, Outcome, Tensors};

/// What a file holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A gatescope recording (`.gsrec`).
    Recording,
    /// A PyTorch import spec (JSON, docs/pytorch-import.md).
    ImportSpec,
    /// An analysis report (JSON from lesion, sweep or ablate).
    Report,
    /// A model file: safetensors (a gatescope model, or a state_dict with its spec beside it).
    Model,
    /// None of these.
    Other,
}

impl FileKind {
    /// What the kind is, for people ("a recording").
    pub fn described(self) -> &'static str {
        match self {
            FileKind::Recording => "a recording",
            FileKind::ImportSpec => "a PyTorch import spec",
            FileKind::Report => "a report (lesion, sweep or ablation)",
            FileKind::Model => "a model file",
            FileKind::Other => "not a gatescope file (no model, recording, import spec or report)",
        }
    }

    pub fn is_model(self) -> bool {
        matches!(self, FileKind::Model | FileKind::ImportSpec)
    }
}

/// Sniffs `path`: the recording magic, a JSON spec or report, a safetensors header, or
/// something else.
pub fn sniff(path: &Path) -> anyhow::Result<FileKind> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut head = [0u8; 9];
    let n = f.read(&mut head).with_context(|| format!("reading {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if n >= 8 && &head[..8] == record::MAGIC {
        return Ok(FileKind::Recording);
    }
    if n >= 1 && head[0] == b'{' {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if crate::model::import::is_spec(&bytes) {
            return Ok(FileKind::ImportSpec);
        }
        let tagged = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(|k| matches!(k, "lesion" | "sweep" | "ablation")));
        return Ok(if tagged == Some(true) { FileKind::Report } else { FileKind::Other });
    }
    // safetensors: an 8-byte little-endian header length, then a JSON object
    let header = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
    if n == 9 && head[8] == b'{' && header.saturating_add(8) <= len {
        return Ok(FileKind::Model);
    }
    Ok(FileKind::Other)
}

/// Checks that `path` holds a model, for `command`: else one error that says what the file
/// is and what to try.
pub fn expect_model(path: &Path, command: &str) -> anyhow::Result<FileKind> {
    let kind = sniff(path)?;
    let p = path.display();
    let hint = match kind {
        k if k.is_model() => return Ok(k),
        FileKind::Recording => format!("try `gatescope info {p}` or `gatescope view {p}`"),
        FileKind::Report => {
            format!("try `gatescope export {p} --figure 1` (sweep, ablation) or `--figure 4` (lesion), or `gatescope view {p}`")
        }
        _ => "give a .safetensors file from `gatescope train`, or a PyTorch import spec (docs/pytorch-import.md)".to_string(),
    };
    anyhow::bail!("{p} is {}; {command} needs a model: {hint}", kind.described())
}

/// A model file opened with the dataset its card names, ready to probe, trace and lesion.
pub struct Loaded {
    pub model: Model,
    pub card: ModelCard,
    pub data: Dataset,
    /// "model file PATH", for headers and reports.
    pub source: String,
}

/// Loads a model file (or an import spec) and the dataset its card names, on `device`.
pub fn open_model(path: &Path, data_dir: Option<&Path>, device: DeviceChoice) -> anyhow::Result<Loaded> {
    let (model, card) = file::load(path)?;
    let data = data::load(card.dataset.name, data_dir)?;
    anyhow::ensure!(
        data.input_dim() == card.arch.input_dim && data.num_classes() == card.arch.classes,
        "{}: the model expects {} inputs and {} classes, the dataset has {} and {}",
        path.display(),
        card.arch.input_dim,
        card.arch.classes,
        data.input_dim(),
        data.num_classes()
    );
    let model = model.to_device(device.resolve()?);
    Ok(Loaded { model, card, data, source: format!("model file {}", path.display()) })
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

impl Loaded {
    /// Where the card says training stood (a probe's step, epoch and training figures).
    pub fn progress(&self) -> Progress {
        let m = self.card.metrics.clone().unwrap_or_default();
        Progress {
            step: m.steps as u64,
            epoch: m.epochs_completed as f64,
            train_loss: m.train_loss,
            train_accuracy: m.train_accuracy,
            test_accuracy: None,
        }
    }

    /// The probe set `opts` describes, over this model's dataset.
    pub fn probe_set(&self, opts: ProbeOpts) -> ProbeSet {
        ProbeSet::new(&self.data, opts.size, opts.samples)
    }

    /// A recording of one snapshot of the model (with the gates of `lesion` closed).
    pub fn probe(&self, set: &ProbeSet, lesion: Option<usize>) -> Recording {
        self.probe_with(set, lesion, &mut |_, _| true).expect("a probe pass that is never cancelled")
    }

    /// [`Self::probe`] with progress; None when `tick(done, total)` returned false.
    pub fn probe_with(&self, set: &ProbeSet, lesion: Option<usize>, tick: &mut dyn FnMut(usize, usize) -> bool) -> Option<Recording> {
        let snap = probe::snapshot_with(&self.model, set, self.progress(), lesion, tick)?;
        let source = match lesion {
            Some(l) => format!("{} with layer {l} lesioned", self.source),
            None => self.source.clone(),
        };
        Some(Recording { header: set.header(self.card.clone(), source), snapshots: vec![snap], dropped: 0, torn_tail: None })
    }

    /// A recording of what the weights alone show (the gate biases), at once, before a probe.
    pub fn weights_only(&self, set: &ProbeSet) -> Recording {
        let snap = probe::weights_only(&self.model, self.progress());
        Recording { header: set.header(self.card.clone(), self.source.clone()), snapshots: vec![snap], dropped: 0, torn_tail: None }
    }

    /// Runs training example `index` through the model with tracing.
    pub fn trace(&self, index: usize, lesion: Option<usize>) -> anyhow::Result<SampleTrace> {
        let (model, data) = (&self.model, &self.data);
        anyhow::ensure!(index < data.train.len(), "training example {index} does not exist (0..{})", data.train.len());
        let dim = data.input_dim();
        let image = data.train.images[index * dim..(index + 1) * dim].to_vec();
        let spatial = model.arch.family == Family::Conv;
        let x = images_tensor(&image, dim).to_device(model.flat.device());
        let fwd = tch::no_grad(|| model.forward(&x, ForwardOpts { trace: true, lesion, spatial }));
        let squeeze =
            |ts: &[tch::Tensor]| if ts.is_empty() { Array::zeros(vec![0, model.arch.width]) } else { to_array(&tch::Tensor::cat(ts, 0)) };
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

    /// Layers a lesion can close (an error for plain nets).
    pub fn lesionable(&self) -> anyhow::Result<Vec<usize>> {
        crate::lesion::lesionable_layers(&self.model)
    }

    /// Figure 4: every layer lesioned in turn, on the full training and test sets; `progress`
    /// as [`crate::lesion::lesion_all`] calls it (None when it stopped the analysis).
    pub fn lesion_all(&self, progress: &mut dyn FnMut(crate::lesion::Progress) -> bool) -> anyhow::Result<Option<LesionReport>> {
        self.lesionable()?;
        let device = self.model.flat.device();
        let (tr, te) = (Tensors::train(&self.data).to_device(device), Tensors::test(&self.data).to_device(device));
        crate::lesion::lesion_all(&self.model, &self.source, self.card.dataset.name.name(), &tr, &te, progress)
    }
}

/// A file opened by any front-end.
pub enum Opened {
    Recording(Box<Recording>),
    Model(Box<Loaded>),
    Report(Report),
}

/// Opens any gatescope file: a recording, a model (or import spec) with its dataset, a report.
pub fn open(path: &Path, data_dir: Option<&Path>, device: DeviceChoice) -> anyhow::Result<Opened> {
    Ok(match sniff(path)? {
        FileKind::Recording => Opened::Recording(Box::new(record::open(path)?)),
        FileKind::Report => Opened::Report(Report::read(path)?),
        FileKind::Model | FileKind::ImportSpec => Opened::Model(Box::new(open_model(path, data_dir, device)?)),
        FileKind::Other => anyhow::bail!("{} is {}", path.display(), FileKind::Other.described()),
    })
}

/// Where the snapshots of a recorded run go, how often, and over what.
#[derive(Default)]
pub struct CaptureOpts {
    /// Write a recording here.
    pub record: Option<PathBuf>,
    /// Stream to a viewer listening here.
    pub connect: Option<String>,
    /// Hand messages to this in-process queue (the viewer's own trainer).
    pub queue: Option<Queue>,
    pub every: Option<Cadence>,
    pub probe: ProbeOpts,
    /// Where the model will be saved, for the header (see [`Header::model`]).
    pub model: Option<PathBuf>,
}

impl CaptureOpts {
    pub fn is_on(&self) -> bool {
        self.record.is_some() || self.connect.is_some() || self.queue.is_some()
    }
}

/// How a recording at `record` names the model file `model`: the bare file name when both sit
/// in one folder, else an absolute path.
pub fn model_reference(model: &Path, record: Option<&Path>) -> String {
    let dir = |p: &Path| p.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }).map(Path::to_path_buf);
    let same_dir = record.is_some_and(|r| dir(r).and_then(|d| d.canonicalize().ok()) == dir(model).and_then(|d| d.canonicalize().ok()));
    match model.file_name() {
        Some(name) if same_dir => name.to_string_lossy().into_owned(),
        _ => std::path::absolute(model).unwrap_or_else(|_| model.to_path_buf()).display().to_string(),
    }
}

/// The model file a recording at `path` belongs to, if one is there: the one its header
/// names, else a sibling with the recording's stem (`run.gsrec` → `run.safetensors`).
pub fn model_of_recording(path: &Path, header: &Header) -> Option<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let named = header.model.as_deref().map(|m| dir.join(m));
    let sibling = path.with_extension("safetensors");
    [named, Some(sibling)].into_iter().flatten().find(|p| p.is_file())
}

/// Loads the model of a recording and checks that it is the recording's net: same
/// architecture, same dataset.
pub fn attach_model(path: &Path, header: &Header, device: DeviceChoice) -> anyhow::Result<Option<(PathBuf, Loaded)>> {
    let Some(model_path) = model_of_recording(path, header) else { return Ok(None) };
    let loaded = open_model(&model_path, None, device)?;
    let (a, b) = (&loaded.card, &header.card);
    anyhow::ensure!(
        a.arch == b.arch && a.dataset.name == b.dataset.name,
        "{} is not the model of {}: its architecture or dataset differs",
        model_path.display(),
        path.display()
    );
    Ok(Some((model_path, loaded)))
}

/// Saves a finished run's model to `path` and keeps it open, with its dataset, for tracing
/// and lesions.
pub fn keep_model(outcome: train::Outcome, data: Dataset, path: &Path) -> anyhow::Result<Loaded> {
    file::save(&outcome.model, &outcome.card, path)?;
    Ok(Loaded { model: outcome.model, card: outcome.card, data, source: format!("model file {}", path.display()) })
}

/// What a recorded run produced besides the model.
pub struct TrainRun {
    pub outcome: Outcome,
    /// Snapshots taken.
    pub snapshots: usize,
    /// Seconds the trainer spent handing snapshots over (copying the parameters, waiting for
    /// the prober), and seconds the prober spent probing and writing them beside the training.
    pub handover_seconds: f64,
    pub probe_seconds: f64,
    /// What the stream to a viewer did, if there was one.
    pub stream: Option<crate::stream::StreamStats>,
}

/// Trains as `cfg` says on `data`, snapshotting into the sinks of `capture` (if any) at its
/// cadence; `source` names the run in the recording's header. `stop` ends the run between
/// batches with a usable model.
pub fn train_recorded(
    cfg: &TrainConfig,
    data: &Dataset,
    capture: CaptureOpts,
    source: &str,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> anyhow::Result<TrainRun> {
    if !capture.is_on() {
        let outcome = train::train(cfg, data, stop, observer)?;
        return Ok(TrainRun { outcome, snapshots: 0, handover_seconds: 0.0, probe_seconds: 0.0, stream: None });
    }
    let probe = ProbeSet::new(data, capture.probe.size, capture.probe.samples);
    let mut header = probe.header(train::initial_card(cfg, data)?, source);
    header.model = capture.model.as_deref().map(|m| model_reference(m, capture.record.as_deref()));
    let sinks = Sinks::open(&header, capture.record.as_deref(), capture.connect.as_deref(), capture.queue)?;
    let mut cap = Capture::new(probe, capture.every.unwrap_or(CADENCE), sinks)?;
    let outcome = train::train(cfg, data, stop, &mut Both(observer, &mut cap));
    // the prober's error was the trainer's too, when the trainer saw it
    let captured = cap.finish();
    let outcome = outcome?;
    let c = captured?;
    Ok(TrainRun { outcome, snapshots: c.snapshots, handover_seconds: c.handover_seconds, probe_seconds: c.probe_seconds, stream: c.stream })
}
