//! Command-line arguments (parsing only; `commands` does the work).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::train::TrainConfig;

/// Train highway networks with libtorch and see what their gates do
/// (Srivastava, Greff & Schmidhuber, "Training Very Deep Networks", 2015).
#[derive(Debug, Parser)]
#[command(name = "gatescope", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the viewer: Figure 2 and 3 heatmaps, timeline, layer inspector, training panel
    ///
    /// PATH is a recording (.gsrec) or a model (.safetensors); without one, the bundled
    /// recording of the default 50-layer MNIST run opens.
    View(ViewArgs),
    /// Train a highway, plain or residual MLP and save it as a model file
    ///
    /// With no flags: the paper's Figure-2 network (1 plain + 49 highway layers of 50 tanh
    /// units, gate bias −2) on the bundled MNIST. Ctrl-C stops after the current batch and
    /// still writes a usable model.
    Train(TrainArgs),
    /// Print a model's train and test accuracy and loss
    Eval(EvalArgs),
    /// Measure training throughput (samples/s) of the Figure-2 model
    Bench(BenchArgs),
    /// Probe a model file: write a recording with one snapshot of its gate activity
    Probe(ProbeArgs),
    /// Describe a model file or a recording (card, snapshots, torn tail)
    Info(InfoArgs),
    /// Figure 4: close all gates of one layer at a time and measure train and test error
    ///
    /// Each gated layer of a highway model in turn gets T := 0 (it copies its input); a
    /// residual model loses one branch at a time (y = x). Evaluates on the full training and
    /// test sets.
    Lesion(LesionArgs),
    /// Figure 1: train plain, highway and residual nets at several depths, same budget
    ///
    /// Records each run's training cross-entropy per epoch and writes a JSON report
    /// (`gatescope export REPORT --figure 1` draws it). Residual nets use two-layer branches of
    /// width 50 and plain nets width 71, so a layer of each has about as many parameters as a
    /// highway layer of width 50.
    Sweep(SweepArgs),
    /// Gate ablation: adaptive T(x) against a learned per-unit T, a fixed T and a residual net
    Ablate(AblateArgs),
    /// Draw one of the paper's figures as a PNG or SVG (fonts bundled)
    ///
    /// Figure 1: from a sweep or ablation report (JSON). Figure 2 and 3: from a recording
    /// (a snapshot of it) or a model file (probed now). Figure 4: from a lesion report or a
    /// model file (lesioned now).
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// A recording, a model (gatescope or a PyTorch import spec) or a report [default: the bundled recordings/default.gsrec]
    pub path: Option<PathBuf>,
    /// Accept trainers (`gatescope train --connect`) on ADDR (loopback unless you say otherwise)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::stream::DEFAULT_ADDR)]
    pub listen: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: TrainConfig,
    /// Where to write the model (safetensors weights with the JSON model card inside)
    #[arg(long, default_value = "runs/model.safetensors")]
    pub out: PathBuf,
    /// No progress bars; print one line per epoch instead
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// Snapshots of gate activity during training.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// Write a recording of gate snapshots to FILE (format: docs/recording-format.md)
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Stream snapshots to a viewer (`gatescope view --listen`) at ADDR
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::stream::DEFAULT_ADDR)]
    pub connect: Option<String>,
    /// Snapshot cadence: N steps or N epochs, e.g. 200steps, 1epochs (always also at step 0 and at the end)
    #[arg(long, value_name = "N{steps|epochs}", default_value = "4epochs")]
    pub every: crate::capture::Cadence,
    /// Training examples the gate means are taken over: a count, or `all`
    #[arg(long, value_name = "N|all", default_value = "10000")]
    pub probe: crate::probe::ProbeSize,
    /// Probe samples whose own T and block outputs are kept (spread across the classes)
    #[arg(long, value_name = "K", default_value_t = 32)]
    pub samples: usize,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model: a file written by `gatescope train`, or a PyTorch import spec (docs/pytorch-import.md)
    pub model: PathBuf,
    /// Folder with the dataset's files, if the model was not trained on the bundled MNIST
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print a JSON object (train_accuracy, test_accuracy, train_loss, test_loss)
    #[arg(long)]
    pub json: bool,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::model::DeviceChoice,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Model: a file written by `gatescope train`, or a PyTorch import spec (docs/pytorch-import.md)
    pub model: PathBuf,
    /// Recording to write
    #[arg(long, default_value = "runs/probe.gsrec")]
    pub out: PathBuf,
    /// Folder with the dataset's files, if the model was not trained on the bundled MNIST
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training examples the gate means are taken over: a count, or `all`
    #[arg(long, value_name = "N|all", default_value = "10000")]
    pub probe: crate::probe::ProbeSize,
    /// Probe samples whose own T and block outputs are kept
    #[arg(long, value_name = "K", default_value_t = 32)]
    pub samples: usize,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::model::DeviceChoice,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A model (.safetensors) or a recording (.gsrec)
    pub path: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Minibatch size
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed training steps per measurement
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Untimed steps before each measurement
    #[arg(long, default_value_t = 40)]
    pub warmup: usize,
    /// Measure repeatedly and report the best of this many rounds (robust to noise)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A reference throughput (e.g. from the PyTorch reference script) to compute a ratio against
    #[arg(long)]
    pub reference: Option<f64>,
    /// Also measure the cost of recording: train EPOCHS epochs with and without
    /// `--record` at the default cadence, side by side
    #[arg(long, value_name = "EPOCHS", num_args = 0..=1, default_missing_value = "8")]
    pub record: Option<usize>,
    /// Print a JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LesionArgs {
    /// Model: a file written by `gatescope train`, or a PyTorch import spec (docs/pytorch-import.md)
    pub model: PathBuf,
    /// Folder with the dataset's files, if the model was not trained on the bundled MNIST
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to FILE (`gatescope export FILE --figure 4` draws it)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::model::DeviceChoice,
}

