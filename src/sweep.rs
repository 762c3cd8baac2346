//! Many training runs with the same budget: the depth sweep (Figure 1) and the gate ablation.
//!
//! A study is a list of [`Variant`]s (a name and a [`TrainConfig`]). Each is trained, after an
//! optional random search over its hyper-parameters as in the paper, and summarised as a
//! [`RunResult`] with its training cross-entropy per epoch. Runs go in parallel up to
//! `jobs`, sharing the cores (libtorch threads = cores / jobs).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::arch::{Family, GateMode};
use crate::data::Dataset;
use crate::model::Model;
use crate::report::{RunResult, Score};
use crate::train::{self, EpochStats, Observer, TrainConfig};

/// One configuration of a study.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub config: TrainConfig,
}

/// How a study runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Random-search trials per variant (0: the variant's own hyper-parameters).
    pub search: usize,
    /// Epochs of each search trial.
    pub search_epochs: usize,
    /// Training examples of each search trial (the first N).
    pub search_examples: usize,
    /// Runs at once.
    pub jobs: usize,
    /// Seed of the search.
    pub seed: u64,
}

/// What a study reports while it runs.
pub trait StudyProgress: Sync {
    /// A run (or search trial) of `variant` started; `total_epochs` to go.
    fn started(&self, variant: &str, trial: usize, total_epochs: usize);
    /// An epoch of it ended.
    fn epoch(&self, variant: &str, trial: usize, e: &EpochStats);
    /// A variant is finished (its best run, after any search).
    fn finished(&self, result: &RunResult);
}

/// The depth sweep of Figure 1: every family at every depth, the same recipe otherwise.
pub fn depth_sweep(base: &TrainConfig, families: &[Family], depths: &[usize]) -> Vec<Variant> {
    let mut out = Vec::new();
    for &family in families {
        for &depth in depths {
            let config = TrainConfig { arch: family, depth, ..base.clone() }; // width: as given, else the family's
            out.push(Variant { name: format!("{}-{depth}", family_name(family, GateMode::Adaptive)), config });
        }
    }
    out
}

/// The gate ablation: adaptive T, learned per-unit T, fixed T, and a residual net.
pub fn gate_ablation(base: &TrainConfig, fixed_gate: f32) -> Vec<Variant> {
    let hw = TrainConfig { arch: Family::Highway, ..base.clone() };
    vec![
        Variant { name: "highway, adaptive T(x)".into(), config: TrainConfig { gate: GateMode::Adaptive, ..hw.clone() } },
        Variant { name: "highway, learned T per unit".into(), config: TrainConfig { gate: GateMode::Learned, ..hw.clone() } },
        Variant { name: format!("highway, fixed T = {fixed_gate}"), config: TrainConfig { gate: GateMode::Fixed, fixed_gate, ..hw } },
        Variant { name: "residual".into(), config: TrainConfig { arch: Family::Residual, ..base.clone() } },
    ]
}

pub fn family_name(f: Family, gate: GateMode) -> String {
    match (f, gate) {
        (Family::Highway, GateMode::Adaptive) => "highway".into(),
        (Family::Highway, GateMode::Learned) => "highway-learned-T".into(),
        (Family::Highway, GateMode::Fixed) => "highway-fixed-T".into(),
        (Family::Plain, _) => "plain".into(),
        (Family::Residual, _) => "residual".into(),
        (Family::Conv, _) => "conv-highway".into(),
    }
}

/// Records the per-epoch training loss and forwards epochs to the study's progress.
struct Curve<'a> {
    losses: Vec<f64>,
    variant: &'a str,
    trial: usize,
    progress: &'a dyn StudyProgress,
}

impl Observer for Curve<'_> {
    fn on_epoch(&mut self, e: &EpochStats, _: &Model) -> anyhow::Result<()> {
        self.losses.push(e.train_loss);
        self.progress.epoch(self.variant, self.trial, e);
        Ok(())
    }
}

