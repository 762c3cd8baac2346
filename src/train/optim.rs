//! SGD with momentum or Nesterov momentum over one flat parameter buffer, and the
//! learning-rate schedules.

use tch::Tensor;

use super::TrainConfig;

pub use crate::recipe::{Optimizer, Schedule};

impl Schedule {
    /// The learning rate of step `step` (0-based) of a run of `total` steps.
    pub fn lr(self, cfg: &TrainConfig, step: usize, steps_per_epoch: usize, total: usize) -> f64 {
        let epoch = step as f64 / steps_per_epoch as f64;
        let base = match self {
            Schedule::Constant => cfg.lr,
            Schedule::Step => cfg.lr * cfg.lr_gamma.powi((epoch as usize / cfg.lr_step_epochs.max(1)) as i32),
            Schedule::Exponential => cfg.lr * cfg.lr_gamma.powi(epoch as i32),
            Schedule::Cosine => {
                let p = step as f64 / total.max(1) as f64;
                cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        };
        if epoch < cfg.warmup_epochs {
            base * (0.1 + 0.9 * epoch / cfg.warmup_epochs)
        } else {
            base
        }
    }
}

/// SGD state: the momentum buffer, laid out like the parameters.
pub struct Sgd {
    velocity: Tensor,
    /// The weight decay for weights, 0 for biases (so gate biases keep their meaning).
    decay: Tensor,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(params: &Tensor, specs: &[crate::arch::ParamSpec], cfg: &TrainConfig) -> Self {
        let mut mask = vec![0f32; params.size()[0] as usize];
        for s in specs.iter().filter(|s| s.name.ends_with(".weight")) {
            mask[s.offset..s.offset + s.numel()].fill(cfg.weight_decay as f32);
        }
        Sgd {
            velocity: params.zeros_like(),
            decay: Tensor::from_slice(&mask).to_device(params.device()),
            momentum: cfg.momentum,
            nesterov: cfg.optimizer == Optimizer::Nesterov,
            weight_decay: cfg.weight_decay,
        }
    }

    /// One update of `params` from `grad` (which it may modify), as PyTorch's SGD does it
    /// (L2 weight decay on weights, not on biases, so gate biases keep their meaning):
    /// v ← μ·v + g;  p ← p − lr·v  (Nesterov: p ← p − lr·(g + μ·v)).
    pub fn step(&mut self, params: &mut Tensor, grad: &Tensor, lr: f64) {
        if plain(grad, params.numel()) && grad.data_ptr() != params.data_ptr() {
            // SAFETY: a contiguous f32 CPU tensor of this length (checked), apart from params
            let g = unsafe { std::slice::from_raw_parts(grad.data_ptr() as *const f32, grad.numel()) };
            if self.step_parts(params, &[g], lr) {
                return;
            }
        }
        self.step_torch(params, grad, lr)
    }

    /// [`Self::step`] with the gradient given as the sum of `parts` (a CPU step's shards),
    /// in one pass of Rust over the memory instead of libtorch's four passes and a
    /// temporary: the parts summed in order (as the step would sum them into one gradient),
    /// the update rounded as libtorch's ops round it (f32 scalars; the weight decay's
    /// multiply-add fused, as `addcmul_` does, the rest each rounded), split over as many
    /// threads as there are parts. The same numbers, bit for bit (tested). False (nothing
    /// done) unless the parameters are contiguous f32 on the CPU, where the optimiser's own
    /// buffers then are too.
    pub fn step_parts(&mut self, params: &mut Tensor, parts: &[&[f32]], lr: f64) -> bool {
        let n = params.numel();
        if !plain(params, n)
            || !plain(&self.velocity, n)
            || !plain(&self.decay, n)
            || parts.iter().any(|g| g.len() != n)
            || parts.is_empty()
        {
            return false;
        }
        if n == 0 {
            return true;
        }
        let (mu, lr, decay, nesterov) = (self.momentum as f32, lr as f32, self.weight_decay > 0.0, self.nesterov);
        // SAFETY: three contiguous f32 CPU tensors of n elements (checked above): the
        // parameters and the velocity, written, are separate allocations from each other and
        // from the decay mask and the parts (read only)
        let (p, v, d) = unsafe {
            (
                std::slice::from_raw_parts_mut(params.data_ptr() as *mut f32, n),
                std::slice::from_raw_parts_mut(self.velocity.data_ptr() as *mut f32, n),
                std::slice::from_raw_parts(self.decay.data_ptr() as *const f32, n),
            )
        };
        let k = Hyper { mu, lr, decay, nesterov };
        let update = |p: &mut [f32], v: &mut [f32], d: &[f32], at: usize| update_chunk(p, v, d, parts, at, k);
        // chunks of whole cache lines, one per part's thread (small updates on this thread)
        let chunk = if n < PARALLEL_UPDATE { n } else { n.div_ceil(parts.len()).next_multiple_of(16) };
        std::thread::scope(|s| {
            let mut pieces = p.chunks_mut(chunk).zip(v.chunks_mut(chunk)).zip(d.chunks(chunk)).enumerate();
            let ((p0, v0), d0) = pieces.next().map(|(_, x)| x).expect("n > 0");
            for (k, ((p, v), d)) in pieces {
                s.spawn(move || update(p, v, d, k * chunk));
            }
            update(p0, v0, d0, 0);
        });
        true
    }

