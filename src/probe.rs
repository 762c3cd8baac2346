//! Probes: turn a model and a fixed probe set into a [`Snapshot`] of its gate activity.
//!
//! A probe pass runs the model's own forward ([`Model::forward`], the trainer's code) with
//! tracing on and autograd off, over the probe set in chunks; a highway MLP on the CPU runs
//! the trainer's CPU kernels instead ([`infer::Infer::probe_sums`]), blocks of rows spread over
//! the threads.

use tch::{Kind, Tensor};

use crate::data::Dataset;
use crate::model::{cpu, images_f32, images_tensor, infer, labels_tensor, ForwardOpts, Model};
use crate::snapshot::{Array, Header, LayerStats, Snapshot};

/// Examples per probe chunk.
const CHUNK: i64 = 2_500;

pub use crate::recipe::ProbeSize;

/// The fixed probe set: the first N training examples, and K samples spread across classes.
pub struct ProbeSet {
    /// [N, input_dim] u8 pixels, scaled to [0, 1] a chunk at a time as the pass reads them
    /// (the CPU pass reads a quarter of the bytes an f32 copy would take)
    pub x: Tensor,
    /// [N] i64
    pub y: Tensor,
    pub classes: usize,
    /// [classes]: the probe examples of each class
    pub class_counts: Vec<usize>,
    /// [K, input_dim]
    pub sample_x: Tensor,
    /// Indices into the training set.
    pub sample_indices: Vec<u32>,
    pub sample_labels: Vec<u32>,
    /// [K, input_dim] pixels
    pub sample_images: Vec<u8>,
    /// The test split, for test accuracy: pixels [N_test, input_dim] u8, scaled to [0, 1] a
    /// chunk at a time (no f32 copy of the whole split is kept).
    pub test_x: Tensor,
    pub test_y: Tensor,
}

impl ProbeSet {
    /// The first `size` training examples; `samples` probe samples taken round-robin over
    /// the classes (sample k has class k mod C when the probe set has one).
    pub fn new(data: &Dataset, size: ProbeSize, samples: usize) -> Self {
        let n = match size {
            ProbeSize::All => data.train.len(),
            ProbeSize::Count(c) => c.min(data.train.len()),
        };
        let dim = data.input_dim();
        let labels = &data.train.labels[..n];
        let classes = data.num_classes();
        let mut by_class: Vec<Vec<usize>> = vec![vec![]; classes];
        for (i, &l) in labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut picked = Vec::new();
        let mut round = 0;
        while picked.len() < samples.min(n) {
            for members in &by_class {
                if let Some(&i) = members.get(round) {
                    if picked.len() < samples {
                        picked.push(i);
                    }
                }
            }
            round += 1;
        }
        let sample_images: Vec<u8> = picked.iter().flat_map(|&i| data.train.images[i * dim..(i + 1) * dim].iter().copied()).collect();
        ProbeSet {
            x: Tensor::from_slice(&data.train.images[..n * dim]).view([n as i64, dim as i64]),
            y: labels_tensor(labels),
            classes,
            class_counts: by_class.iter().map(Vec::len).collect(),
            sample_x: images_tensor(&sample_images, dim),
            sample_indices: picked.iter().map(|&i| i as u32).collect(),
            sample_labels: picked.iter().map(|&i| labels[i] as u32).collect(),
            sample_images,
            test_x: Tensor::from_slice(&data.test.images).view([data.test.len() as i64, dim as i64]),
            test_y: labels_tensor(&data.test.labels),
        }
    }

    pub fn len(&self) -> usize {
        self.x.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recording header for a run over this probe set.
    pub fn header(&self, card: crate::card::ModelCard, source: impl Into<String>) -> Header {
        Header {
            card,
            source: source.into(),
            model: None,
            probe_size: self.len(),
            sample_indices: self.sample_indices.clone(),
            sample_labels: self.sample_labels.clone(),
            sample_images: self.sample_images.clone(),
        }
    }
}

pub(crate) fn to_array(t: &Tensor) -> Array {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    let n: usize = shape.iter().product();
    let mut data = vec![0f32; n];
    t.view([-1]).copy_data(&mut data, n);
    Array { shape, data }
}

/// Training progress a snapshot is stamped with.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub step: u64,
    pub epoch: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// Test accuracy if the caller has it for this model state; else the probe computes it.
    pub test_accuracy: Option<f64>,
}

