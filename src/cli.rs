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
    /// Print a JSON object
    #[arg(long)]
    pub json: bool,
}
