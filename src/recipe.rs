//! How a run is set up, and every default in one place: the training recipe ([`RECIPE`], the
//! paper's Figure-2 model on MNIST), the conv nets' gate bias, the probe set, the snapshot
//! cadence, threads and device. Plain data: the CLI, the viewer's forms, the studies and the
//! bench all start from these values, so none of them spells a default of its own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::arch::{Activation, Arch, Family, GateMode};
use crate::data::{Dataset, DatasetKind};

/// Training examples a probe takes its means over.
pub const PROBE_EXAMPLES: usize = 10_000;
/// Probe samples (spread over the classes) whose own T and block outputs a snapshot keeps.
pub const PROBE_SAMPLES: usize = 32;
/// How often a recorded run takes a snapshot (always also at step 0 and at the end).
pub const CADENCE: Cadence = Cadence::Epochs(4);
/// Intra-op threads for libtorch.
pub const THREADS: usize = 2;
/// Epochs of every run of a study (the shared budget of `sweep` and `ablate`).
pub const STUDY_EPOCHS: usize = 5;

/// A run started from the viewer's training panel: epochs, and steps between snapshots.
pub const PANEL_EPOCHS: usize = 5;
pub const PANEL_EVERY_STEPS: usize = 100;

/// The recording of the default run (the Figure-2 model, 20 epochs), committed under
/// recordings/; the viewer opens it when given no file.
pub fn default_recording() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.gsrec")
}

/// Where the viewer keeps the runs it trains (relative to the working directory, as the CLI's
/// default outputs).
pub const RUNS_DIR: &str = "runs";

/// A file bundled with gatescope, for the viewer's Examples menu and empty views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    pub label: &'static str,
    /// Relative to the project's folder.
    pub path: &'static str,
    pub kind: ExampleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    Recording,
    Model,
    SweepReport,
    AblationReport,
    LesionReport,
}

/// Every bundled example, in menu order.
pub const EXAMPLES: [Example; 8] = [
    Example { label: "50-layer highway net on MNIST: training recording", path: "recordings/default.gsrec", kind: ExampleKind::Recording },
    Example { label: "50-layer highway net on MNIST: trained model", path: "recordings/default.safetensors", kind: ExampleKind::Model },
    Example { label: "Conv highway net (99.47 %): training recording", path: "recordings/conv.gsrec", kind: ExampleKind::Recording },
    Example { label: "Conv highway net (99.47 %): trained model", path: "recordings/conv.safetensors", kind: ExampleKind::Model },
    Example { label: "Figure 1: depth sweep report", path: "docs/results/sweep.json", kind: ExampleKind::SweepReport },
    Example { label: "Gate ablation report", path: "docs/results/ablation.json", kind: ExampleKind::AblationReport },
    Example {
        label: "Figure 4: lesion report of the 50-layer net",
        path: "docs/results/lesion-default.json",
        kind: ExampleKind::LesionReport,
    },
    Example { label: "Figure 4: lesion report of the conv net", path: "docs/results/lesion-conv.json", kind: ExampleKind::LesionReport },
];

impl Example {
    /// Where the file is on this machine.
    pub fn file(&self) -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(self.path)
    }

    /// The first bundled example of a kind.
    pub fn first(kind: ExampleKind) -> &'static Example {
        EXAMPLES.iter().find(|e| e.kind == kind).expect("every kind has a bundled example")
    }
}

/// The initial transform-gate bias b_T of a family: −2 (the paper's MLPs), −1 for conv nets,
/// which at −2 learn far slower (ARCHITECTURE.md, "Initialisation").
pub const fn default_gate_bias(family: Family) -> f32 {
    match family {
        Family::Conv => -1.0,
        _ => -2.0,
    }
}

/// Units per hidden layer of a family: 50; plain nets 71, so that a layer has about as many
/// parameters as a highway layer of width 50 (the paper's Figure 1); conv nets 16 channels.
pub const fn default_width(family: Family) -> usize {
    match family {
        Family::Plain => 71,
        Family::Conv => 16,
        _ => 50,
    }
}

/// The defaults of `gatescope train`: the Figure-2 network (1 plain + 49 highway layers of 50
/// tanh units, gate bias −2) on MNIST, SGD with momentum and a cosine schedule.
pub const RECIPE: TrainConfig = TrainConfig {
    dataset: DatasetKind::Mnist,
    data_dir: None,
    arch: Family::Highway,
    depth: 50,
    width: None,
    activation: Activation::Tanh,
    gate_bias: None,
    gate: GateMode::Adaptive,
    fixed_gate: 0.5,
    stages: 3,
    residual_layers: 2,
    optimizer: Optimizer::Sgd,
    lr: 0.1,
    momentum: 0.9,
    weight_decay: 5e-4,
    schedule: Schedule::Cosine,
    lr_step_epochs: 10,
    lr_gamma: 0.5,
    warmup_epochs: 1.0,
    shift: 0,
    batch_size: 128,
    epochs: 20,
    max_steps: None,
    train_examples: None,
    test_examples: None,
    init: None,
    seed: 0,
    threads: THREADS,
    device: DeviceChoice::Cpu,
    no_fast: false,
};

