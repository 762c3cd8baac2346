//! The one message type everything shares: a recording's [`Header`] and its [`Snapshot`]s.
//!
//! Plain data, no tensors: the probe (`probe`) fills them from a model, the recording format
//! (`record`) and the transport (`stream`) move them, the viewer draws them. A snapshot holds
//! everything the paper's Figures 2–4 need at one moment of training.

use serde::{Deserialize, Serialize};

use crate::card::ModelCard;

/// A dense row-major f32 array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Default for Array {
    /// An empty array, shape [0] (its shape and its data agree, so it encodes and decodes).
    fn default() -> Self {
        Array { shape: vec![0], data: vec![] }
    }
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "array shape and data disagree");
        Array { shape, data }
    }
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Array { shape, data: vec![0.0; n] }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The contiguous row `i` of the leading axis.
    pub fn row(&self, i: usize) -> &[f32] {
        let n: usize = self.shape[1..].iter().product();
        &self.data[i * n..(i + 1) * n]
    }
    /// Smallest and largest finite value (None when empty).
    pub fn range(&self) -> Option<(f32, f32)> {
        let mut it = self.data.iter().copied().filter(|v| v.is_finite());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

/// What is fixed for a whole run: the model card, the dataset, the probe samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The model card of the run (metrics as of the start, or of the model file probed).
    pub card: ModelCard,
    /// Where the snapshots come from (e.g. "gatescope train", "model file runs/m.safetensors").
    pub source: String,
    /// The model file the run was saved to (`train --record … --out MODEL`): a bare file name
    /// when it sits beside the recording, else an absolute path. Lets a viewer attach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Probe examples the means are taken over.
    pub probe_size: usize,
    /// Indices (into the training set) of the K probe samples.
    pub sample_indices: Vec<u32>,
    /// Labels of the K probe samples.
    pub sample_labels: Vec<u32>,
    /// Pixels of the K probe samples, [K, channels·height·width] (shape in `card.dataset`).
    #[serde(skip)]
    pub sample_images: Vec<u8>,
}

/// Probe samples a header may carry.
pub const MAX_SAMPLES: usize = 4096;

impl Header {
    /// Checks the header against its own card: the architecture within its limits, class
    /// names, image shape, the probe samples and their images. Run on every header read from
    /// outside, before any snapshot is believed.
    pub fn check(&self) -> Result<(), String> {
        let arch = &self.card.arch;
        arch.validate().map_err(|e| format!("header: {e:#}"))?;
        let d = &self.card.dataset;
        if d.class_names.len() != arch.classes {
            return Err(format!("header: {} class names for {} classes", d.class_names.len(), arch.classes));
        }
        let pixels = d.image_shape.iter().try_fold(1usize, |a, &v| a.checked_mul(v));
        if pixels != Some(arch.input_dim) {
            return Err(format!("header: image shape {:?} does not hold input_dim {}", d.image_shape, arch.input_dim));
        }
        let k = self.num_samples();
        if k > MAX_SAMPLES {
            return Err(format!("header: {k} probe samples are over the limit of {MAX_SAMPLES}"));
        }
        if self.sample_indices.len() != k {
            return Err(format!("header: {} sample indices for {k} samples", self.sample_indices.len()));
        }
        if let Some(l) = self.sample_labels.iter().find(|&&l| l as usize >= arch.classes) {
            return Err(format!("header: sample label {l} is out of range 0..{}", arch.classes));
        }
        if !self.sample_images.is_empty() && Some(self.sample_images.len()) != k.checked_mul(arch.input_dim) {
            return Err(format!("header: {} image bytes for {k} samples of {} values", self.sample_images.len(), arch.input_dim));
        }
        Ok(())
    }