/// Trains one configuration; a diverged run is a result (marked), not an error.
fn run_one(
    name: &str,
    trial: usize,
    cfg: &TrainConfig,
    data: &Dataset,
    stop: &AtomicBool,
    progress: &dyn StudyProgress,
) -> anyhow::Result<RunResult> {
    progress.started(name, trial, cfg.epochs);
    let mut curve = Curve { losses: Vec::new(), variant: name, trial, progress };
    let t = std::time::Instant::now();
    let arch = cfg.arch(data);
    let outcome = train::train(cfg, data, stop, &mut curve);
    let nan = Score { loss: f64::NAN, accuracy: f64::NAN };
    let (train, test, diverged) = match outcome {
        Ok(o) => {
            let m = o.card.metrics.unwrap_or_default();
            let ok = m.train_loss.is_finite();
            (Score { loss: m.train_loss, accuracy: m.train_accuracy }, Score { loss: m.test_loss, accuracy: m.test_accuracy }, !ok)
        }
        Err(e) if e.to_string().contains("diverged") => (nan, nan, true),
        Err(e) => return Err(e),
    };
    Ok(RunResult {
        name: name.into(),
        family: family_name(cfg.arch, cfg.gate),
        depth: cfg.depth,
        width: arch.width,
        params: arch.num_params(),
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
        gate_bias: cfg.gate_bias(),
        epoch_train_loss: curve.losses,
        train,
        test,
        seconds: t.elapsed().as_secs_f64(),
        trials: 1,
        diverged,
    })
}

/// A small deterministic generator for the search (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.next() * (hi.ln() - lo.ln())).exp()
    }
}

/// A random-search trial around `base`: learning rate, momentum, weight decay, gate bias.
pub fn sample_trial(base: &TrainConfig, rng_seed: u64) -> TrainConfig {
    let mut r = Rng(rng_seed);
    TrainConfig {
        lr: r.log_uniform(1e-3, 0.5),
        momentum: 1.0 - r.log_uniform(0.01, 0.3),
        weight_decay: r.log_uniform(1e-6, 1e-3),
        gate_bias: Some(-(0.5 + 4.5 * r.next()) as f32),
        ..base.clone()
    }
}

/// Trains a variant: with a search, the trials' best configuration (lowest final training
/// loss) is then trained with the full budget.
fn run_variant(
    v: &Variant,
    plan: &Plan,
    index: usize,
    data: &Dataset,
    search_data: &Dataset,
    stop: &AtomicBool,
    progress: &dyn StudyProgress,
) -> anyhow::Result<RunResult> {
    let mut cfg = v.config.clone();
    if plan.search > 0 {
        let mut best: Option<(f64, TrainConfig)> = None;
        for trial in 0..plan.search {
            let mut c = sample_trial(&v.config, plan.seed ^ ((index as u64) << 32) ^ trial as u64);
            c.epochs = plan.search_epochs.max(1);
            let r = run_one(&v.name, trial + 1, &c, search_data, stop, progress)?;
            let loss = if r.train.loss.is_finite() { r.train.loss } else { f64::INFINITY };
            if best.as_ref().is_none_or(|(b, _)| loss < *b) {
                best = Some((loss, c));
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        if let Some((_, c)) = best {
            cfg = TrainConfig { epochs: v.config.epochs, ..c };
        }
    }
    let mut r = run_one(&v.name, 0, &cfg, data, stop, progress)?;
    r.trials = plan.search.max(1);
    progress.finished(&r);
    Ok(r)
}

/// Runs every variant (up to `plan.jobs` at once) and returns their results in order.
pub fn run_study(
    variants: &[Variant],
    plan: &Plan,
    data: &Dataset,
    stop: &AtomicBool,
    progress: &dyn StudyProgress,
) -> anyhow::Result<Vec<RunResult>> {
    let jobs = plan.jobs.clamp(1, variants.len().max(1));
    let next = AtomicUsize::new(0);
    let search_data = if plan.search > 0 {
        data.clone().truncated(Some(plan.search_examples), Some(2_000))
    } else {
        data.clone().truncated(Some(0), Some(0))
    };
    let results: Mutex<Vec<Option<anyhow::Result<RunResult>>>> = Mutex::new((0..variants.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= variants.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                let r = run_variant(&variants[i], plan, i, data, &search_data, stop, progress);
                let failed = r.is_err();
                results.lock().expect("results lock")[i] = Some(r);
                if failed {
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    let mut out = Vec::new();
    for (v, r) in variants.iter().zip(results.into_inner().expect("results lock")) {
        // None: not started, the study was stopped
        if let Some(r) = r {
            out.push(r.map_err(|e| e.context(format!("run {}", v.name)))?);
        }
    }
    Ok(out)
}