/// The paper's networks on MNIST, from the recipe.
impl Arch {
    /// The Figure-2 network: 784 → plain 50 → 49 highway layers of 50 tanh units → 10.
    pub fn figure2() -> Self {
        Arch {
            family: RECIPE.arch,
            depth: RECIPE.depth,
            width: default_width(RECIPE.arch),
            input_dim: 784,
            classes: 10,
            activation: RECIPE.activation,
            gate_bias: default_gate_bias(RECIPE.arch),
            residual_block_layers: RECIPE.residual_layers as usize,
            gate: RECIPE.gate,
            fixed_gate: RECIPE.fixed_gate,
            conv_stages: vec![],
            image_shape: None,
        }
    }

    /// The paper's Table-1 MNIST net: 10 layers (1 plain + 3 stages of 3 highway), 16 channels.
    pub fn conv_mnist() -> Self {
        let family = Family::Conv;
        let stages = Arch::split_stages(9, RECIPE.stages);
        Arch {
            family,
            depth: 10,
            width: default_width(family),
            gate_bias: default_gate_bias(family),
            conv_stages: stages,
            image_shape: Some([1, 28, 28]),
            ..Arch::figure2()
        }
    }
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset to train on (MNIST is bundled; CIFAR needs `data_dir`).
    pub dataset: DatasetKind,
    /// Folder with the dataset's files.
    pub data_dir: Option<PathBuf>,
    /// Network family.
    pub arch: Family,
    /// Hidden layers, counting the plain first layer (Figure 2: 50 = 1 plain + 49 highway).
    pub depth: usize,
    /// Units per hidden layer; `None`: [`default_width`].
    pub width: Option<usize>,
    /// Activation of the blocks H (and of residual branches and plain layers).
    pub activation: Activation,
    /// Initial transform-gate bias b_T; `None`: [`default_gate_bias`].
    pub gate_bias: Option<f32>,
    /// How a highway layer's gate T is computed.
    #[serde(default)]
    pub gate: GateMode,
    /// T of every unit with `GateMode::Fixed`.
    #[serde(default = "fixed_gate")]
    pub fixed_gate: f32,
    /// Conv nets: stages of highway layers, with 2×2 max pooling between them.
    #[serde(default = "stages")]
    pub stages: usize,
    /// Layers in a residual branch F (1 or 2).
    pub residual_layers: u8,
    pub optimizer: Optimizer,
    /// Peak learning rate.
    pub lr: f64,
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule over the run.
    pub schedule: Schedule,
    /// Step schedule: epochs between decays.
    pub lr_step_epochs: usize,
    /// Step and exponential schedules: the decay factor.
    pub lr_gamma: f64,
    /// Epochs of linear warm-up from lr/10 to lr.
    pub warmup_epochs: f64,
    /// Random shifts of up to this many pixels (0: off).
    #[serde(default)]
    pub shift: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Stop after this many steps.
    pub max_steps: Option<usize>,
    /// Train on the first N training examples only (quick looks).
    #[serde(default)]
    pub train_examples: Option<usize>,
    /// Evaluate on the first N test examples only.
    #[serde(default)]
    pub test_examples: Option<usize>,
    /// Start from this model's parameters.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Seed of the initialisation and the batch order.
    pub seed: u64,
    /// Intra-op threads for libtorch.
    pub threads: usize,
    #[serde(default)]
    pub device: DeviceChoice,
    /// Autograd instead of the hand-written backward (highway MLP, conv highway net on the CPU).
    pub no_fast: bool,
}

fn fixed_gate() -> f32 {
    RECIPE.fixed_gate
}

fn stages() -> usize {
    RECIPE.stages
}

impl Default for TrainConfig {
    fn default() -> Self {
        RECIPE
    }
}

impl TrainConfig {
    /// The defaults of `gatescope train` (the Figure-2 model on MNIST): [`RECIPE`].
    pub fn default_recipe() -> Self {
        RECIPE
    }

    /// Units per hidden layer: as given, else the family's default.
    pub fn width(&self) -> usize {
        self.width.unwrap_or(default_width(self.arch))
    }

    /// The initial gate bias: as given, else the family's default ([`default_gate_bias`]).
    pub fn gate_bias(&self) -> f32 {
        self.gate_bias.unwrap_or(default_gate_bias(self.arch))
    }

