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
}

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// A recording or a model file [default: the bundled recordings/default.gsrec]
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
    /// Model file written by `gatescope train`
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
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Model file written by `gatescope train`
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
    /// Model file (gatescope or imported PyTorch)
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
}