/// One probe pass: everything a [`Snapshot`] holds. `lesion` closes one layer's gates.
pub fn snapshot(model: &Model, probe: &ProbeSet, progress: Progress, lesion: Option<usize>) -> Snapshot {
    snapshot_with(model, probe, progress, lesion, &mut |_, _| true).expect("a probe pass that is never cancelled")
}

/// What a model's weights alone show, before any probe pass: its gate biases (the first of
/// Figure 2's maps); every activation map is left empty ("not recorded").
pub fn weights_only(model: &Model, progress: Progress) -> Snapshot {
    let w = model.arch.width;
    Snapshot {
        step: progress.step,
        epoch: progress.epoch,
        train_loss: progress.train_loss,
        train_accuracy: progress.train_accuracy,
        test_accuracy: progress.test_accuracy.unwrap_or(f64::NAN),
        gate_bias: tch::no_grad(|| model.gate_biases().map_or_else(|| Array::zeros(vec![0, w]), |b| to_array(&b))),
        ..Default::default()
    }
}

/// Over the probe set, by libtorch: per gated layer T summed per class ([L, C, W]) and the
/// count of T > 0.5 ([L]); per layer Σ |y_l − y_(l−1)| ([depth], row 0 unused). None if
/// `tick` cancelled.
fn torch_sums(
    model: &Model,
    probe: &ProbeSet,
    opts: ForwardOpts,
    tick: &mut dyn FnMut(usize, usize) -> bool,
) -> Option<(Tensor, Tensor, Tensor)> {
    let arch = &model.arch;
    let (depth, w, c) = (arch.depth as i64, arch.width as i64, probe.classes as i64);
    let gated = arch.gated_layers().len() as i64;
    let (n, dev) = (probe.len() as i64, model.device());
    let f = (Kind::Float, dev);
    // Per layer, on [B, W] tensors that stay in cache (no [B, L, W] stacks): class sums
    // as one matmul with the one-hot labels; the overall sum is their sum over classes.
    let class_sum = Tensor::zeros([gated, c, w], f); // [L, C, W]
    let open = Tensor::zeros([gated.max(1)], f); // [L]
    let change = Tensor::zeros([depth], f); // [depth]; row 0 unused
    let chunk = arch.traced_chunk(CHUNK as usize, 2); // T and y of every layer
    for start in (0..n).step_by(chunk as usize) {
        let len = chunk.min(n - start);
        let x = images_f32(&probe.x.narrow(0, start, len)).to_device(dev);
        let onehot_t = probe.y.narrow(0, start, len).to_device(dev).one_hot(c).to_kind(Kind::Float).tr(); // [C, B]
        let fwd = model.forward(&x, opts);
        for (l, t) in fwd.gates.iter().enumerate() {
            let _ = class_sum.get(l as i64).addmm_(&onehot_t, t);
            let _ = open.get(l as i64).g_add_(&t.gt(0.5).sum(Kind::Float));
        }
        for l in 1..fwd.blocks.len() {
            let d = (&fwd.blocks[l] - &fwd.blocks[l - 1]).abs().sum(Kind::Float);
            let _ = change.get(l as i64).g_add_(&d);
        }
        if !tick((start + len) as usize, n as usize) {
            return None;
        }
    }
    Some((class_sum, open, change))
}

/// The probe samples' T ([K, L, W]), block outputs ([K, depth, W]) and predicted classes: by
/// the CPU kernels when `infer` runs the model, else by its libtorch forward.
fn samples(model: &Model, infer: Option<&infer::Infer>, probe: &ProbeSet, opts: ForwardOpts) -> (Array, Array, Vec<u32>) {
    let arch = &model.arch;
    let (k, depth, w) = (probe.sample_x.size()[0] as usize, arch.depth, arch.width);
    if let Some(infer) = infer {
        let trace = infer.trace(&probe.sample_x, opts.lesion);
        let gates = Array { shape: vec![k, depth - 1, w], data: trace.gates };
        return (gates, Array { shape: vec![k, depth, w], data: trace.blocks }, trace.predictions);
    }
    let sf = model.forward(&probe.sample_x.to_device(model.device()), opts);
    let gated = arch.gated_layers().len();
    let gates = if gated > 0 { to_array(&Tensor::stack(&sf.gates, 1)) } else { Array::zeros(vec![k, 0, w]) };
    let preds = to_array(&sf.logits.argmax(-1, false)).data.iter().map(|&p| p as u32).collect();
    (gates, to_array(&Tensor::stack(&sf.blocks, 1)), preds)
}

