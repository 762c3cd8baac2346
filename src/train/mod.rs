//! The trainer: minibatch SGD (momentum or Nesterov) with a learning-rate schedule.
//!
//! The loop is free of UI: progress goes to an [`Observer`] (the CLI's is indicatif bars), and
//! a stop flag (Ctrl-C) ends it between two batches with a usable model.

pub mod augment;
pub mod optim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use tch::{Kind, Tensor};

use crate::data::Dataset;
use crate::model::file::{DatasetInfo, Metrics, ModelCard};
use crate::model::{conv_cpu, cpu, fast, images_tensor, labels_tensor, Arch, ForwardOpts, Model};
pub use crate::recipe::TrainConfig;
pub use optim::{Optimizer, Schedule, Sgd};

/// Where a batch stands.
#[derive(Debug, Clone, Copy)]
pub struct BatchStats {
    pub epoch: usize,
    pub batch: usize,
    pub batches_per_epoch: usize,
    /// Steps done so far, counting this one.
    pub step: usize,
    pub loss: f64,
    /// Accuracy on this batch.
    pub accuracy: f64,
    pub lr: f64,
    pub samples_per_s: f64,
}

/// Figures at the end of an epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochStats {
    pub epoch: usize,
    pub step: usize,
    /// Mean over the epoch's batches.
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

/// Receives the trainer's progress. Every method has a do-nothing default.
pub trait Observer {
    fn on_start(&mut self, _epochs: usize, _batches_per_epoch: usize, _model: &Model) -> anyhow::Result<()> {
        Ok(())
    }
    fn on_batch(&mut self, _s: &BatchStats, _model: &Model) -> anyhow::Result<()> {
        Ok(())
    }
    fn on_epoch(&mut self, _e: &EpochStats, _model: &Model) -> anyhow::Result<()> {
        Ok(())
    }
    /// Training is over (`step` steps, `epoch` epochs done); the final evaluation follows.
    fn on_finish(&mut self, _model: &Model, _step: usize, _epoch: f64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Observer for () {}

/// A split as tensors: x [n, input_dim] f32 in [0, 1], y [n] i64.
pub struct Tensors {
    pub x: Tensor,
    pub y: Tensor,
}

impl Tensors {
    pub fn train(d: &Dataset) -> Self {
        Tensors { x: images_tensor(&d.train.images, d.input_dim()), y: labels_tensor(&d.train.labels) }
    }
    pub fn test(d: &Dataset) -> Self {
        Tensors { x: images_tensor(&d.test.images, d.input_dim()), y: labels_tensor(&d.test.labels) }
    }
    pub fn to_device(self, device: tch::Device) -> Self {
        Tensors { x: self.x.to_device(device), y: self.y.to_device(device) }
    }
}

/// What a run produced.
pub struct Outcome {
    pub model: Model,
    pub card: ModelCard,
}

/// Trains a model as `cfg` says. `stop` ends the run early (between batches) but still
/// evaluates and returns the model, marked as interrupted.
pub fn train(cfg: &TrainConfig, data: &Dataset, stop: &AtomicBool, obs: &mut dyn Observer) -> anyhow::Result<Outcome> {
    cfg.validate()?;
    tch::set_num_threads(cfg.threads as i32);
    let device = cfg.device.resolve()?;
    let arch = cfg.arch(data);
    let mut model = initial_model(cfg, &arch)?.to_device(device);
    let (train_t, test_t) = (Tensors::train(data).to_device(device), Tensors::test(data).to_device(device));
    let n = data.train.len();
    let batches = n / cfg.batch_size;
    anyhow::ensure!(batches >= 1, "--batch-size {} is larger than the training set ({n})", cfg.batch_size);
    let total_steps = cfg.max_steps.map_or(batches * cfg.epochs, |m| m.min(batches * cfg.epochs));
    let fast = !cfg.no_fast;

    let mut stepper = Stepper::new(&model, cfg, fast);
    // Steps that run their own threads: libtorch keeps one for the loop (its OpenMP workers
    // would spin between ops); the CPU kernels' inference still runs on `cfg.threads`.
    let _kernels = cpu::Threads::set(cfg.threads);
    obs.on_start(cfg.epochs, batches, &model)?;
    if stepper.owns_threads() {
        tch::set_num_threads(1);
    }
    let start = Instant::now();
    let (mut step, mut epochs_done, mut interrupted) = (0usize, 0usize, false);
    'epochs: for epoch in 0..cfg.epochs {
        let perm = Tensor::randperm(n as i64, (Kind::Int64, tch::Device::Cpu)).to_device(device);
        let (mut loss_sum, mut correct_sum, mut seen) = (0.0, 0i64, 0usize);
        for b in 0..batches {
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break 'epochs;
            }
            if step >= total_steps {
                break 'epochs;
            }
            let idx = perm.narrow(0, (b * cfg.batch_size) as i64, cfg.batch_size as i64);
            let xb = augment::shift(&train_t.x.index_select(0, &idx), data.image_shape, cfg.shift); // [batch, input_dim]
            let yb = train_t.y.index_select(0, &idx); // [batch]
            let lr = cfg.schedule.lr(cfg, step, batches, total_steps);
            let (loss, correct) = stepper.step(&mut model, &xb, &yb, lr);
            let loss = f64::try_from(&loss)?;
            let correct = i64::try_from(&correct)?;
            if !loss.is_finite() {
                anyhow::bail!("training diverged at step {step} (loss {loss}); try a smaller --lr");
            }
            step += 1;
            loss_sum += loss;
            correct_sum += correct;
            seen += cfg.batch_size;
            let stats = BatchStats {
                epoch,
                batch: b,
                batches_per_epoch: batches,
                step,
                loss,
                accuracy: correct as f64 / cfg.batch_size as f64,
                lr,
                samples_per_s: (step * cfg.batch_size) as f64 / start.elapsed().as_secs_f64(),
            };
            obs.on_batch(&stats, &model)?;
        }
        if seen == 0 {
            break;
        }
        epochs_done = epoch + 1;
        let (train_loss, train_accuracy) = (loss_sum / (seen / cfg.batch_size) as f64, correct_sum as f64 / seen as f64);
        let (_, test_accuracy) = model.evaluate(&test_t.x, &test_t.y, ForwardOpts::default());
        obs.on_epoch(&EpochStats { epoch, step, train_loss, train_accuracy, test_accuracy }, &model)?;
    }
    tch::set_num_threads(cfg.threads as i32);
    let seconds = start.elapsed().as_secs_f64();
    obs.on_finish(&model, step, step as f64 / batches as f64)?;
    let mut card = initial_card(cfg, data)?;
    card.metrics = Some(final_metrics(
        &model,
        &train_t,
        &test_t,
        Metrics { epochs_completed: epochs_done, steps: step, seconds, interrupted, ..Default::default() },
    ));
    Ok(Outcome { model, card })
}

