//! Architectures: the three MLP families and their parameter layout. Plain data, no tensors.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Highway,
    Plain,
    Residual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Tanh,
    Relu,
}

impl Activation {
    /// Init gain: LeCun for tanh, He for relu.
    pub fn gain(self) -> f64 {
        match self {
            Activation::Tanh => 1.0,
            Activation::Relu => 2f64.sqrt(),
        }
    }
}

/// How a highway layer's transform gate T is computed (the ablation of adaptive gating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GateMode {
    /// T = sigmoid(W_T x + b_T): data-dependent (the paper's highway layer).
    #[default]
    Adaptive,
    /// T = sigmoid(b_T): learned per unit, the same for every input.
    Learned,
    /// T = a constant (`Arch::fixed_gate`), nothing learned.
    Fixed,
}

/// Everything that fixes the shapes and meaning of a model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub family: Family,
    /// Hidden layers, counting the plain first layer (Figure 2: 50).
    pub depth: usize,
    pub width: usize,
    pub input_dim: usize,
    pub classes: usize,
    pub activation: Activation,
    /// Initial transform-gate bias b_T (highway only).
    pub gate_bias: f32,
    /// Layers in a residual branch F: 1 or 2 (residual only).
    pub residual_block_layers: usize,
    /// How T is computed (highway only).
    #[serde(default)]
    pub gate: GateMode,
    /// T of every unit when `gate` is `Fixed`.
    #[serde(default = "half")]
    pub fixed_gate: f32,
}

fn half() -> f32 {
    0.5
}

impl Arch {
    /// The Figure-2 network: 784 → plain 50 → 49 highway layers of 50 tanh units → 10.
    pub fn figure2() -> Self {
        Arch {
            family: Family::Highway,
            depth: 50,
            width: 50,
            input_dim: 784,
            classes: 10,
            activation: Activation::Tanh,
            gate_bias: -2.0,
            residual_block_layers: 2,
            gate: GateMode::Adaptive,
            fixed_gate: 0.5,
        }
    }

    /// The highway layer of the paper, with a data-dependent gate: the layout the fast
    /// kernel (fused `[2w, w]` H|T matrices) runs.
    pub fn adaptive_highway(&self) -> bool {
        self.family == Family::Highway && self.gate == GateMode::Adaptive
    }

    /// T of a fresh highway layer: sigmoid(b_T), or the fixed value.
    pub fn initial_gate(&self) -> f64 {
        match self.gate {
            GateMode::Fixed => self.fixed_gate as f64,
            _ => 1.0 / (1.0 + (-(self.gate_bias as f64)).exp()),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.depth >= 1, "depth must be at least 1 (got {})", self.depth);
        anyhow::ensure!(self.width >= 1, "width must be at least 1");
        anyhow::ensure!(self.input_dim >= 1 && self.classes >= 2, "bad input/class count");
        anyhow::ensure!(
            matches!(self.residual_block_layers, 1 | 2),
            "a residual branch has 1 or 2 layers (got {})",
            self.residual_block_layers
        );
        anyhow::ensure!(
            self.gate != GateMode::Fixed || (self.fixed_gate > 0.0 && self.fixed_gate <= 1.0),
            "a fixed gate must be in (0, 1] (got {})",
            self.fixed_gate
        );
        Ok(())
    }

    /// Layers 1..depth carry a gate (highway) or a skip (residual); layer 0 is plain.
    pub fn gated_layers(&self) -> std::ops::Range<usize> {
        match self.family {
            Family::Highway => 1..self.depth,
            _ => 0..0,
        }
    }

    /// The parameter layout in the flat buffer. Highway layers keep block and gate weights
    /// adjacent (then block and gate biases), so `[2w, w]` and `[2w]` fused views exist.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let (w, mut out, mut off) = (self.width, Vec::new(), 0usize);
        let mut push = |name: String, shape: Vec<usize>| {
            let n: usize = shape.iter().product();
            out.push(ParamSpec { name, shape, offset: off });
            off += n;
        };
        push("layers.0.block.weight".into(), vec![w, self.input_dim]);
        push("layers.0.block.bias".into(), vec![w]);
        for l in 1..self.depth {
            match self.family {
                Family::Highway => match self.gate {
                    GateMode::Adaptive => {
                        push(format!("layers.{l}.block.weight"), vec![w, w]);
                        push(format!("layers.{l}.gate.weight"), vec![w, w]);
                        push(format!("layers.{l}.block.bias"), vec![w]);
                        push(format!("layers.{l}.gate.bias"), vec![w]);
                    }
                    GateMode::Learned => {
                        push(format!("layers.{l}.block.weight"), vec![w, w]);
                        push(format!("layers.{l}.block.bias"), vec![w]);
                        push(format!("layers.{l}.gate.bias"), vec![w]);
                    }
                    GateMode::Fixed => {
                        push(format!("layers.{l}.block.weight"), vec![w, w]);
                        push(format!("layers.{l}.block.bias"), vec![w]);
                    }
                },
                Family::Plain => {
                    push(format!("layers.{l}.block.weight"), vec![w, w]);
                    push(format!("layers.{l}.block.bias"), vec![w]);
                }
                Family::Residual => {
                    push(format!("layers.{l}.block.weight"), vec![w, w]);
                    push(format!("layers.{l}.block.bias"), vec![w]);
                    if self.residual_block_layers == 2 {
                        push(format!("layers.{l}.block2.weight"), vec![w, w]);
                        push(format!("layers.{l}.block2.bias"), vec![w]);
                    }
                }
            }
        }
        push("output.weight".into(), vec![self.classes, w]);
        push("output.bias".into(), vec![self.classes]);
        out
    }

    /// Extra init gain of highway blocks H, so that a layer keeps the scale of its input at
    /// initialisation. With the initial gate t₀ = sigmoid(b_T), `y = (1−t₀)·x + t₀·H(x)` and
    /// H(x) ≈ W x in tanh's linear range, E|y|² = E|x|² needs (1−t₀)² + t₀²·g² = 1. The factor
    /// 1.25 makes up for tanh's saturation. Without it, at b_T = −2 every layer shrinks its input
    /// by about 11 %, a 50-layer net's last layer sees a near-constant vector and training sits
    /// at loss ln(classes) (measured: see ARCHITECTURE.md, "Initialisation"). relu does not
    /// saturate, so it gets the plain factor.
    pub fn carry_preserving_gain(&self) -> f64 {
        let t0 = self.initial_gate();
        let saturation = if self.activation == Activation::Tanh { 1.25 } else { 1.0 };
        saturation * (1.0 - (1.0 - t0).powi(2)).max(0.0).sqrt() / t0
    }

    pub fn num_params(&self) -> usize {
        self.param_specs().iter().map(|p| p.numel()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in the flat buffer, in elements.
    pub offset: usize,
}

impl ParamSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