    /// Checks that `s` has the shapes this header's architecture implies (an empty array
    /// stands for "not recorded").
    pub fn check_snapshot(&self, s: &Snapshot) -> Result<(), String> {
        let arch = &self.card.arch;
        let (l, w, d, k, c) = (arch.gated_layers().len(), arch.width, arch.depth, self.num_samples(), arch.classes);
        let expect = |name: &str, a: &Array, shape: &[usize]| {
            if a.data.is_empty() {
                return Ok(());
            }
            if a.data.len() != a.shape.iter().product::<usize>() {
                return Err(format!("snapshot at step {}: {name} has {} values for shape {:?}", s.step, a.data.len(), a.shape));
            }
            if a.shape == shape {
                Ok(())
            } else {
                Err(format!("snapshot at step {}: {name} has shape {:?}, the header's architecture implies {shape:?}", s.step, a.shape))
            }
        };
        expect("gate_bias", &s.gate_bias, &[l, w])?;
        expect("mean_gate", &s.mean_gate, &[l, w])?;
        expect("sample_gates", &s.sample_gates, &[k, l, w])?;
        expect("sample_blocks", &s.sample_blocks, &[k, d, w])?;
        expect("class_mean_gate", &s.class_mean_gate, &[c, l, w])?;
        if !s.sample_predictions.is_empty() && s.sample_predictions.len() != k {
            return Err(format!("snapshot at step {}: {} predictions for {k} samples", s.step, s.sample_predictions.len()));
        }
        if let Some(p) = s.sample_predictions.iter().find(|&&p| p as usize >= c) {
            return Err(format!("snapshot at step {}: predicted class {p} is out of range 0..{c}", s.step));
        }
        if s.layers.len() > d || s.layers.iter().any(|x| x.layer as usize >= d) {
            return Err(format!("snapshot at step {}: per-layer figures for layers beyond depth {d}", s.step));
        }
        Ok(())
    }

    pub fn num_samples(&self) -> usize {
        self.sample_labels.len()
    }
    pub fn class_names(&self) -> &[String] {
        &self.card.dataset.class_names
    }
    /// Layer ids of the gated rows of a snapshot's [L, W] arrays (highway: 1..depth).
    pub fn gated_layers(&self) -> Vec<usize> {
        self.card.arch.gated_layers().collect()
    }
}

/// Per-layer figures of one snapshot, for block layers 1..depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub layer: u32,
    /// Mean T over the probe set (NaN for layers without a gate).
    pub mean_gate: f32,
    /// Fraction of (example, unit) gates with T > 0.5 (NaN without a gate).
    pub open_fraction: f32,
    /// Mean |y_l − y_{l−1}| over the probe set and units: how much the layer changes its input.
    pub mean_change: f32,
}

/// Everything the paper's Figures 2–4 need at one moment of training.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub step: u64,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Mean training loss and accuracy since the previous snapshot (NaN at step 0).
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    /// Transform-gate biases, [L, W].
    pub gate_bias: Array,
    /// Mean T over the probe set, [L, W].
    pub mean_gate: Array,
    /// T of each probe sample, [K, L, W].
    pub sample_gates: Array,
    /// Block outputs y of each probe sample, [K, depth, W] (row 0: the plain layer).
    pub sample_blocks: Array,
    /// The model's predicted class for each probe sample, [K].
    pub sample_predictions: Vec<u32>,
    /// Mean T per class over the probe set, [C, L, W].
    pub class_mean_gate: Array,
    /// Per block layer 1..depth.
    pub layers: Vec<LayerStats>,
}

impl Snapshot {
    /// Figure 3: mean T of class `c` minus the mean over all probe examples, [L, W].
    pub fn class_deviation(&self, c: usize) -> Array {
        let row = self.class_mean_gate.row(c);
        let data = row.iter().zip(&self.mean_gate.data).map(|(a, b)| a - b).collect();
        Array::new(self.mean_gate.shape.clone(), data)
    }
}

/// The message of the recording format, the socket and the in-process channel alike.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Header(Box<Header>),
    Snapshot(Box<Snapshot>),
    /// Snapshots a stream has dropped so far (a slow reader), counted by the sender.
    Dropped(u64),
}