/// A fresh model (seeded: the seed also fixes batch order and augmentation), or the one
/// `cfg.init` names.
fn initial_model(cfg: &TrainConfig, arch: &Arch) -> anyhow::Result<Model> {
    match &cfg.init {
        None => Model::new(arch.clone(), cfg.seed),
        Some(path) => {
            tch::manual_seed(cfg.seed as i64);
            start_from(path, arch)
        }
    }
}

/// `run`'s counts with the model's loss and accuracy on the full train and test sets.
fn final_metrics(model: &Model, train: &Tensors, test: &Tensors, run: Metrics) -> Metrics {
    let (train_loss, train_accuracy) = model.evaluate(&train.x, &train.y, ForwardOpts::default());
    let (test_loss, test_accuracy) = model.evaluate(&test.x, &test.y, ForwardOpts::default());
    Metrics { train_accuracy, test_accuracy, train_loss, test_loss, ..run }
}

/// The model of `--init`, checked against the architecture the flags describe.
fn start_from(path: &std::path::Path, arch: &Arch) -> anyhow::Result<Model> {
    let (m, _) = crate::model::file::load(path).with_context(|| format!("--init {}", path.display()))?;
    let a = &m.arch;
    let same = (a.family, a.activation, a.gate, a.depth, a.width, &a.conv_stages)
        == (arch.family, arch.activation, arch.gate, arch.depth, arch.width, &arch.conv_stages)
        && a.param_specs() == arch.param_specs();
    anyhow::ensure!(
        same,
        "--init {}: the model is a {} net (depth {}, width {}, {}), not the {} net (depth {}, width {}, {}) these flags describe",
        path.display(),
        a.family.name(),
        a.depth,
        a.width,
        a.activation.name(),
        arch.family.name(),
        arch.depth,
        arch.width,
        arch.activation.name()
    );
    Model::from_flat(arch.clone(), m.flat)
}