/// The recipe every run of a study shares.
#[derive(Debug, Clone, clap::Args)]
pub struct StudyArgs {
    /// Dataset (MNIST is bundled; CIFAR needs --data-dir)
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: crate::data::DatasetKind,
    /// Folder with the dataset's files
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Epochs of every run (the shared budget)
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate (without --search)
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Momentum (without --search)
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay (without --search)
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Initial gate bias of highway nets (without --search)
    #[arg(long, default_value_t = -2.0, allow_hyphen_values = true)]
    pub gate_bias: f32,
    /// Activation of every net
    #[arg(long, value_enum, default_value = "tanh")]
    pub activation: crate::arch::Activation,
    /// Minibatch size
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Random search: this many trials per configuration (learning rate, momentum, weight
    /// decay, gate bias), each --search-epochs long; the best is then trained for --epochs
    #[arg(long, default_value_t = 0)]
    pub search: usize,
    /// Epochs of each search trial
    #[arg(long, default_value_t = 2)]
    pub search_epochs: usize,
    /// Training examples of each search trial (the first N)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub search_examples: usize,
    /// Runs at once; each gets cores / jobs libtorch threads [default: cores / 2]
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Use only the first N training examples (quick looks)
    #[arg(long, value_name = "N")]
    pub train_examples: Option<usize>,
    /// Use only the first N test examples
    #[arg(long, value_name = "N")]
    pub test_examples: Option<usize>,
    /// Seed of the initialisations and of the search
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Depths (hidden layers, counting the plain first layer)
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100")]
    pub depths: Vec<usize>,
    /// Families
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain,highway,residual")]
    pub families: Vec<crate::arch::Family>,
    #[command(flatten)]
    pub study: StudyArgs,
    /// Where to write the JSON report
    #[arg(long, default_value = "runs/sweep.json")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct AblateArgs {
    /// Hidden layers of every net
    #[arg(long, default_value_t = 50)]
    pub depth: usize,
    /// Units per layer
    #[arg(long, default_value_t = 50)]
    pub width: usize,
    /// T of the fixed-gate variant
    #[arg(long, default_value_t = 0.5)]
    pub fixed_gate: f32,
    #[command(flatten)]
    pub study: StudyArgs,
    /// Where to write the JSON report
    #[arg(long, default_value = "runs/ablation.json")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A recording (.gsrec), a model (.safetensors) or a report (.json) from lesion, sweep or ablate
    pub path: PathBuf,
    /// Which figure: 1 (depth sweep curves), 2 (gate maps), 3 (class deviations), 4 (lesions)
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub figure: u8,
    /// The image to write: FILE.png or FILE.svg [default: figureN.png]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Figures 2 and 3 from a recording: the snapshot index (negative counts from the end)
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub snapshot: i64,
    /// Figure 2: the probe sample whose T and block outputs are drawn
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// Folder with the dataset's files, if a model was not trained on the bundled MNIST
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Intra-op threads for libtorch (probing and lesioning a model)
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}
