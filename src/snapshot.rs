//! The one message type everything shares: a recording's [`Header`] and its [`Snapshot`]s.
//!
//! Plain data, no tensors: the probe (`probe`) fills them from a model, the recording format
//! (`record`) and the transport (`stream`) move them, the viewer draws them. A snapshot holds
//! everything the paper's Figures 2–4 need at one moment of training.

use serde::{Deserialize, Serialize};

use crate::card::ModelCard;

/// A dense row-major f32 array.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
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

impl Header {
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
