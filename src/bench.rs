//! `gatescope bench`: training throughput of the Figure-2 model on real MNIST batches, through
//! the trainer's own step ([`crate::train::Stepper`]), fast path and autograd side by side.

use std::time::Instant;

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::data;
use crate::model::{Arch, Model};
use crate::recipe::{ProbeOpts, CADENCE, RECIPE, THREADS};
use crate::session::{self, CaptureOpts};
use crate::train::{Stepper, Tensors};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub batch_size: usize,
    pub threads: usize,
    /// Timed training steps per measurement.
    pub steps: usize,
    /// Untimed steps before each measurement.
    pub warmup: usize,
    /// Measurements of each path; the best counts.
    pub rounds: usize,
    /// A reference throughput to compute a ratio against.
    pub reference: Option<f64>,
    /// Also measure recording's cost over this many epochs.
    pub record_epochs: Option<usize>,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            batch_size: RECIPE.batch_size,
            threads: THREADS,
            steps: 400,
            warmup: 40,
            rounds: 3,
            reference: None,
            record_epochs: None,
        }
    }
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
    /// Best round, fused kernel with hand-written backward.
    pub fast_samples_per_s: f64,
    /// Best round, autograd over the same parameters.
    pub autograd_samples_per_s: f64,
    pub fast_over_autograd: f64,
    pub reference_samples_per_s: Option<f64>,
    pub fast_over_reference: Option<f64>,
    /// With `--record`: the cost of recording at the default cadence.
    pub recording: Option<RecordingCost>,
}

/// Training with and without recording, side by side (wall time of whole runs, including the
/// step-0 and final snapshots).
#[derive(Debug, Serialize)]
pub struct RecordingCost {
    pub epochs: usize,
    pub cadence: String,
    pub probe_examples: usize,
    pub samples: usize,
    pub plain_samples_per_s: f64,
    pub recording_samples_per_s: f64,
    /// (plain − recording) / plain, in percent.
    pub overhead_percent: f64,
    pub snapshots: usize,
    pub file_bytes: u64,
}

/// Trains `epochs` epochs of the default recipe twice, without and with a recording.
pub fn recording_cost(epochs: usize, threads: usize, rounds: usize, tick: &mut dyn FnMut(Tick)) -> anyhow::Result<RecordingCost> {
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
    for round in 0..rounds.max(1) {
        tick(Tick::Message(&format!("round {}: training without recording", round + 1)));
        let t = Instant::now();
        let plain = crate::train::train(&cfg, &data, &stop, &mut ())?;
        p = p.max(samples(&plain) / t.elapsed().as_secs_f64());

        tick(Tick::Message(&format!("round {}: training with recording", round + 1)));
        let t = Instant::now();
        let capture = CaptureOpts { record: Some(path.clone()), every: Some(CADENCE), probe, ..Default::default() };
        let run = session::train_recorded(&cfg, &data, capture, "bench", &stop, &mut ())?;
        r = r.max(samples(&run.outcome) / t.elapsed().as_secs_f64());
        snapshots = run.snapshots;
        file_bytes = std::fs::metadata(&path)?.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RecordingCost {
        epochs,
        cadence: CADENCE.to_string(),
        probe_examples: crate::recipe::PROBE_EXAMPLES,
        samples: probe.samples,
        plain_samples_per_s: p,
        recording_samples_per_s: r,
        overhead_percent: 100.0 * (p - r) / p,
        snapshots,
        file_bytes,
    })
}

/// Samples/s of `steps` training steps after `warmup` untimed ones.
pub fn measure(fast: bool, args: &BenchOpts, train: &Tensors, tick: &mut dyn FnMut(Tick)) -> anyhow::Result<f64> {
    let cfg = crate::recipe::TrainConfig { batch_size: args.batch_size, ..RECIPE };
    let mut model = Model::new(Arch::figure2(), 0)?;
    let mut stepper = Stepper::new(&model, &cfg, fast);
    let n = train.x.size()[0];
    let b = args.batch_size as i64;
    anyhow::ensure!(b >= 1 && b <= n, "--batch-size must be in 1..={n}");
    let perm = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
    let mut start = Instant::now();
    for i in 0..args.warmup + args.steps {
        if i == args.warmup {
            start = Instant::now();
        }
        let at = (i as i64 * b) % (n - b + 1);
        let idx = perm.narrow(0, at, b);
        let (loss, _) = stepper.step(&mut model, &train.x.index_select(0, &idx), &train.y.index_select(0, &idx), 0.01);
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
    let (mut fast, mut slow) = (0f64, 0f64);
    // Alternate the two paths so that machine noise hits both alike.
    for _ in 0..args.rounds {
        fast = fast.max(measure(true, args, &train, tick)?);
        slow = slow.max(measure(false, args, &train, tick)?);
        tick(Tick::Message(&format!("fast {fast:.0}/s, autograd {slow:.0}/s")));
    }
    let recording = match args.record_epochs {
        Some(epochs) => Some(recording_cost(epochs.max(1), args.threads, args.rounds, tick)?),
        None => None,
    };
    Ok(BenchReport {
        model: "figure2: 784 → 50 plain → 49 highway × 50 tanh → 10".into(),
        batch_size: args.batch_size,
        threads: args.threads,
        steps: args.steps,
        rounds: args.rounds,
        fast_samples_per_s: fast,
        autograd_samples_per_s: slow,
        fast_over_autograd: fast / slow,
        reference_samples_per_s: args.reference,
        fast_over_reference: args.reference.map(|r| fast / r),
        recording,
    })
}