/// The card of a run before it has any metrics.
pub fn initial_card(cfg: &TrainConfig, data: &Dataset) -> anyhow::Result<ModelCard> {
    let info = DatasetInfo { name: data.kind, class_names: data.class_names.clone(), image_shape: data.image_shape };
    Ok(ModelCard::new(cfg.arch(data), info, serde_json::to_value(cfg)?))
}

/// One optimisation step: gradient (fast kernel or autograd) and SGD update.
pub struct Stepper {
    opt: Sgd,
    /// [num_params], laid out like the parameters: the libtorch paths' gradient (the CPU
    /// steps keep theirs in their shards)
    grad: Tensor,
    path: GradPath,
}

/// How a [`Stepper`] gets its gradient.
enum GradPath {
    /// The highway fast path in Rust over the tensors' memory (CPU, f32).
    Cpu(Box<cpu::Step>),
    /// The conv highway net's step in Rust over the tensors' memory (CPU, f32).
    Conv(Box<conv_cpu::Step>),
    /// The highway fast path as libtorch ops (any device), writing through these views of `grad`.
    Torch(fast::Views),
    Autograd,
}

impl Stepper {
    /// The stepper of `model`; `fast`: by a hand-written backward where there is one (the
    /// highway MLP anywhere, the conv highway net on the CPU), else autograd.
    pub fn new(model: &Model, cfg: &TrainConfig, fast: bool) -> Self {
        let grad = model.flat.zeros_like();
        let path = if !fast {
            GradPath::Autograd
        } else if let Some(step) = cpu::Step::new(model, cfg.threads) {
            GradPath::Cpu(Box::new(step))
        } else if let Some(step) = conv_cpu::Step::new(model, cfg.threads) {
            GradPath::Conv(Box::new(step))
        } else if model.arch.adaptive_highway() {
            GradPath::Torch(fast::Views::new(model, &grad))
        } else {
            GradPath::Autograd
        };
        Stepper { opt: Sgd::new(&model.flat, &model.specs, cfg), grad, path }
    }

    /// Trains on one batch (x: [batch, input_dim], y: [batch]); returns (mean loss, correct).
    pub fn step(&mut self, model: &mut Model, x: &Tensor, y: &Tensor, lr: f64) -> (Tensor, Tensor) {
        // the CPU steps leave their gradient in parts, which the optimiser sums as it updates;
        // the others write it into `grad`
        let (out, parts): (_, Vec<&[f32]>) = match &mut self.path {
            GradPath::Cpu(step) => (tch::no_grad(|| step.loss_and_grads(model, x, y)), step.grads().collect()),
            GradPath::Conv(step) => (tch::no_grad(|| step.loss_and_grads(model, x, y)), step.grads().collect()),
            GradPath::Torch(views) => (tch::no_grad(|| fast::loss_and_grad(model, x, y, views)), Vec::new()),
            GradPath::Autograd => (autograd_step(model, x, y, &self.grad), Vec::new()),
        };
        if parts.is_empty() {
            tch::no_grad(|| self.opt.step(&mut model.flat, &self.grad, lr));
        } else {
            assert!(self.opt.step_parts(&mut model.flat, &parts, lr), "a CPU step's parameters are contiguous f32 on the CPU");
        }
        out
    }

    /// Whether the steps run their own threads (the CPU fast paths): then keep libtorch's
    /// intra-op pool at one thread while stepping (as `train` does, and `bench` through [`torch_threads`]).
    pub fn owns_threads(&self) -> bool {
        matches!(self.path, GradPath::Cpu(_) | GradPath::Conv(_))
    }
}

/// Runs `f` with libtorch's intra-op threads set to `n`, then sets them back.
pub fn torch_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    let before = tch::get_num_threads();
    tch::set_num_threads(n.max(1) as i32);
    let out = f();
    tch::set_num_threads(before);
    out
}

/// Loss and gradient by autograd over `Model::forward_with` (any family). Writes the
/// gradient into `grad` ([num_params]).
pub fn autograd_step(model: &Model, x: &Tensor, y: &Tensor, grad: &Tensor) -> (Tensor, Tensor) {
    let leaf = model.flat.detach().set_requires_grad(true);
    let logits = model.forward_with(&leaf, x, ForwardOpts::default()).logits;
    let loss = logits.cross_entropy_for_logits(y);
    loss.backward();
    tch::no_grad(|| {
        let mut g = grad.shallow_clone();
        g.copy_(&leaf.grad());
    });
    let correct = logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64);
    (loss.detach(), correct)
}
