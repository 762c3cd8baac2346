//! Command-line arguments: clap's view of the flags (parsing only). Each struct maps onto a
//! plain option struct of the library (`TrainConfig`, `CaptureOpts`, `BenchOpts`, ...), and
//! every default shown here comes from `recipe`, where it is defined once.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::arch::{Activation, Family, GateMode};
use crate::bench::BenchOpts;
use crate::data::DatasetKind;
use crate::recipe::{
    Cadence, DeviceChoice, Optimizer, ProbeSize, Schedule, TrainConfig, CADENCE, PROBE_EXAMPLES, PROBE_SAMPLES, RECIPE, STUDY_EPOCHS,
    THREADS,
};

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
    /// Open the viewer: the paper's Figures 1–4, timeline, layer inspector, training panel
    ///
    /// PATH is a recording (.gsrec) or a model (.safetensors); without one, the bundled
    /// recording of the default 50-layer MNIST run opens.
    View(ViewArgs),
    /// Train a highway, plain or residual MLP, or a conv highway net, and save it as a model file
    ///
    /// With no flags: the paper's Figure-2 network (1 plain + 49 highway layers of 50 tanh
    /// units, gate bias −2) on the bundled MNIST. Ctrl-C stops after the current batch and
    /// still writes a usable model; a second Ctrl-C (a second or more later) aborts without
    /// saving.
    ///
    /// Exit codes: 0 trained and saved; 130 stopped by Ctrl-C, saved (marked interrupted);
    /// 131 aborted by a second Ctrl-C, nothing saved; 1 an error.
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
    /// Accept trainers (Rust or Python) without a window and write what each streams to a recording
    ///
    /// For a cluster's head node or a machine without a display: point trainers at it
    /// (`gatescope train --connect ADDR`, `gatescope.Writer(connect="ADDR")` in Python), open
    /// the files later with `gatescope view`. Each connection gets its own file: OUT for the
    /// first, then STEM-2.gsrec, STEM-3.gsrec, … (the first free name; nothing is
    /// overwritten). Every complete frame is flushed as it arrives, so a trainer that dies
    /// leaves a readable file. Ctrl-C stops collecting.
    Collect(CollectArgs),
    /// Write a recording's decoded arrays to a safetensors file (for numpy or PyTorch)
    ///
    /// Arrays: header.sample_images (u8), and per snapshot i: snapshot.i.gate_bias,
    /// .mean_gate, .class_mean_gate, .sample_gates, .sample_blocks (f32, as gatescope decodes
    /// them) and .sample_predictions (i64). The header's JSON and the steps are in the
    /// metadata. (Python users can also read recordings directly: `gatescope.read`.)
    Dump(DumpArgs),
    /// Write a highway MLP or conv highway net as a PyTorch state_dict (safetensors) with its import spec
    ///
    /// DIR/model.safetensors holds the weights under the reference module's names
    /// (docs/pytorch-import.md); DIR/model.json is the spec, which `gatescope.torch.load`
    /// (Python) and every gatescope command open.
    ExportTorch(ExportTorchArgs),
}

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address to accept trainers on (loopback unless you say otherwise)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_value = crate::stream::DEFAULT_ADDR, default_missing_value = crate::stream::DEFAULT_ADDR)]
    pub listen: String,
    /// The recording to write (later connections: STEM-2.gsrec, STEM-3.gsrec, …)
    #[arg(long, value_name = "FILE.gsrec")]
    pub out: PathBuf,
    /// Exit when the first trainer has finished (instead of waiting for Ctrl-C)
    #[arg(long)]
    pub once: bool,
    /// Print one JSON line per event instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// A recording (.gsrec)
    pub path: PathBuf,
    /// The safetensors file to write
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ExportTorchArgs {
    /// A gatescope model (.safetensors): a highway MLP with adaptive gates or a conv highway net
    pub path: PathBuf,
    /// The folder to write model.safetensors and model.json into
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// Recordings, models (gatescope or PyTorch import specs) or reports, opened in turn (a
    /// report fills its own tab) [default: the bundled recordings/default.gsrec]
    pub paths: Vec<PathBuf>,
    /// The tab shown first
    #[arg(long, value_enum)]
    pub tab: Option<ViewTab>,
    /// A second recording to compare the first with (the "Compare runs" tab)
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    /// Accept trainers (`gatescope train --connect`) on ADDR (loopback unless you say otherwise)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::stream::DEFAULT_ADDR)]
    pub listen: Option<String>,
}

