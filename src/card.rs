//! The model card: what a model is, what it was trained on and how well it does.
//! Plain data (no tensors), so recordings and the viewer can carry it without libtorch.

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::data::DatasetKind;

pub const FORMAT: &str = "gatescope-model";
pub const FORMAT_VERSION: u32 = 1;

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: DatasetKind,
    pub class_names: Vec<String>,
    /// [channels, height, width]
    pub image_shape: [usize; 3],
}

/// Final (or, after Ctrl-C, last) figures of a training run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub train_loss: f64,
    pub test_loss: f64,
    pub epochs_completed: usize,
    pub steps: usize,
    pub seconds: f64,
    /// The run was stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// The JSON model card stored beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub format_version: u32,
    pub gatescope_version: String,
    pub arch: Arch,
    pub dataset: DatasetInfo,
    /// The training configuration, as the trainer wrote it.
    pub training: serde_json::Value,
    pub metrics: Option<Metrics>,
}

impl ModelCard {
    pub fn new(arch: Arch, dataset: DatasetInfo, training: serde_json::Value) -> Self {
        ModelCard {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            gatescope_version: env!("CARGO_PKG_VERSION").into(),
            arch,
            dataset,
            training,
            metrics: None,
        }
    }
}
