//! Results of the analyses (lesioning, depth sweep, gate ablation) as plain data.
//!
//! No tensors here: `lesion` and `sweep` fill these, the CLI prints them as text or JSON,
//! `export` draws them with plotters and the viewer shows them. JSON is their file format.

use serde::{Deserialize, Serialize};

/// Loss and accuracy on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Mean cross-entropy.
    pub loss: f64,
    pub accuracy: f64,
}

impl Score {
    pub fn error(&self) -> f64 {
        1.0 - self.accuracy
    }
}

/// One lesioned layer (Figure 4): all its transform gates closed (T := 0, it copies its input).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LesionRow {
    pub layer: usize,
    pub train: Score,
    pub test: Score,
}

/// Figure 4 for one model: every gated layer lesioned in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionReport {
    /// Where the model came from (a path).
    pub model: String,
    pub dataset: String,
    pub train_examples: usize,
    pub test_examples: usize,
    /// The model without any lesion.
    pub baseline_train: Score,
    pub baseline_test: Score,
    pub layers: Vec<LesionRow>,
    /// Wall time of the training-set part (the Figure-4 budget).
    pub train_seconds: f64,
    /// Wall time of the whole analysis.
    pub seconds: f64,
}

impl LesionReport {
    /// The layer whose lesion hurts the training error most.
    pub fn worst(&self) -> Option<&LesionRow> {
        self.layers.iter().max_by(|a, b| a.train.error().total_cmp(&b.train.error()))
    }
}

/// One training run of a sweep or an ablation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// A short name of the variant (e.g. "highway-50", "fixed T=0.5").
    pub name: String,
    pub family: String,
    pub depth: usize,
    pub width: usize,
    pub params: usize,
    /// The hyper-parameters used (the best of the search, if there was one).
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub gate_bias: f32,
    /// Mean training cross-entropy over each epoch's minibatches.
    pub epoch_train_loss: Vec<f64>,
    pub train: Score,
    pub test: Score,
    pub seconds: f64,
    /// Trials of the random search behind this run (1 without a search).
    pub trials: usize,
    /// The run diverged (loss not finite); its figures are the last finite ones.
    pub diverged: bool,
}

/// Figure 1: train cross-entropy against depth for plain, highway and residual nets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub dataset: String,
    pub epochs: usize,
    pub depths: Vec<usize>,
    pub runs: Vec<RunResult>,
    pub seconds: f64,
}

impl SweepReport {
    pub fn run(&self, family: &str, depth: usize) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.family == family && r.depth == depth)
    }
}

/// Adaptive gates against fixed gates and a residual net, same budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationReport {
    pub dataset: String,
    pub epochs: usize,
    pub depth: usize,
    pub runs: Vec<RunResult>,
    pub seconds: f64,
}

/// Any report, as written to a file: tagged with its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Report {
    Lesion(LesionReport),
    Sweep(SweepReport),
    Ablation(AblationReport),
}

impl Report {
    /// Reads a report file, naming the file and the problem on failure.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a gatescope report (lesion, sweep or ablation JSON): {e}", path.display()))
    }
}