/// The viewer's tabs, as `view --tab` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewTab {
    /// Figure 2: gates per layer
    Figure2,
    /// Figure 3: classes
    Figure3,
    /// The layer inspector
    Layers,
    /// Figure 4: lesions
    Lesion,
    /// Sweep / ablation reports
    Studies,
    /// Two runs side by side
    Compare,
}

impl ViewTab {
    pub fn tab(self) -> crate::view::command::Tab {
        use crate::view::command::Tab;
        match self {
            ViewTab::Figure2 => Tab::Figure2,
            ViewTab::Figure3 => Tab::Figure3,
            ViewTab::Layers => Tab::Layers,
            ViewTab::Lesion => Tab::Lesion,
            ViewTab::Studies => Tab::Studies,
            ViewTab::Compare => Tab::Compare,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: TrainFlags,
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
    #[arg(long, value_name = "N{steps|epochs}", default_value_t = CADENCE)]
    pub every: Cadence,
    /// Training examples the gate means are taken over: a count, or `all`
    #[arg(long, value_name = "N|all", default_value_t = ProbeSize::Count(PROBE_EXAMPLES))]
    pub probe: ProbeSize,
    /// Probe samples whose own T and block outputs are kept (spread across the classes)
    #[arg(long, value_name = "K", default_value_t = PROBE_SAMPLES)]
    pub samples: usize,
}

impl CaptureArgs {
    pub fn opts(&self) -> crate::session::CaptureOpts {
        crate::session::CaptureOpts {
            record: self.record.clone(),
            connect: self.connect.clone(),
            queue: None,
            every: Some(self.every),
            probe: crate::recipe::ProbeOpts { size: self.probe, samples: self.samples },
            model: None,
        }
    }
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
    #[arg(long, default_value_t = THREADS)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
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
    #[arg(long, value_name = "N|all", default_value_t = ProbeSize::Count(PROBE_EXAMPLES))]
    pub probe: ProbeSize,
    /// Probe samples whose own T and block outputs are kept
    #[arg(long, value_name = "K", default_value_t = PROBE_SAMPLES)]
    pub samples: usize,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = THREADS)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A model (.safetensors), a PyTorch import spec (.json), a recording (.gsrec) or a report (.json)
    pub path: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The net timed, each by its fast path and by autograd: the Figure-2 MLP or the conv
    /// highway net of Table 1 (10 layers × 16 channels, relu)
    #[arg(long, value_enum, default_value_t = BenchArch::Mlp)]
    pub arch: BenchArch,
    /// Minibatch size
    #[arg(long, default_value_t = BenchOpts::default().batch_size)]
    pub batch_size: usize,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = THREADS)]
    pub threads: usize,
    /// Timed training steps per measurement [default: 400 (mlp), 60 (conv)]
    #[arg(long)]
    pub steps: Option<usize>,
    /// Untimed steps before each measurement [default: 40 (mlp), 5 (conv)]
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Measure repeatedly and report the best of this many rounds (robust to noise)
    #[arg(long, default_value_t = BenchOpts::default().rounds)]
    pub rounds: usize,
    /// What to compare with: a throughput in samples/s, or `python` (or the path of a Python
    /// with torch) to run the project's PyTorch references (benches/pytorch/: eager, fused and
    /// torch.compile; conv: eager and torch.compile) alternating with ours, round by round.
    /// `python` means $GATESCOPE_PYTHON, else the venv of scripts/setup-python.sh, else python3
    #[arg(long, value_name = "SAMPLES_PER_S|python|PYTHON")]
    pub reference: Option<String>,
    /// Also measure the cost of recording: train EPOCHS epochs with and without
    /// `--record` (snapshots at step 0, every --record-every and at the end), side by side
    #[arg(long, value_name = "EPOCHS", num_args = 0..=1, default_missing_value = "8")]
    pub record: Option<usize>,
    /// The snapshot cadence of --record, e.g. 1epochs or 200steps
    #[arg(long, value_name = "CADENCE", default_value = "1epochs")]
    pub record_every: Cadence,
    /// Print a JSON object
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    pub fn opts(&self) -> anyhow::Result<BenchOpts> {
        let net = match self.arch {
            BenchArch::Mlp => crate::bench::BenchNet::Mlp,
            BenchArch::Conv => crate::bench::BenchNet::Conv,
        };
        let (steps, warmup) = net.default_steps();
        Ok(BenchOpts {
            net,
            batch_size: self.batch_size,
            threads: self.threads,
            steps: self.steps.unwrap_or(steps),
            warmup: self.warmup.unwrap_or(warmup),
            rounds: self.rounds,
            reference: self.reference.as_deref().map(reference).transpose()?,
            record_epochs: self.record,
            record_every: self.record_every,
        })
    }
}

