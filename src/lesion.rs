//! Lesioning (the paper's Figure 4): close all transform gates of one layer (T := 0, so the
//! layer copies its input) and measure loss and accuracy, for every gated layer in turn.
//!
//! A lesion of layer `l` leaves layers `0..l` untouched, so one traced forward per chunk
//! caches every layer's input, and each lesion restarts from the input of layer `l` and runs
//! only the layers after it: about half the work of 49 full passes. A highway MLP on the CPU
//! runs this in gatescope's own kernels ([`infer::Infer::lesion_sums`], blocks of rows spread
//! over the threads); other devices in libtorch ([`fast::Replay::forward_from`]).
//! Conv nets on the CPU run a full pass of their training step's forward per lesion
//! ([`conv_cpu::evaluate`]). Residual nets are lesioned by dropping one branch (y = x), by
//! full passes.

use tch::{Kind, Tensor};

use crate::model::{conv_cpu, cpu, fast, infer, Family, ForwardOpts, Model};
use crate::report::{LesionReport, LesionRow, Score};
use crate::train::Tensors;

/// Most examples per chunk: the cached layer inputs of a chunk take depth × CHUNK × width floats
/// (fewer for wide conv activations, see [`crate::arch::Arch::chunk`]).
/// (5,000 measured fastest here, against 2,500 and 10,000.)
const CHUNK: i64 = 5_000;

/// Sums of loss and correct predictions over a split, per lesion (index 0: no lesion).
struct Tally {
    loss: Vec<f64>,
    correct: Vec<f64>,
    n: usize,
}

impl Tally {
    fn new(rows: usize) -> Self {
        Tally { loss: vec![0.0; rows], correct: vec![0.0; rows], n: 0 }
    }
    fn add(&mut self, row: usize, logits: &Tensor, y: &Tensor) {
        let len = y.size()[0] as f64;
        self.loss[row] += f64::try_from(logits.cross_entropy_for_logits(y)).unwrap_or(f64::NAN) * len;
        self.correct[row] += f64::try_from(logits.argmax(-1, false).eq_tensor(y).to_kind(Kind::Float).sum(Kind::Float)).unwrap_or(f64::NAN);
    }
    fn score(&self, row: usize) -> Score {
        let n = self.n.max(1) as f64;
        Score { loss: self.loss[row] / n, accuracy: self.correct[row] / n }
    }
}

/// The layers a lesion can close: highway gated layers, or residual branches.
pub fn lesionable_layers(model: &Model) -> anyhow::Result<Vec<usize>> {
    match model.arch.family {
        Family::Highway | Family::Residual | Family::Conv => Ok((1..model.arch.depth).collect()),
        Family::Plain => anyhow::bail!("a plain net has no gates or skip connections to lesion"),
    }
}

/// How far [`lesion_all`] has got.
pub struct Progress {
    /// Steps done of `total`: examples (the CPU kernels), or passes.
    pub done: usize,
    pub total: usize,
    /// Figure 4 over the examples summed so far, where the analysis sums as it goes (the CPU
    /// kernels, a block of rows at a time): the training set's first examples, then all of them
    /// and the test set's first. A split not begun has no examples and NaN scores.
    pub so_far: Option<LesionReport>,
}