/// Accuracy on the probe set's test split, with `lesion` closed (by the probe pass's `infer`
/// when there is one: its layers are packed already).
fn test_accuracy(model: &Model, infer: Option<&infer::Infer>, probe: &ProbeSet, lesion: Option<usize>) -> f64 {
    match infer {
        Some(infer) => infer.evaluate(&probe.test_x, &probe.test_y, lesion).1,
        _ => model.evaluate(&probe.test_x, &probe.test_y, ForwardOpts { trace: false, lesion, ..Default::default() }).1,
    }
}

/// [`snapshot`], calling `tick(examples done, total)` after each chunk of the probe set;
/// None as soon as `tick` returns false (the pass was cancelled).
pub fn snapshot_with(
    model: &Model,
    probe: &ProbeSet,
    progress: Progress,
    lesion: Option<usize>,
    tick: &mut dyn FnMut(usize, usize) -> bool,
) -> Option<Snapshot> {
    tch::no_grad(|| {
        let arch = &model.arch;
        let (depth, w, c) = (arch.depth, arch.width, probe.classes);
        let opts = ForwardOpts { trace: true, lesion, ..Default::default() };
        let n = probe.len();
        let infer = infer::Infer::new(model, cpu::threads());
        // per gated layer: T summed per class ([L, C, W]), the count of T > 0.5 ([L]); per
        // layer Σ |y_l − y_(l−1)| ([depth], row 0 unused)
        let (class_sum, open, change): (Vec<f32>, Vec<f32>, Vec<f32>) = match &infer {
            Some(infer) => {
                let sums = infer.probe_sums(&probe.x, &probe.y, c, lesion, &mut |d| tick(d, n))?;
                let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
                (sums.class_sum, f32s(&sums.open), f32s(&sums.change))
            }
            None => {
                let (class_sum, open, change) = torch_sums(model, probe, opts, tick)?;
                (to_array(&class_sum).data, to_array(&open).data, to_array(&change).data)
            }
        };
        let gated = arch.gated_layers().len();
        // [L, W]: the mean T over the probe set; [C, L, W]: each class's
        let mut mean_gate = Array::zeros(vec![gated, w]);
        let mut class_mean = Array::zeros(vec![c, gated, w]);
        for (l, sums) in class_sum.chunks_exact(c * w).enumerate() {
            let mean = &mut mean_gate.data[l * w..(l + 1) * w];
            for (k, sums) in sums.chunks_exact(w).enumerate() {
                let count = probe.class_counts[k].max(1) as f32;
                let means = &mut class_mean.data[(k * gated + l) * w..(k * gated + l + 1) * w];
                for ((m, cm), &t) in mean.iter_mut().zip(means).zip(sums) {
                    *m += t;
                    *cm = t / count;
                }
            }
            mean.iter_mut().for_each(|m| *m /= n as f32);
        }
        let per_unit = (n * w) as f32;
        let layers = (1..depth)
            .map(|l| {
                let g = arch.gated_layers().position(|gl| gl == l);
                let row_mean = |i: usize| mean_gate.row(i).iter().sum::<f32>() / w as f32;
                LayerStats {
                    layer: l as u32,
                    mean_gate: g.map_or(f32::NAN, row_mean),
                    open_fraction: g.map_or(f32::NAN, |i| open[i] / per_unit),
                    mean_change: change[l] / per_unit,
                }
            })
            .collect();

        let (sample_gates, sample_blocks, sample_predictions) = samples(model, infer.as_ref(), probe, opts);
        let test_accuracy = match progress.test_accuracy {
            Some(a) if lesion.is_none() => a,
            _ => test_accuracy(model, infer.as_ref(), probe, lesion),
        };
        Some(Snapshot {
            step: progress.step,
            epoch: progress.epoch,
            train_loss: progress.train_loss,
            train_accuracy: progress.train_accuracy,
            test_accuracy,
            gate_bias: model.gate_biases().map_or_else(|| Array::zeros(vec![0, w]), |b| to_array(&b)),
            mean_gate,
            sample_gates,
            sample_blocks,
            sample_predictions,
            class_mean_gate: class_mean,
            layers,
        })
    })
}