/// `--reference`: a number, `python`, or a Python's path.
fn reference(s: &str) -> anyhow::Result<crate::bench::Reference> {
    use crate::bench::Reference;
    if let Ok(r) = s.parse::<f64>() {
        anyhow::ensure!(r.is_finite() && r > 0.0, "--reference {s}: a throughput must be a positive number of samples/s");
        return Ok(Reference::Fixed(r));
    }
    let python = match s {
        "python" => std::env::var_os("GATESCOPE_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
            let cache = std::env::var_os("GATESCOPE_CACHE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/gatescope")));
            let venv = cache.map(|c| c.join("venv-torch-2.13.0/bin/python"));
            venv.filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("python3"))
        }),
        path => PathBuf::from(path),
    };
    Ok(Reference::Python(python))
}

/// `bench --arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchArch {
    /// The Figure-2 MLP
    Mlp,
    /// The conv highway net of Table 1
    Conv,
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
    #[arg(long, default_value_t = THREADS)]
    pub threads: usize,
    /// Where to run: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
}

/// The recipe every run of a study shares: the training recipe ([`RECIPE`]) with these
/// overrides.
#[derive(Debug, Clone, clap::Args)]
pub struct StudyArgs {
    /// Dataset (MNIST is bundled; CIFAR needs --data-dir)
    #[arg(long, value_enum, default_value_t = RECIPE.dataset)]
    pub dataset: DatasetKind,
    /// Folder with the dataset's files
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Epochs of every run (the shared budget)
    #[arg(long, default_value_t = STUDY_EPOCHS)]
    pub epochs: usize,
    /// Learning rate (without --search) [default: the recipe's, 0.1]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum (without --search) [default: the recipe's, 0.9]
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay (without --search) [default: the recipe's, 5e-4]
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Initial gate bias of highway nets (without --search) [default: -2; conv: -1]
    #[arg(long, allow_hyphen_values = true)]
    pub gate_bias: Option<f32>,
    /// Activation of every net
    #[arg(long, value_enum, default_value_t = RECIPE.activation)]
    pub activation: Activation,
    /// Units per layer of every net [default: 50; in a sweep, plain nets 71, so that a layer
    /// has about as many parameters as a highway layer]
    #[arg(long)]
    pub width: Option<usize>,
    /// Minibatch size
    #[arg(long, default_value_t = RECIPE.batch_size)]
    pub batch_size: usize,
    /// Random search: this many trials per configuration (learning rate, momentum, weight
    /// decay, gate bias), each --search-epochs long; the best is then trained for --epochs
    #[arg(long, default_value_t = 0)]
    pub search: usize,
    /// Epochs of each search trial
    #[arg(long, default_value_t = 2)]
    pub search_epochs: usize,
    /// Training examples of each search trial (the first N)
    #[arg(long, value_name = "N", default_value_t = PROBE_EXAMPLES)]
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
    #[arg(long, default_value_t = RECIPE.seed)]
    pub seed: u64,
    /// Where every run trains: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

impl StudyArgs {
    /// The recipe with this study's overrides, `threads` libtorch threads per run.
    pub fn config(&self, threads: usize) -> TrainConfig {
        TrainConfig {
            dataset: self.dataset,
            data_dir: self.data_dir.clone(),
            epochs: self.epochs,
            lr: self.lr.unwrap_or(RECIPE.lr),
            momentum: self.momentum.unwrap_or(RECIPE.momentum),
            weight_decay: self.weight_decay.unwrap_or(RECIPE.weight_decay),
            gate_bias: self.gate_bias,
            activation: self.activation,
            batch_size: self.batch_size,
            seed: self.seed,
            threads,
            device: self.device,
            width: self.width,
            ..RECIPE
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Depths (hidden layers, counting the plain first layer)
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100")]
    pub depths: Vec<usize>,
    /// Families
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain,highway,residual")]
    pub families: Vec<Family>,
    #[command(flatten)]
    pub study: StudyArgs,
    /// Where to write the JSON report
    #[arg(long, default_value = "runs/sweep.json")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct AblateArgs {
    /// Hidden layers of every net
    #[arg(long, default_value_t = RECIPE.depth)]
    pub depth: usize,
    /// T of the fixed-gate variant
    #[arg(long, default_value_t = RECIPE.fixed_gate)]
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
    #[arg(long, value_name = "FILE", conflicts_with = "animate")]
    pub out: Option<PathBuf>,
    /// Figures 2 and 3 from a recording: an animated GIF with one frame per snapshot (step,
    /// epoch and accuracy in each title; one colour scale across all frames)
    #[arg(long, value_name = "FILE.gif")]
    pub animate: Option<PathBuf>,
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
    #[arg(long, default_value_t = THREADS)]
    pub threads: usize,
    /// Where to probe or lesion a model: cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
}

/// The flags of a training run: each maps onto a field of [`TrainConfig`], whose defaults
/// ([`RECIPE`]) they show.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainFlags {
    /// Dataset to train on (MNIST is bundled; CIFAR needs --data-dir)
    #[arg(long, value_enum, default_value_t = RECIPE.dataset)]
    pub dataset: DatasetKind,
    /// Folder with the dataset's files (MNIST: the four IDX files, gzipped or not;
    /// CIFAR-10: data_batch_1..5.bin, test_batch.bin; CIFAR-100: train.bin, test.bin)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Network family
    #[arg(long, value_enum, default_value_t = RECIPE.arch)]
    pub arch: Family,
    /// Hidden layers, counting the plain first layer (Figure 2: 50 = 1 plain + 49 highway)
    #[arg(long, default_value_t = RECIPE.depth)]
    pub depth: usize,
    /// Units per hidden layer (conv: channels) [default: 50; plain: 71, so a layer has about as
    /// many parameters as a highway layer, as in the paper's Figure 1; conv: 16]
    #[arg(long)]
    pub width: Option<usize>,
    /// Activation of the blocks H (and of residual branches and plain layers)
    #[arg(long, value_enum, default_value_t = RECIPE.activation)]
    pub activation: Activation,
    /// Initial transform-gate bias b_T (highway); negative biases the net towards carrying
    /// [default: -2; conv: -1, see ARCHITECTURE.md, "Initialisation"]
    #[arg(long, allow_hyphen_values = true)]
    pub gate_bias: Option<f32>,
    /// How a highway layer's gate T is computed: adaptive (sigmoid(W_T x + b_T), the paper),
    /// learned (sigmoid(b_T), one value per unit for every input) or fixed (--fixed-gate)
    #[arg(long, value_enum, default_value_t = RECIPE.gate)]
    pub gate: GateMode,
    /// T of every unit with --gate fixed
    #[arg(long, default_value_t = RECIPE.fixed_gate)]
    pub fixed_gate: f32,
    /// Conv nets: stages of highway layers, with 2×2 max pooling between them
    #[arg(long, default_value_t = RECIPE.stages)]
    pub stages: usize,
    /// Layers in a residual branch F (residual: y = x + F(x)), 1 or 2
    #[arg(long, default_value_t = RECIPE.residual_layers, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub residual_layers: u8,
    /// Optimiser
    #[arg(long, value_enum, default_value_t = RECIPE.optimizer)]
    pub optimizer: Optimizer,
    /// Peak learning rate
    #[arg(long, default_value_t = RECIPE.lr)]
    pub lr: f64,
    /// Momentum
    #[arg(long, default_value_t = RECIPE.momentum)]
    pub momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = RECIPE.weight_decay)]
    pub weight_decay: f64,
    /// Learning-rate schedule over the run
    #[arg(long, value_enum, default_value_t = RECIPE.schedule)]
    pub schedule: Schedule,
    /// step schedule: epochs between decays
    #[arg(long, default_value_t = RECIPE.lr_step_epochs)]
    pub lr_step_epochs: usize,
    /// step and exponential schedules: decay factor (per step of the schedule / per epoch)
    #[arg(long, default_value_t = RECIPE.lr_gamma)]
    pub lr_gamma: f64,
    /// Epochs of linear warm-up from lr/10 to lr
    #[arg(long, default_value_t = RECIPE.warmup_epochs)]
    pub warmup_epochs: f64,
    /// Data augmentation: shift every training image by a fresh random offset of up to N
    /// pixels in x and y, filling with zeros; 0 = off
    #[arg(long, value_name = "PIXELS", default_value_t = RECIPE.shift)]
    pub shift: usize,
    /// Minibatch size
    #[arg(long, default_value_t = RECIPE.batch_size)]
    pub batch_size: usize,
    /// Epochs
    #[arg(long, default_value_t = RECIPE.epochs)]
    pub epochs: usize,
    /// Stop after this many steps (for quick runs and tests)
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Use only the first N training examples (quick looks)
    #[arg(long, value_name = "N")]
    pub train_examples: Option<usize>,
    /// Use only the first N test examples
    #[arg(long, value_name = "N")]
    pub test_examples: Option<usize>,
    /// Start from this model's parameters instead of a fresh initialisation (to train on, e.g.
    /// with a smaller --lr); its architecture must be the one these flags describe
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
    /// Random seed (initialisation and batch order); the same seed gives the same run
    #[arg(long, default_value_t = RECIPE.seed)]
    pub seed: u64,
    /// Intra-op threads for libtorch
    #[arg(long, default_value_t = RECIPE.threads)]
    pub threads: usize,
    /// Where to train (and probe): cpu, cuda (a GPU; an error without one) or auto
    #[arg(long, value_enum, default_value_t = RECIPE.device)]
    pub device: DeviceChoice,
    /// Use autograd instead of the hand-written backward with fused pointwise kernels (same
    /// numbers, slower). The highway MLP and, on the CPU, the conv highway net have one; other
    /// families always use autograd
    #[arg(long)]
    pub no_fast: bool,
}

impl TrainFlags {
    /// The plain training configuration these flags describe.
    pub fn config(&self) -> TrainConfig {
        let f = self.clone();
        TrainConfig {
            dataset: f.dataset,
            data_dir: f.data_dir,
            arch: f.arch,
            depth: f.depth,
            width: f.width,
            activation: f.activation,
            gate_bias: f.gate_bias,
            gate: f.gate,
            fixed_gate: f.fixed_gate,
            stages: f.stages,
            residual_layers: f.residual_layers,
            optimizer: f.optimizer,
            lr: f.lr,
            momentum: f.momentum,
            weight_decay: f.weight_decay,
            schedule: f.schedule,
            lr_step_epochs: f.lr_step_epochs,
            lr_gamma: f.lr_gamma,
            warmup_epochs: f.warmup_epochs,
            shift: f.shift,
            batch_size: f.batch_size,
            epochs: f.epochs,
            max_steps: f.max_steps,
            train_examples: f.train_examples,
            test_examples: f.test_examples,
            init: f.init,
            seed: f.seed,
            threads: f.threads,
            device: f.device,
            no_fast: f.no_fast,
        }
    }
}

/// `clap::ValueEnum` for the library's plain enums, so that they need not know clap: the
/// name on the command line (the serde name too) and its help.
macro_rules! value_enum {
    ($t:ty { $($v:ident => $name:literal $(, $help:literal)?;)* }) => {
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(<$t>::$v),*]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(<$t>::$v => PossibleValue::new($name)$(.help($help))?,)*
                })
            }
        }
    };
}