    pub fn arch(&self, data: &Dataset) -> Arch {
        let conv = self.arch == Family::Conv;
        Arch {
            family: self.arch,
            depth: self.depth,
            width: self.width(),
            input_dim: data.input_dim(),
            classes: data.num_classes(),
            activation: self.activation,
            gate_bias: self.gate_bias(),
            residual_block_layers: self.residual_layers as usize,
            gate: self.gate,
            fixed_gate: self.fixed_gate,
            conv_stages: if conv { Arch::split_stages(self.depth.saturating_sub(1), self.stages) } else { vec![] },
            image_shape: conv.then_some(data.image_shape),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        anyhow::ensure!(self.threads >= 1, "--threads must be at least 1");
        anyhow::ensure!(self.lr > 0.0 && self.lr.is_finite(), "--lr must be a positive number");
        anyhow::ensure!((0.0..1.0).contains(&self.momentum), "--momentum must be in [0, 1)");
        anyhow::ensure!(self.gate_bias().is_finite(), "--gate-bias must be finite");
        anyhow::ensure!(self.max_steps != Some(0), "--max-steps must be at least 1");
        anyhow::ensure!(
            self.train_examples != Some(0) && self.test_examples != Some(0),
            "--train-examples and --test-examples must be at least 1"
        );
        anyhow::ensure!(self.shift <= 8, "--shift must be at most 8 pixels");
        anyhow::ensure!((1..=2).contains(&self.residual_layers), "--residual-layers must be 1 or 2");
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum, as PyTorch's SGD.
    Sgd,
    /// SGD with Nesterov momentum.
    Nesterov,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// A constant learning rate.
    Constant,
    /// Multiply by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Multiply by `lr_gamma` every epoch.
    Exponential,
    /// Cosine from `lr` down to 0 over the run.
    Cosine,
}

/// Where tensors live: `--device cpu|cuda|auto` (resolved by `model`, which knows libtorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// The first CUDA GPU; an error if libtorch has no CUDA or no GPU is visible.
    Cuda,
    /// A CUDA GPU when there is one, else the CPU.
    Auto,
}

/// How often to take a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Steps(usize),
    Epochs(usize),
}

impl std::str::FromStr for Cadence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num.parse().map_err(|_| format!("expected e.g. 200steps or 1epochs, got {s:?}"))?;
        if n == 0 {
            return Err("the cadence must be at least 1".into());
        }
        match unit {
            "steps" | "step" => Ok(Cadence::Steps(n)),
            "epochs" | "epoch" => Ok(Cadence::Epochs(n)),
            "" => Err(format!("{s:?} needs a unit: {n}steps or {n}epochs")),
            _ => Err(format!("unknown unit {unit:?} in {s:?}: use steps or epochs")),
        }
    }
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cadence::Steps(n) => write!(f, "{n}steps"),
            Cadence::Epochs(n) => write!(f, "{n}epochs"),
        }
    }
}

/// How many training examples the probe's means are taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeSize {
    All,
    Count(usize),
}

impl Default for ProbeSize {
    fn default() -> Self {
        ProbeSize::Count(PROBE_EXAMPLES)
    }
}

impl std::str::FromStr for ProbeSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(ProbeSize::All);
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(ProbeSize::Count(n)),
            _ => Err(format!("expected a positive number of examples or `all`, got {s:?}")),
        }
    }
}

impl std::fmt::Display for ProbeSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeSize::All => write!(f, "all"),
            ProbeSize::Count(n) => write!(f, "{n}"),
        }
    }
}

/// What a probe looks at: the examples its means are taken over, and the samples it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOpts {
    pub size: ProbeSize,
    pub samples: usize,
}

impl Default for ProbeOpts {
    fn default() -> Self {
        ProbeOpts { size: ProbeSize::Count(PROBE_EXAMPLES), samples: PROBE_SAMPLES }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_bias_defaults_to_minus_two_and_to_minus_one_for_conv_nets() {
        let bias = |arch: Family, given: Option<f32>| TrainConfig { arch, gate_bias: given, ..RECIPE }.gate_bias();
        assert_eq!(bias(Family::Highway, None), -2.0);
        assert_eq!(bias(Family::Residual, None), -2.0);
        assert_eq!(bias(Family::Conv, None), -1.0);
        assert_eq!(bias(Family::Conv, Some(-3.0)), -3.0);
        assert_eq!(bias(Family::Highway, Some(0.5)), 0.5);
        // a card written before the option existed (a plain number) still reads
        let mut v = serde_json::to_value(RECIPE).unwrap();
        v["gate_bias"] = serde_json::json!(-2.5);
        v.as_object_mut().unwrap().remove("shift");
        let c: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!((c.gate_bias(), c.shift), (-2.5, 0));
    }

    #[test]
    fn cadences_and_probe_sizes_read_and_print_alike() {
        for s in ["200steps", "4epochs"] {
            assert_eq!(s.parse::<Cadence>().unwrap().to_string(), s);
        }
        assert_eq!(CADENCE.to_string(), "4epochs");
        assert_eq!("all".parse::<ProbeSize>().unwrap(), ProbeSize::All);
        assert!("0".parse::<ProbeSize>().is_err());
        // a bare number is refused: steps or epochs must be said
        let e = "4".parse::<Cadence>().unwrap_err();
        assert!(e.contains("4steps or 4epochs"), "{e}");
    }
}
