//! Architectures: the MLP families (highway, plain, residual), the conv highway net, and
//! their parameter layout. Plain data, no tensors.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Highway,
    Plain,
    Residual,
    /// Convolutional highway net (the paper's Table 1): a plain 3×3 convolution to `width`
    /// channels, then stages of highway layers whose H and T are 3×3 same-size convolutions,
    /// 2×2 max pooling between stages, global average pooling, a linear classifier.
    Conv,
}

impl Family {
    /// The family's name in a sentence: "highway", "conv" (as in "a highway net").
    pub fn name(self) -> &'static str {
        match self {
            Family::Highway => "highway",
            Family::Plain => "plain",
            Family::Residual => "residual",
            Family::Conv => "conv",
        }
    }

    /// The family's name as a title ("Highway", "Conv"), as in "a 50-layer Highway net".
    pub fn label(self) -> &'static str {
        match self {
            Family::Highway => "Highway",
            Family::Plain => "Plain",
            Family::Residual => "Residual",
            Family::Conv => "Conv",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Tanh,
    Relu,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }

    /// Init gain: LeCun for tanh, He for relu.
    pub fn gain(self) -> f64 {
        match self {
            Activation::Tanh => 1.0,
            Activation::Relu => 2f64.sqrt(),
        }
    }
}

/// How a highway layer's transform gate T is computed (the ablation of adaptive gating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// Conv nets: highway layers per stage (they sum to depth − 1); max pooling between stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv_stages: Vec<usize>,
    /// Conv nets: the input image, [channels, height, width].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<[usize; 3]>,
}

fn half() -> f32 {
    0.5
}

/// Limits on what an architecture may claim (a model card, an import spec, a recording's
/// header): a file that claims more is refused before anything is allocated for it.
pub const MAX_DEPTH: usize = 10_000;
pub const MAX_WIDTH: usize = 65_536;
/// Values per example (e.g. 4096 × 4096 pixels).
pub const MAX_INPUT_DIM: usize = 1 << 24;
pub const MAX_CLASSES: usize = 100_000;
/// Parameters of a model: 2^28, 1 GiB of f32.
pub const MAX_PARAMS: usize = 1 << 28;
/// Values of one example's widest conv activation.
pub const MAX_ACTIVATION: usize = 1 << 26;

impl Arch {
    /// Stages of `layers` highway layers split as evenly as possible into `stages`.
    pub fn split_stages(layers: usize, stages: usize) -> Vec<usize> {
        let stages = stages.clamp(1, layers.max(1));
        (0..stages).map(|s| layers / stages + usize::from(s < layers % stages)).collect()
    }

    /// Conv nets: the stage of highway layer `l` (1-based), so pooling happens before the first
    /// layer of every stage after the first.
    pub fn stage_of(&self, l: usize) -> usize {
        let mut end = 0;
        for (s, n) in self.conv_stages.iter().enumerate() {
            end += n;
            if l <= end {
                return s;
            }
        }
        self.conv_stages.len().saturating_sub(1)
    }

