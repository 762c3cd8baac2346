//! `gatescope bench`: training throughput of the Figure-2 model on real MNIST batches, through
//! the trainer's own step ([`crate::train::Stepper`]), fast path and autograd side by side.

use std::time::Instant;

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::cli::BenchArgs;
use crate::data;
use crate::model::{Arch, Model};
use crate::train::{Stepper, Tensors, TrainConfig};

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
pub fn recording_cost(epochs: usize, threads: usize, rounds: usize, bar: &indicatif::ProgressBar) -> anyhow::Result<RecordingCost> {
    use crate::capture::{Cadence, Capture, Sinks};
    use crate::probe::{ProbeSet, ProbeSize};
    let data = data::load(data::DatasetKind::Mnist, None)?;
    let mut cfg = TrainConfig::default_recipe();
    cfg.epochs = epochs;
    cfg.threads = threads;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let cadence: Cadence = "4epochs".parse().map_err(anyhow::Error::msg)?;
    let (probe_n, k) = (10_000, 32);
    let dir = std::env::temp_dir().join(format!("gatescope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.gsrec");

    let samples = |o: &crate::train::Outcome| (o.card.metrics.as_ref().map_or(0, |m| m.steps) * cfg.batch_size) as f64;
    // alternate the two, best of `rounds` each, so that machine noise hits both alike
    let (mut p, mut r, mut snapshots, mut file_bytes) = (0f64, 0f64, 0, 0);
    for round in 0..rounds.max(1) {
        bar.set_message(format!("round {}: training without recording", round + 1));
        let t = Instant::now();
        let plain = crate::train::train(&cfg, &data, &stop, &mut ())?;
        p = p.max(samples(&plain) / t.elapsed().as_secs_f64());

        bar.set_message(format!("round {}: training with recording", round + 1));
        let probe = ProbeSet::new(&data, ProbeSize::Count(probe_n), k);
        let header = probe.header(crate::train::initial_card(&cfg, &data)?, "bench");
        let t = Instant::now();
        let mut capture = Capture::new(probe, cadence, Sinks::open(&header, Some(&path), None, None)?);
        let rec = crate::train::train(&cfg, &data, &stop, &mut capture)?;
        snapshots = capture.snapshots;
        capture.sinks.finish();
        r = r.max(samples(&rec) / t.elapsed().as_secs_f64());
        file_bytes = std::fs::metadata(&path)?.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RecordingCost {
        epochs,
        cadence: cadence.to_string(),
        probe_examples: probe_n,
        samples: k,
        plain_samples_per_s: p,
        recording_samples_per_s: r,
        overhead_percent: 100.0 * (p - r) / p,
        snapshots,
        file_bytes,
    })
}

/// Samples/s of `steps` training steps after `warmup` untimed ones.
pub fn measure(fast: bool, args: &BenchArgs, train: &Tensors, progress: &indicatif::ProgressBar) -> anyhow::Result<f64> {
    let mut cfg = TrainConfig::default_recipe();
    cfg.batch_size = args.batch_size;
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
        progress.inc(1);
    }
    Ok((args.steps * args.batch_size) as f64 / start.elapsed().as_secs_f64())
}

pub fn run(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.steps >= 1 && args.rounds >= 1, "--steps and --rounds must be at least 1");
    tch::set_num_threads(args.threads as i32);
    let data = data::load(data::DatasetKind::Mnist, None)?;
    let train = Tensors::train(&data);
    let bar = indicatif::ProgressBar::new((2 * args.rounds * (args.steps + args.warmup)) as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("bench {bar:40} {pos}/{len} steps {msg}")?);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut fast, mut slow) = (0f64, 0f64);
    // Alternate the two paths so that machine noise hits both alike.
    for _ in 0..args.rounds {
        fast = fast.max(measure(true, args, &train, &bar)?);
        slow = slow.max(measure(false, args, &train, &bar)?);
        bar.set_message(format!("fast {fast:.0}/s, autograd {slow:.0}/s"));
    }
    let recording = match args.record {
        Some(epochs) => Some(recording_cost(epochs.max(1), args.threads, args.rounds, &bar)?),
        None => None,
    };
    bar.finish_and_clear();
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
