//! `gatescope bench`: training throughput on real MNIST batches through the trainer's own step
//! ([`crate::train::Stepper`]): the Figure-2 model or the conv highway net of Table 1, each by
//! its fast path and by autograd side by side; optionally the project's PyTorch references
//! (`benches/pytorch/`) run as subprocesses, alternating with ours round by round.

pub mod peak;

use std::time::Instant;

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::arch::{Activation, Family};
use crate::data;
use crate::model::Model;
use crate::recipe::{Cadence, ProbeOpts, TrainConfig, RECIPE, THREADS};
use crate::session::{self, CaptureOpts};
use crate::train::{Stepper, Tensors};

/// Which net is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchNet {
    /// The Figure-2 MLP: 784 → 50 plain → 49 highway × 50 tanh → 10.
    #[default]
    Mlp,
    /// The conv highway net of Table 1: 10 layers × 16 channels, relu, stages [3, 3, 3].
    Conv,
}

impl BenchNet {
    /// Timed and untimed steps per measurement when not given: (steps, warmup).
    pub fn default_steps(self) -> (usize, usize) {
        match self {
            BenchNet::Mlp => (400, 40),
            BenchNet::Conv => (60, 5),
        }
    }

    fn config(self, batch_size: usize) -> TrainConfig {
        match self {
            BenchNet::Mlp => TrainConfig { batch_size, ..RECIPE },
            BenchNet::Conv => {
                TrainConfig { arch: Family::Conv, depth: 10, width: Some(16), activation: Activation::Relu, batch_size, ..RECIPE }
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            BenchNet::Mlp => "figure2: 784 → 50 plain → 49 highway × 50 tanh → 10",
            BenchNet::Conv => "conv highway (Table 1): 3x3 conv 1 → 16, 9 highway layers × 16 channels in stages [3, 3, 3], relu → 10",
        }
    }

    /// The project's PyTorch reference script and the variants timed: (label, flags).
    fn references(self) -> (&'static str, &'static [(&'static str, &'static [&'static str])]) {
        match self {
            BenchNet::Mlp => (
                "benches/pytorch/highway.py",
                &[
                    ("pytorch eager", &[]),
                    ("pytorch eager, H|T fused", &["--fused"]),
                    ("pytorch torch.compile, H|T fused", &["--fused", "--compile"]),
                ],
            ),
            BenchNet::Conv => ("benches/pytorch/conv_highway.py", &[("pytorch eager", &[]), ("pytorch torch.compile", &["--compile"])]),
        }
    }
}

/// What ours is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// A throughput measured elsewhere (samples/s).
    Fixed(f64),
    /// The project's PyTorch references, run by this Python (with torch), alternating with ours.
    Python(std::path::PathBuf),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub net: BenchNet,
    pub batch_size: usize,
    pub threads: usize,
    /// Timed training steps per measurement.
    pub steps: usize,
    /// Untimed steps before each measurement.
    pub warmup: usize,
    /// Measurements of each path; the best counts.
    pub rounds: usize,
    pub reference: Option<Reference>,
    /// Also measure recording's cost over this many epochs,
    pub record_epochs: Option<usize>,
    /// snapshotting at this cadence.
    pub record_every: Cadence,
}

impl Default for BenchOpts {
    fn default() -> Self {
        let (steps, warmup) = BenchNet::Mlp.default_steps();
        BenchOpts {
            net: BenchNet::Mlp,
            batch_size: RECIPE.batch_size,
            threads: THREADS,
            steps,
            warmup,
            rounds: 3,
            reference: None,
            record_epochs: None,
            record_every: Cadence::Epochs(1),
        }
    }
}

/// One reference system's best round.
#[derive(Debug, Serialize)]
pub struct ReferenceRun {
    pub system: String,
    pub samples_per_s: f64,
    /// Ours (the fast path) over it.
    pub ours_over_it: f64,
}

/// How far a bench has come, for a front-end's progress display.
pub enum Tick<'a> {
    /// The total number of steps to come.
    Total(u64),
    /// One more step done.
    Step,
    /// What is being measured now.
    Message(&'a str),
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub batch_size: usize,
    pub threads: usize,
    pub steps: usize,
    pub rounds: usize,
    /// Best round, the hand-written backward with fused pointwise kernels.
    pub fast_samples_per_s: Option<f64>,
    /// Best round, autograd over the same parameters.
    pub autograd_samples_per_s: f64,
    pub fast_over_autograd: Option<f64>,
    /// Work of one training sample (forward and backward), in FLOP (the MLP only).
    pub flop_per_sample: Option<f64>,
    /// What ours does of it per second, in GFLOP/s.
    pub gflop_per_s: Option<f64>,
    /// This machine's FMA peak on the same threads, measured ([`peak::measure`]).
    pub peak: Option<peak::Peak>,
    /// Ours as a share of that peak, in percent.
    pub percent_of_peak: Option<f64>,
    /// A fixed reference throughput (`--reference N`) and ours over it.
    pub reference_samples_per_s: Option<f64>,
    pub fast_over_reference: Option<f64>,
    /// The project's PyTorch references (`--reference python`), best round each.
    pub references: Vec<ReferenceRun>,
    /// With `--record`: the cost of recording at the default cadence.
    pub recording: Option<RecordingCost>,
}

/// Training with and without recording, side by side (wall time of whole runs, including the
/// step-0 and final snapshots). Snapshots are probed beside the training, on the cores it
/// leaves idle ([`crate::capture::Capture`]), so their cost is what the wall clock says.
#[derive(Debug, Serialize)]
pub struct RecordingCost {
    pub epochs: usize,
    pub cadence: String,
    pub probe_examples: usize,
    pub samples: usize,
    pub plain_samples_per_s: f64,
    pub recording_samples_per_s: f64,
    /// (plain − recording) / plain, in percent, of the best round of each.
    pub overhead_percent: f64,
    /// The same, round by round (each round runs the two back to back).
    pub round_overhead_percent: Vec<f64>,
    /// Inside the recorded runs (the least of the rounds): the seconds the trainer spent
    /// handing snapshots over (copying the parameters, waiting for the prober) over the run's
    /// seconds, in percent.
    pub handover_percent: f64,
    /// Inside the recorded runs (the least of the rounds): the seconds the prober spent
    /// probing and writing, beside the training, over the run's seconds, in percent.
    pub probe_percent: f64,
    pub snapshots: usize,
    pub file_bytes: u64,
}

/// Trains `epochs` epochs of the default recipe twice, without and with a recording every
/// `every`.
pub fn recording_cost(
    epochs: usize,
    every: Cadence,
    threads: usize,
    rounds: usize,
    tick: &mut dyn FnMut(Tick),
) -> anyhow::Result<RecordingCost> {
    let data = data::load(data::DatasetKind::Mnist, None)?;
    let cfg = crate::recipe::TrainConfig { epochs, threads, ..RECIPE };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let probe = ProbeOpts::default();
    let dir = std::env::temp_dir().join(format!("gatescope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.gsrec");

    let samples = |o: &crate::train::Outcome| (o.card.metrics.as_ref().map_or(0, |m| m.steps) * cfg.batch_size) as f64;
    // alternate the two, best of `rounds` each, so that machine noise hits both alike
    let (mut p, mut r, mut snapshots, mut file_bytes) = (0f64, 0f64, 0, 0);
    let (mut rounds_percent, mut handover, mut probing) = (Vec::new(), f64::INFINITY, f64::INFINITY);
    for round in 0..rounds.max(1) {
        // the two in turn, and which goes first alternates from round to round, so that a
        // machine warming up or cooling down over a pair does not favour either
        let (mut plain_rate, mut rate) = (0.0, 0.0);
        for recorded in [round % 2 == 1, round % 2 == 0] {
            let what = if recorded { "with" } else { "without" };
            tick(Tick::Message(&format!("round {}: training {what} recording", round + 1)));
            let t = Instant::now();
            if !recorded {
                let plain = crate::train::train(&cfg, &data, &stop, &mut ())?;
                plain_rate = samples(&plain) / t.elapsed().as_secs_f64();
                continue;
            }
            let capture = CaptureOpts { record: Some(path.clone()), every: Some(every), probe, ..Default::default() };
            let run = session::train_recorded(&cfg, &data, capture, "bench", &stop, &mut ())?;
            let seconds = t.elapsed().as_secs_f64();
            rate = samples(&run.outcome) / seconds;
            handover = handover.min(run.handover_seconds / seconds);
            probing = probing.min(run.probe_seconds / seconds);
            snapshots = run.snapshots;
            file_bytes = std::fs::metadata(&path)?.len();
        }
        (p, r) = (p.max(plain_rate), r.max(rate));
        rounds_percent.push(100.0 * (plain_rate - rate) / plain_rate);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RecordingCost {
        epochs,
        cadence: every.to_string(),
        probe_examples: crate::recipe::PROBE_EXAMPLES,
        samples: probe.samples,
        plain_samples_per_s: p,
        recording_samples_per_s: r,
        overhead_percent: 100.0 * (p - r) / p,
        round_overhead_percent: rounds_percent,
        handover_percent: 100.0 * handover,
        probe_percent: 100.0 * probing,
        snapshots,
        file_bytes,
    })
}

/// Samples/s of `steps` training steps after `warmup` untimed ones.
pub fn measure(fast: bool, args: &BenchOpts, data: &data::Dataset, train: &Tensors, tick: &mut dyn FnMut(Tick)) -> anyhow::Result<f64> {
    let cfg = TrainConfig { threads: args.threads, ..args.net.config(args.batch_size) };
    let mut model = Model::new(cfg.arch(data), 0)?;
    let mut stepper = Stepper::new(&model, &cfg, fast);
    let n = train.x.size()[0];
    let b = args.batch_size as i64;
    anyhow::ensure!(b >= 1 && b <= n, "--batch-size must be in 1..={n}");
    let perm = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
    // as the trainer does: libtorch on one thread while the steps run their own
    let torch = if stepper.owns_threads() { 1 } else { args.threads };
    crate::train::torch_threads(torch, || timed_steps(args, &mut stepper, &mut model, train, &perm, tick))
}

/// Samples/s of the timed steps of [`measure`].
fn timed_steps(
    args: &BenchOpts,
    stepper: &mut Stepper,
    model: &mut Model,
    train: &Tensors,
    perm: &Tensor,
    tick: &mut dyn FnMut(Tick),
) -> anyhow::Result<f64> {
    let (n, b) = (train.x.size()[0], args.batch_size as i64);
    let mut start = Instant::now();
    for i in 0..args.warmup + args.steps {
        if i == args.warmup {
            start = Instant::now();
        }
        let at = (i as i64 * b) % (n - b + 1);
        let idx = perm.narrow(0, at, b);
        let (loss, _) = stepper.step(model, &train.x.index_select(0, &idx), &train.y.index_select(0, &idx), 0.01);
        let _ = f64::try_from(&loss)?; // the trainer reads the loss every step too
        tick(Tick::Step);
    }
    Ok((args.steps * args.batch_size) as f64 / start.elapsed().as_secs_f64())
}

pub fn run(args: &BenchOpts, tick: &mut dyn FnMut(Tick)) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.steps >= 1 && args.rounds >= 1, "--steps and --rounds must be at least 1");
    tch::set_num_threads(args.threads as i32);
    let data = data::load(data::DatasetKind::Mnist, None)?;
    let train = Tensors::train(&data);
    tick(Tick::Total((2 * args.rounds * (args.steps + args.warmup)) as u64));
    let python = match &args.reference {
        Some(Reference::Python(p)) => Some(p.as_path()),
        _ => None,
    };
    let variants = args.net.references().1;
    let (mut fast, mut slow, mut refs) = (0f64, 0f64, vec![0f64; variants.len()]);
    // Alternate the paths (and the references) so that machine noise hits all alike.
    for round in 0..args.rounds {
        if let Some(py) = python {
            for (best, (label, flags)) in refs.iter_mut().zip(variants) {
                tick(Tick::Message(&format!("round {}: {label}", round + 1)));
                *best = best.max(python_reference(py, args, flags)?);
            }
        }
        fast = fast.max(measure(true, args, &data, &train, tick)?);
        slow = slow.max(measure(false, args, &data, &train, tick)?);
        tick(Tick::Message(&format!("fast {fast:.0}/s, autograd {slow:.0}/s")));
    }
    let recording = match args.record_epochs {
        Some(epochs) => Some(recording_cost(epochs.max(1), args.record_every, args.threads, args.rounds, tick)?),
        None => None,
    };
    let ours = fast;
    let flop = args.net.config(args.batch_size).arch(&data).training_flop_per_sample().map(|f| f as f64);
    tick(Tick::Message("this machine's FMA peak"));
    let peak = peak::measure(args.threads);
    let gflop_per_s = flop.map(|f| ours * f / 1e9);
    let fixed = match args.reference {
        Some(Reference::Fixed(r)) => Some(r),
        _ => None,
    };
    let references = match python {
        Some(_) => variants
            .iter()
            .zip(&refs)
            .map(|((label, _), &r)| ReferenceRun { system: label.to_string(), samples_per_s: r, ours_over_it: ours / r })
            .collect(),
        None => Vec::new(),
    };
    Ok(BenchReport {
        model: args.net.describe().into(),
        batch_size: args.batch_size,
        threads: args.threads,
        steps: args.steps,
        rounds: args.rounds,
        fast_samples_per_s: Some(fast),
        autograd_samples_per_s: slow,
        fast_over_autograd: Some(fast / slow),
        flop_per_sample: flop,
        gflop_per_s,
        percent_of_peak: gflop_per_s.zip(peak.as_ref()).map(|(g, p)| 100.0 * g / p.gflop_per_s),
        peak,
        reference_samples_per_s: fixed,
        fast_over_reference: fixed.map(|r| ours / r),
        references,
        recording,
    })
}

/// Runs the project's PyTorch reference with `flags` under `python` and returns its samples/s.
fn python_reference(python: &std::path::Path, args: &BenchOpts, flags: &[&str]) -> anyhow::Result<f64> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(args.net.references().0);
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(flags)
        .args(["--threads", &args.threads.to_string(), "--batch-size", &args.batch_size.to_string()])
        .args(["--steps", &args.steps.to_string(), "--warmup", &args.warmup.to_string()])
        .output()
        .map_err(|e| anyhow::anyhow!("running the PyTorch reference with {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "the PyTorch reference {} {} failed: {}",
        script.display(),
        flags.join(" "),
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
    );
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("the PyTorch reference printed no JSON ({e})"))?;
    v["samples_per_sec"].as_f64().ok_or_else(|| anyhow::anyhow!("the PyTorch reference printed no samples_per_sec"))
}