value_enum!(Family {
    Highway => "highway", "y = H(x)·T(x) + x·(1 − T(x)) (the paper's highway MLP)";
    Plain => "plain", "y = H(x), no skip";
    Residual => "residual", "y = x + F(x)";
    Conv => "conv", "Convolutional highway net (the paper's Table 1)";
});
value_enum!(Activation {
    Tanh => "tanh";
    Relu => "relu";
});
value_enum!(GateMode {
    Adaptive => "adaptive", "T = sigmoid(W_T x + b_T): data-dependent (the paper's highway layer)";
    Learned => "learned", "T = sigmoid(b_T): learned per unit, the same for every input";
    Fixed => "fixed", "T = the constant --fixed-gate, nothing learned";
});
value_enum!(DatasetKind {
    Mnist => "mnist";
    Cifar10 => "cifar10";
    Cifar100 => "cifar100";
});
value_enum!(Optimizer {
    Sgd => "sgd", "SGD with (heavy-ball) momentum, as PyTorch's SGD";
    Nesterov => "nesterov", "SGD with Nesterov momentum";
});
value_enum!(Schedule {
    Constant => "constant", "Constant learning rate";
    Step => "step", "Multiply by --lr-gamma every --lr-step-epochs epochs";
    Exponential => "exponential", "Multiply by --lr-gamma every epoch";
    Cosine => "cosine", "Cosine from --lr down to 0 over the run";
});
value_enum!(DeviceChoice {
    Cpu => "cpu", "The CPU (the default)";
    Cuda => "cuda", "The first CUDA GPU; an error if libtorch has no CUDA or no GPU is visible";
    Auto => "auto", "A CUDA GPU when there is one, else the CPU";
});