    /// What a column of a layer × width map is: a "unit", or in conv nets a "channel".
    pub fn unit_name(&self) -> &'static str {
        if self.family == Family::Conv {
            "channel"
        } else {
            "unit"
        }
    }

    /// FLOP of one training sample (forward and backward: each weight's multiply-add in the
    /// forward, in ∂W, and in ∂x except for the first layer's input; a conv weight's once per
    /// output pixel). None for a conv net without an image shape.
    pub fn training_flop_per_sample(&self) -> Option<usize> {
        if self.family == Family::Conv {
            let [c, mut h, mut w] = self.image_shape?;
            let k = self.width;
            let first = h * w * k * c * 9;
            let mut highway = 0;
            for l in 1..self.depth {
                if l > 1 && self.stage_of(l) != self.stage_of(l - 1) {
                    (h, w) = (h / 2, w / 2);
                }
                highway += h * w * 2 * k * k * 9;
            }
            return Some(2 * (2 * first + 3 * highway + 3 * k * self.classes));
        }
        let specs = self.param_specs();
        let weights: usize = specs.iter().filter(|s| s.name.ends_with(".weight")).map(|s| s.numel()).sum();
        let first = specs.iter().find(|s| s.name == "layers.0.block.weight").map_or(0, |s| s.numel());
        Some(6 * weights - 2 * first)
    }

    /// Floats one example's widest layer activation takes: width (MLPs) or width × h × w
    /// (conv nets, first stage).
    pub fn activation_floats(&self) -> usize {
        match self.image_shape {
            Some([_, h, w]) if self.family == Family::Conv => self.width * h * w,
            _ => self.width,
        }
    }

    /// Examples per chunk of a pass over many examples, at most `max`: keeps one activation of
    /// a chunk under 16 MiB (below the allocator's mmap threshold, see
    /// [`crate::model::keep_freed_tensor_memory`]), so conv nets (12,544 floats per example at
    /// width 16 on MNIST) go in chunks of hundreds, MLPs in chunks of thousands.
    pub fn chunk(&self, max: usize) -> i64 {
        const BUDGET: usize = 4 << 20; // floats
        (BUDGET / self.activation_floats()).clamp(1, max) as i64
    }

    /// Examples per chunk of a pass that keeps `per_layer` activations of every layer (a
    /// traced probe, the lesion replay's cached inputs), at most [`Arch::chunk`]`(max)`: keeps
    /// them under 32 M floats (128 MiB), so that a wide, deep model's pass stays within the
    /// memory budget (README, "Reliability").
    pub fn traced_chunk(&self, max: usize, per_layer: usize) -> i64 {
        const BUDGET: usize = 32 << 20; // floats
        let per_example = self.activation_floats().saturating_mul(self.depth).saturating_mul(per_layer.max(1));
        self.chunk(max).min((BUDGET / per_example.max(1)).max(1) as i64)
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

    /// Checks that the architecture makes sense and stays within the documented limits
    /// ([`MAX_DEPTH`], [`MAX_WIDTH`], [`MAX_INPUT_DIM`], [`MAX_CLASSES`], [`MAX_PARAMS`]), with
    /// checked arithmetic, so that nothing is allocated for an absurd size a file claims.
    pub fn validate(&self) -> anyhow::Result<()> {
        let limit = |field: &str, v: usize, lo: usize, hi: usize| {
            anyhow::ensure!(v >= lo, "{field} {v} is below {lo}");
            anyhow::ensure!(v <= hi, "{field} {v} is over the limit of {hi}");
            Ok(())
        };
        limit("depth", self.depth, 1, MAX_DEPTH)?;
        limit("width", self.width, 1, MAX_WIDTH)?;
        limit("input_dim", self.input_dim, 1, MAX_INPUT_DIM)?;
        limit("classes", self.classes, 2, MAX_CLASSES)?;
        anyhow::ensure!(self.gate_bias.is_finite(), "gate_bias {} is not a finite number", self.gate_bias);
        if self.family == Family::Conv {
            let [c, h, w] = self.image_shape.ok_or_else(|| anyhow::anyhow!("a conv net needs the image shape"))?;
            let pixels = c.checked_mul(h).and_then(|v| v.checked_mul(w));
            anyhow::ensure!(pixels == Some(self.input_dim), "image shape {c}x{h}x{w} does not hold input_dim {} inputs", self.input_dim);
            limit("conv stages", self.conv_stages.len(), 1, self.depth)?;
            let layers = self.conv_stages.iter().try_fold(0usize, |a, &s| a.checked_add(s));
            anyhow::ensure!(
                layers == Some(self.depth - 1),
                "conv stages {:?} must hold depth - 1 = {} highway layers",
                self.conv_stages,
                self.depth - 1
            );
            let pools = self.conv_stages.len() - 1;
            anyhow::ensure!(pools < 32 && h >> pools >= 1 && w >> pools >= 1, "{pools} poolings leave nothing of a {h}x{w} image");
            anyhow::ensure!(self.gate == GateMode::Adaptive, "conv nets have adaptive gates only");
            let act = self.width.checked_mul(h).and_then(|v| v.checked_mul(w));
            anyhow::ensure!(
                act.is_some_and(|a| a <= MAX_ACTIVATION),
                "conv activations of {} x {h} x {w} values per example are over the limit of {MAX_ACTIVATION}",
                self.width
            );
        }
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
        // within the limits above, the count fits in 64 bits; the limit keeps it allocatable
        let params = self.num_params();
        anyhow::ensure!(
            params <= MAX_PARAMS,
            "{params} parameters (depth {}, width {}) are over the limit of {MAX_PARAMS}",
            self.depth,
            self.width
        );
        Ok(())
    }

    /// Layers 1..depth carry a gate (highway) or a skip (residual); layer 0 is plain.
    pub fn gated_layers(&self) -> std::ops::Range<usize> {
        match self.family {
            Family::Highway | Family::Conv => 1..self.depth,
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
        if self.family == Family::Conv {
            let c = self.image_shape.map_or(1, |s| s[0]);
            push("layers.0.block.weight".into(), vec![w, c, 3, 3]);
            push("layers.0.block.bias".into(), vec![w]);
            for l in 1..self.depth {
                push(format!("layers.{l}.block.weight"), vec![w, w, 3, 3]);
                push(format!("layers.{l}.gate.weight"), vec![w, w, 3, 3]);
                push(format!("layers.{l}.block.bias"), vec![w]);
                push(format!("layers.{l}.gate.bias"), vec![w]);
            }
            push("output.weight".into(), vec![self.classes, w]);
            push("output.bias".into(), vec![self.classes]);
            return out;
        }
        push("layers.0.block.weight".into(), vec![w, self.input_dim]);
        push("layers.0.block.bias".into(), vec![w]);
        for l in 1..self.depth {
            match self.family {
                Family::Conv => unreachable!("handled above"),
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
