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