/// Lesions every layer in turn on `train` and `test`. `progress` is called after each block
/// of rows (the CPU kernels) or each (chunk, layer); when it returns false the analysis stops
/// and returns None.
pub fn lesion_all(
    model: &Model,
    source: &str,
    dataset: &str,
    train: &Tensors,
    test: &Tensors,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> anyhow::Result<Option<LesionReport>> {
    let layers = lesionable_layers(model)?;
    let t0 = std::time::Instant::now();
    let figure =
        |tr: &Tally, te: &Tally, train_seconds| report(source, dataset, &layers, (tr, te), (train_seconds, t0.elapsed().as_secs_f64()));
    let splits = if let Some(infer) = infer::Infer::new(model, cpu::threads()) {
        cpu_splits(&infer, layers.len(), (train, test), t0, &|tr, te| figure(tr, te, t0.elapsed().as_secs_f64()), progress)
    } else if conv_cpu::runs(model) {
        conv_splits(model, &layers, (train, test), t0, progress)
    } else {
        torch_splits(model, &layers, (train, test), t0, progress)
    };
    Ok(splits.map(|(tr, te, train_seconds)| figure(&tr, &te, train_seconds)))
}

/// Both splits' tallies and the seconds the training set took (from `t0`); None if stopped.
type Splits = Option<(Tally, Tally, f64)>;

/// Both splits by the CPU kernels: every lesion (`lesions` of them) in one pass over blocks of
/// rows, reporting the figure over the rows done so far (`figure` of the tallies; a split not
/// begun NaN).
fn cpu_splits(
    infer: &infer::Infer,
    lesions: usize,
    (train, test): (&Tensors, &Tensors),
    t0: std::time::Instant,
    figure: &dyn Fn(&Tally, &Tally) -> LesionReport,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Splits {
    let total = (train.x.size()[0] + test.x.size()[0]) as usize;
    let so_far = |tr: &Tally, te: &Tally| {
        let mut r = figure(tr, te);
        if te.n == 0 {
            r.baseline_test = Score { loss: f64::NAN, accuracy: f64::NAN };
            r.layers.iter_mut().for_each(|row| row.test = r.baseline_test);
        }
        Some(r)
    };
    let none = Tally::new(lesions + 1);
    let tr = cpu_tally(infer, train, &mut |t| progress(Progress { done: t.n, total, so_far: so_far(t, &none) }))?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let te = cpu_tally(infer, test, &mut |t| progress(Progress { done: tr.n + t.n, total, so_far: so_far(&tr, t) }))?;
    Some((tr, te, train_seconds))
}

/// Both splits of a conv net on the CPU: a full pass per lesion.
fn conv_splits(
    model: &Model,
    layers: &[usize],
    (train, test): (&Tensors, &Tensors),
    t0: std::time::Instant,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Splits {
    let total = 2 * (layers.len() + 1);
    let mut progress = |done| progress(Progress { done, total, so_far: None });
    let tr = conv_tally(model, layers, train, &mut |row| progress(row))?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let te = conv_tally(model, layers, test, &mut |row| progress(layers.len() + 1 + row))?;
    Some((tr, te, train_seconds))
}

/// Both splits through libtorch: each chunk's layer inputs cached and every lesion replayed
/// from its layer ([`fast::Replay`]), or full passes (residual nets).
fn torch_splits(
    model: &Model,
    layers: &[usize],
    (train, test): (&Tensors, &Tensors),
    t0: std::time::Instant,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Splits {
    let depth = model.arch.depth;
    let replay = model.arch.adaptive_highway().then(|| tch::no_grad(|| fast::Replay::new(model)));
    let chunk = model.arch.traced_chunk(CHUNK as usize, 1); // every layer's input
    let chunks = |t: &Tensors| (t.x.size()[0] + chunk - 1) / chunk;
    let total = (chunks(train) + chunks(test)) as usize * (layers.len() + 1);
    let mut steps = 0;
    let mut tally = |t: &Tensors| {
        let mut tally = Tally::new(layers.len() + 1);
        tally.n = t.x.size()[0] as usize;
        let mut step = || {
            steps += 1;
            progress(Progress { done: steps, total, so_far: None })
        };
        tch::no_grad(|| {
            for start in (0..t.x.size()[0]).step_by(chunk as usize) {
                let len = chunk.min(t.x.size()[0] - start);
                let dev = model.device();
                let (x, y) = (t.x.narrow(0, start, len).to_device(dev), t.y.narrow(0, start, len).to_device(dev));
                if let Some(replay) = &replay {
                    // inputs[l − 1] = the input of layer l, each [len, width]
                    let inputs = replay.layer_inputs(&x, depth);
                    tally.add(0, &replay.logits(inputs.last().expect("depth ≥ 1")), &y);
                    if !step() {
                        return None;
                    }
                    for (row, &l) in layers.iter().enumerate() {
                        let logits = replay.forward_from(&inputs[l - 1], l + 1, depth, None);
                        tally.add(row + 1, &logits, &y);
                        if !step() {
                            return None;
                        }
                    }
                } else {
                    for row in 0..=layers.len() {
                        let lesion = (row > 0).then(|| layers[row - 1]);
                        let logits = model.forward(&x, ForwardOpts { trace: false, lesion, ..Default::default() }).logits;
                        tally.add(row, &logits, &y);
                        if !step() {
                            return None;
                        }
                    }
                }
            }
            Some(tally)
        })
    };
    let tr = tally(train)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    Some((tr, tally(test)?, train_seconds))
}

/// A split's tally by the CPU kernels; `so_far(the tally of the rows summed so far)` after
/// each block; None if it returned false.
fn cpu_tally(infer: &infer::Infer, t: &Tensors, so_far: &mut dyn FnMut(&Tally) -> bool) -> Option<Tally> {
    let tally = |rows, sums: &[(f64, f64)]| Tally {
        loss: sums.iter().map(|s| s.0).collect(),
        correct: sums.iter().map(|s| s.1).collect(),
        n: rows,
    };
    let sums = infer.lesion_sums(&t.x, &t.y, &mut |rows, sums| so_far(&tally(rows, sums)))?;
    Some(tally(t.x.size()[0] as usize, &sums))
}

/// A split's tally of a conv net by [`conv_cpu::evaluate`], a full pass per lesion;
/// `progress(lesions done)` after each; None if it returned false.
fn conv_tally(model: &Model, layers: &[usize], t: &Tensors, progress: &mut dyn FnMut(usize) -> bool) -> Option<Tally> {
    let mut tally = Tally::new(layers.len() + 1);
    tally.n = t.x.size()[0] as usize;
    let n = tally.n as f64;
    for row in 0..=layers.len() {
        let lesion = (row > 0).then(|| layers[row - 1]);
        if let Some((loss, accuracy)) = conv_cpu::evaluate(model, &t.x, &t.y, lesion, cpu::threads()) {
            (tally.loss[row], tally.correct[row]) = (loss * n, (accuracy * n).round());
        }
        if !progress(row + 1) {
            return None;
        }
    }
    Some(tally)
}

fn report(source: &str, dataset: &str, layers: &[usize], (tr, te): (&Tally, &Tally), (train_seconds, seconds): (f64, f64)) -> LesionReport {
    LesionReport {
        model: source.into(),
        dataset: dataset.into(),
        train_examples: tr.n,
        test_examples: te.n,
        baseline_train: tr.score(0),
        baseline_test: te.score(0),
        layers: layers.iter().enumerate().map(|(i, &layer)| LesionRow { layer, train: tr.score(i + 1), test: te.score(i + 1) }).collect(),
        train_seconds,
        seconds,
    }
}