    /// [`Self::step`] as libtorch ops, on any device.
    fn step_torch(&mut self, params: &mut Tensor, grad: &Tensor, lr: f64) {
        let mut g = grad.shallow_clone();
        if self.weight_decay > 0.0 {
            let _ = g.addcmul_(&*params, &self.decay);
        }
        let _ = self.velocity.g_mul_scalar_(self.momentum).g_add_(&g);
        if self.nesterov {
            let _ = params.g_sub_(&((&g + &self.velocity * self.momentum) * lr));
        } else {
            let _ = params.g_sub_(&(&self.velocity * lr));
        }
    }
}

/// An update's scalars, as f32 (as libtorch rounds scalars for f32 tensors).
#[derive(Clone, Copy)]
struct Hyper {
    mu: f32,
    lr: f32,
    /// weight decay by the mask
    decay: bool,
    nesterov: bool,
}

/// Elements of a gradient summed at a time before their update.
const BLOCK: usize = 64;

crate::model::pointwise::multiversion! {
    /// [`Sgd::step_parts`]'s update of the elements `at..at + p.len()` (`p`, `v`, `d` are
    /// theirs; `parts` whole), compiled for AVX2 + FMA too, so that the weight decay's
    /// multiply-add is one instruction (libtorch's `addcmul_` fuses it).
    fn update_chunk(p: &mut [f32], v: &mut [f32], d: &[f32], parts: &[&[f32]], at: usize, k: Hyper) => update_body
}

/// Blocks of [`BLOCK`] elements: the parts summed in order (as the CPU step sums its shards),
/// then v ← μ·v + g; p ← p − lr·v (Nesterov: p ← p − lr·(g + μ·v)), g with p·decay added by a
/// multiply-add. Plain loops (closures are not inlined across the feature boundary).
#[inline(always)]
fn update_body(p: &mut [f32], v: &mut [f32], d: &[f32], parts: &[&[f32]], at: usize, k: Hyper) {
    let mut g = [0f32; BLOCK];
    let mut start = 0;
    while start < p.len() {
        let n = BLOCK.min(p.len() - start);
        let (g, p, v, d) = (&mut g[..n], &mut p[start..start + n], &mut v[start..start + n], &d[start..start + n]);
        g.copy_from_slice(&parts[0][at + start..at + start + n]);
        for q in &parts[1..] {
            let q = &q[at + start..at + start + n];
            for i in 0..n {
                g[i] += q[i];
            }
        }
        for i in 0..n {
            let gi = if k.decay { p[i].mul_add(d[i], g[i]) } else { g[i] };
            v[i] = v[i] * k.mu + gi;
            p[i] -= if k.nesterov { (gi + v[i] * k.mu) * k.lr } else { v[i] * k.lr };
        }
        start += n;
    }
}

/// Parameters below this many are updated on one thread (a thread costs more than it saves).
const PARALLEL_UPDATE: usize = 1 << 16;

/// Whether `t` is a contiguous f32 CPU tensor of `n` elements.
fn plain(t: &Tensor, n: usize) -> bool {
    t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous() && t.numel() == n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;

    /// The one-pass update gives libtorch's ops' numbers, bit for bit, with and without
    /// Nesterov momentum and weight decay, from one gradient or from parts of it (on one
    /// thread and, for a model over [`PARALLEL_UPDATE`] parameters, on two).
    #[test]
    fn the_update_in_rust_matches_libtorch_ops() {
        use crate::arch::{Arch, Family};
        for depth in [4, 30] {
            let arch = Arch {
                family: Family::Highway,
                depth,
                width: 50,
                input_dim: 5,
                classes: 3,
                activation: crate::model::Activation::Tanh,
                gate_bias: -2.0,
                residual_block_layers: 1,
                gate: Default::default(),
                fixed_gate: 0.5,
                conv_stages: vec![],
                image_shape: None,
            };
            let model = crate::model::Model::new(arch, 1).unwrap();
            assert_eq!(depth > 4, model.flat.numel() >= PARALLEL_UPDATE);
            for (nesterov, weight_decay) in [(false, 0.0), (true, 0.0), (false, 1e-3), (true, 5e-4)] {
                let mut cfg = TrainConfig::default_recipe();
                cfg.optimizer = if nesterov { Optimizer::Nesterov } else { Optimizer::Sgd };
                cfg.weight_decay = weight_decay;
                let new = || Sgd::new(&model.flat, &model.specs, &cfg);
                let (mut whole, mut parts, mut torch) = (new(), new(), new());
                let (mut pw, mut pp, mut pt) = (model.flat.copy(), model.flat.copy(), model.flat.copy());
                tch::manual_seed(3);
                for step in 0..5 {
                    let lr = 0.1 / (step + 1) as f64;
                    let (g0, g1) = (
                        Tensor::randn(pw.size(), (tch::Kind::Float, tch::Device::Cpu)),
                        Tensor::randn(pw.size(), (tch::Kind::Float, tch::Device::Cpu)),
                    );
                    let grad = &g0 + &g1;
                    whole.step(&mut pw, &grad.copy(), lr);
                    let (v0, v1) = (Vec::<f32>::try_from(&g0).unwrap(), Vec::<f32>::try_from(&g1).unwrap());
                    assert!(parts.step_parts(&mut pp, &[&v0, &v1], lr), "contiguous f32 CPU tensors take the Rust pass");
                    torch.step_torch(&mut pt, &grad.copy(), lr);
                    let same = |x: &Tensor, y: &Tensor| Vec::<f32>::try_from(x).unwrap() == Vec::<f32>::try_from(y).unwrap();
                    let what = format!("depth {depth}, nesterov {nesterov}, decay {weight_decay}, step {step}");
                    assert!(same(&pw, &pt) && same(&whole.velocity, &torch.velocity), "one gradient: {what}");
                    assert!(same(&pp, &pt) && same(&parts.velocity, &torch.velocity), "two parts: {what}");
                }
                assert!(!pw.equal(&model.flat), "the parameters moved");
            }
        }
    }
}
