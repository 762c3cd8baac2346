//! The three MLP families of the papers, over one flat parameter buffer.
//!
//! - Highway (Srivastava et al. 2015): a plain first layer to width `w`, then `depth − 1`
//!   highway layers `y = H(x)·T(x) + x·(1 − T(x))`, `T = sigmoid(W_T x + b_T)`.
//! - Plain: `depth` layers `y = act(W x + b)`.
//! - Residual (He et al. 2015): a plain first layer, then `y = x + F(x)` with F of one layer
//!   (`act(W x + b)`) or two (`W2 act(W1 x + b1) + b2`).
//!
//! All parameters live in one flat f32 tensor (`Model::flat`); every named parameter
//! (`layers.17.gate.bias`, …) is a view into it. That makes the optimiser step a few ops and
//! lets the highway fast path (`fast`) read H and T of a layer as one fused `[2w, w]` matrix.
//!
//! There is one forward per family ([`Model::forward`]); it hands back, per layer, the gate
//! activity T and the block output y when asked. The trainer, the probe and `eval` all call it.

pub mod conv_cpu;
pub mod cpu;
pub mod export_torch;
pub mod fast;
pub mod file;
pub(crate) mod fused;
pub mod import;
pub mod infer;
pub(crate) mod pointwise;
pub(crate) mod sparse;

use tch::{Kind, Tensor};

pub use crate::arch::{Activation, Arch, Family, GateMode, ParamSpec};

/// `act(x)` for an activation.
pub fn activate(a: Activation, x: &Tensor) -> Tensor {
    match a {
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.relu(),
    }
}

pub use crate::recipe::DeviceChoice;

impl DeviceChoice {
    pub fn resolve(self) -> anyhow::Result<tch::Device> {
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => anyhow::bail!(
                "--device cuda: no CUDA device is available (this libtorch was built without CUDA, or no GPU is visible); \
                 use --device cpu or auto, or build against a CUDA libtorch (README, \"GPU\")"
            ),
        }
    }
}

/// A parameter as a view of `flat` (or of a gradient buffer laid out like it).
pub fn view(spec: &ParamSpec, flat: &Tensor) -> Tensor {
    let shape: Vec<i64> = spec.shape.iter().map(|&s| s as i64).collect();
    flat.narrow(0, spec.offset as i64, spec.numel() as i64).view(shape.as_slice())
}

/// Options of one forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOpts {
    /// Hand back per-layer T and y.
    pub trace: bool,
    /// Close all gates of this layer (T := 0, the layer copies its input); in a residual
    /// net, drop this layer's branch (y = x). Plain nets ignore it.
    pub lesion: Option<usize>,
    /// Conv nets, with `trace`: also hand back every gated layer's full T maps.
    pub spatial: bool,
}

/// What one forward pass hands back.
pub struct Forward {
    /// [batch, classes]
    pub logits: Tensor,
    /// Per layer 0..depth: the block output y_l, [batch, width] (empty unless traced).
    pub blocks: Vec<Tensor>,
    /// Per gated layer (highway: 1..depth, in order): T_l, [batch, width] (empty unless traced).
    /// Conv nets: the spatial mean of T per channel.
    pub gates: Vec<Tensor>,
    /// Conv nets with `opts.spatial`: per gated layer, T as [batch, width, h, w].
    pub spatial_gates: Vec<Tensor>,
}

/// A model: its architecture and its parameters in one flat f32 buffer.
pub struct Model {
    pub arch: Arch,
    pub specs: Vec<ParamSpec>,
    /// [num_params], f32, no autograd. Update it in place only: views of it are cached.
    pub flat: Tensor,
    kernel: std::cell::OnceCell<fast::Kernel>,
}

impl Model {
    /// A freshly initialised model: weights ~ N(0, gain²/fan_in), biases 0, gate biases b_T.
    pub fn new(arch: Arch, seed: u64) -> anyhow::Result<Self> {
        arch.validate()?;
        let specs = arch.param_specs();
        let n: usize = specs.iter().map(|s| s.numel()).sum();
        let flat = Tensor::zeros([n as i64], (Kind::Float, tch::Device::Cpu));
        tch::manual_seed(seed as i64);
        let gain = arch.activation.gain();
        tch::no_grad(|| {
            for s in &specs {
                let mut v = view(s, &flat);
                if s.name.ends_with(".weight") {
                    let fan_in = s.shape[1..].iter().product::<usize>() as f64;
                    let highway_block = matches!(arch.family, Family::Highway | Family::Conv)
                        && s.name.ends_with(".block.weight")
                        && !s.name.starts_with("layers.0.");
                    let g = if highway_block { gain * arch.carry_preserving_gain() } else { gain };
                    let std = if s.name.starts_with("output") { 1.0 } else { g } / fan_in.sqrt();
                    v.copy_(&(Tensor::randn(v.size(), (Kind::Float, tch::Device::Cpu)) * std));
                } else if s.name.ends_with(".gate.bias") {
                    let _ = v.fill_(arch.gate_bias as f64);
                }
            }
        });
        Ok(Model { arch, specs, flat, kernel: Default::default() })
    }

    /// A model over given parameter values ([num_params] f32, in `arch.param_specs()` order).
    pub fn from_flat(arch: Arch, flat: Tensor) -> anyhow::Result<Self> {
        arch.validate()?;
        let specs = arch.param_specs();
        let n: i64 = specs.iter().map(|s| s.numel() as i64).sum();
        anyhow::ensure!(flat.size() == [n], "expected {n} parameters, got shape {:?}", flat.size());
        let flat = flat.to_kind(Kind::Float).detach().contiguous();
        Ok(Model { arch, specs, flat, kernel: Default::default() })
    }

    /// The model with its parameters on `device` (initialisation always happens on the CPU,
    /// so a seed gives the same model everywhere).
    pub fn to_device(self, device: tch::Device) -> Model {
        if self.flat.device() == device {
            return self;
        }
        Model { flat: self.flat.to_device(device), kernel: Default::default(), ..self }
    }

    pub fn device(&self) -> tch::Device {
        self.flat.device()
    }

    pub fn num_params(&self) -> usize {
        self.specs.iter().map(|s| s.numel()).sum()
    }

    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// A named parameter as a view of the model's buffer.
    pub fn param(&self, name: &str) -> Option<Tensor> {
        self.spec(name).map(|s| view(s, &self.flat))
    }

    /// The transform-gate biases, [depth − 1, width] (highway only).
    pub fn gate_biases(&self) -> Option<Tensor> {
        if !matches!(self.arch.family, Family::Highway | Family::Conv) || self.arch.gate == GateMode::Fixed || self.arch.depth < 2 {
            return None;
        }
        let rows: Vec<Tensor> =
            self.arch.gated_layers().map(|l| self.param(&format!("layers.{l}.gate.bias")).expect("layout has gate biases")).collect();
        Some(Tensor::stack(&rows, 0))
    }

    /// The forward pass (x: [batch, input_dim]). Autograd flows to `params` if it requires
    /// grad; pass `&self.flat` for plain inference (wrap in `tch::no_grad`).
    pub fn forward_with(&self, params: &Tensor, x: &Tensor, opts: ForwardOpts) -> Forward {
        if self.arch.family == Family::Conv {
            return self.conv_forward(params, x, opts);
        }
        let p = |name: String| view(self.spec(&name).expect("param in layout"), params);
        let act = self.arch.activation;
        let (mut blocks, mut gates) = (Vec::new(), Vec::new());
        // [batch, width]
        let mut h = activate(act, &x.linear(&p("layers.0.block.weight".into()), Some(p("layers.0.block.bias".into()))));
        if opts.trace {
            blocks.push(h.shallow_clone());
        }
        for l in 1..self.arch.depth {
            let lin = |part: &str| h.linear(&p(format!("layers.{l}.{part}.weight")), Some(p(format!("layers.{l}.{part}.bias"))));
            h = match self.arch.family {
                Family::Highway => {
                    if opts.lesion == Some(l) {
                        if opts.trace {
                            gates.push(h.zeros_like());
                        }
                        h
                    } else {
                        let hh = activate(act, &lin("block")); // [batch, width]
                        let t = match self.arch.gate {
                            GateMode::Adaptive => lin("gate").sigmoid(), // [batch, width]
                            // [1, width], broadcast over the batch
                            GateMode::Learned => p(format!("layers.{l}.gate.bias")).sigmoid().unsqueeze(0),
                            GateMode::Fixed => {
                                Tensor::full([1, self.arch.width as i64], self.arch.fixed_gate as f64, (Kind::Float, h.device()))
                            }
                        };
                        let y = &hh * &t + &h * (1.0 - &t);
                        if opts.trace {
                            gates.push(t.expand_as(&h).contiguous());
                        }
                        y
                    }
                }
                Family::Plain => activate(act, &lin("block")),
                Family::Conv => unreachable!("conv nets run conv_forward"),
                Family::Residual if opts.lesion == Some(l) => h,
                Family::Residual => {
                    let f = activate(act, &lin("block"));
                    let f = if self.arch.residual_block_layers == 2 {
                        f.linear(&p(format!("layers.{l}.block2.weight")), Some(p(format!("layers.{l}.block2.bias"))))
                    } else {
                        f
                    };
                    &h + f
                }
            };
            if opts.trace {
                blocks.push(h.shallow_clone());
            }
        }
        let logits = h.linear(&p("output.weight".into()), Some(p("output.bias".into())));
        Forward { logits, blocks, gates, spatial_gates: vec![] }
    }

    /// The convolutional highway forward (x: [batch, c·h·w]). Traced T and y are spatial
    /// means per channel, [batch, width], so conv nets fill the same snapshots as MLPs; with
    /// `opts.spatial`, the full T maps come back too.
    fn conv_forward(&self, params: &Tensor, x: &Tensor, opts: ForwardOpts) -> Forward {
        let p = |name: String| view(self.spec(&name).expect("param in layout"), params);
        let act = self.arch.activation;
        let [c, hh, ww] = self.arch.image_shape.expect("validated conv arch");
        let (mut blocks, mut gates, mut spatial) = (Vec::new(), Vec::new(), Vec::new());
        let conv = |h: &Tensor, part: String| -> Tensor {
            h.conv2d(&p(format!("{part}.weight")), Some(p(format!("{part}.bias"))), [1, 1], [1, 1], [1, 1], 1)
        };
        let mean = |t: &Tensor| t.mean_dim([2i64, 3].as_slice(), false, Kind::Float); // [batch, width]
        let x = x.view([-1, c as i64, hh as i64, ww as i64]);
        // [batch, width, h, w]
        let mut h = activate(act, &conv(&x, "layers.0.block".into()));
        if opts.trace {
            blocks.push(mean(&h));
        }
        for l in 1..self.arch.depth {
            if l > 1 && self.arch.stage_of(l) != self.arch.stage_of(l - 1) {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false); // next stage: half size
            }
            if opts.lesion == Some(l) {
                if opts.trace {
                    gates.push(Tensor::zeros([h.size()[0], h.size()[1]], (Kind::Float, h.device())));
                    if opts.spatial {
                        spatial.push(h.zeros_like());
                    }
                }
            } else {
                // H and T as one convolution: their weights are adjacent in the layout, so
                // [2·width, width, 3, 3] and [2·width] are views
                let (ws, bs) = (
                    self.spec(&format!("layers.{l}.block.weight")).expect("conv layout"),
                    self.spec(&format!("layers.{l}.block.bias")).expect("conv layout"),
                );
                let wd = self.arch.width as i64;
                let w_ht = params.narrow(0, ws.offset as i64, 2 * ws.numel() as i64).view([2 * wd, wd, 3, 3]);
                let b_ht = params.narrow(0, bs.offset as i64, 2 * wd);
                let z = h.conv2d(&w_ht, Some(b_ht), [1, 1], [1, 1], [1, 1], 1).chunk(2, 1); // [batch, 2·width, h, w]
                let hb = activate(act, &z[0]); // H: [batch, width, h, w]
                let t = z[1].sigmoid(); // T: [batch, width, h, w]
                let y = &hb * &t + &h * (1.0 - &t);
                if opts.trace {
                    gates.push(mean(&t));
                    if opts.spatial {
                        spatial.push(t.shallow_clone());
                    }
                }
                h = y;
            }
            if opts.trace {
                blocks.push(mean(&h));
            }
        }
        let pooled = mean(&h); // global average pooling: [batch, width]
        let logits = pooled.linear(&p("output.weight".into()), Some(p("output.bias".into())));
        Forward { logits, blocks, gates, spatial_gates: spatial }
    }

    /// The forward pass over the model's own parameters; the highway family runs the fused
    /// fast kernel (`fast::forward`), the same code the trainer's fast path runs.
    pub fn forward(&self, x: &Tensor, opts: ForwardOpts) -> Forward {
        if self.arch.adaptive_highway() {
            let (fwd, _) = fast::forward(self, x, opts, false);
            fwd
        } else {
            self.forward_with(&self.flat, x, opts)
        }
    }

    /// Mean cross-entropy and accuracy over a whole split (`x`: f32 features, or u8 pixels,
    /// scaled to [0, 1] a chunk at a time), in chunks, without autograd.
    pub fn evaluate(&self, x: &Tensor, y: &Tensor, opts: ForwardOpts) -> (f64, f64) {
        let n = x.size()[0];
        if n == 0 {
            return (f64::NAN, f64::NAN);
        }
        if let Some(infer) = infer::Infer::new(self, cpu::threads()) {
            return infer.evaluate(x, y, opts.lesion);
        }
        if x.kind() == Kind::Uint8 {
            const PIXEL_CHUNK: i64 = 5_000;
            let (mut loss, mut correct) = (0.0, 0.0);
            for start in (0..n).step_by(PIXEL_CHUNK as usize) {
                let len = PIXEL_CHUNK.min(n - start);
                let (l, a) = self.evaluate(&images_f32(&x.narrow(0, start, len)), &y.narrow(0, start, len), opts);
                (loss, correct) = (loss + l * len as f64, correct + (a * len as f64).round());
            }
            return (loss / n as f64, correct / n as f64);
        }
        if let Some(scores) = conv_cpu::evaluate(self, x, y, opts.lesion, cpu::threads()) {
            return scores;
        }
        let chunk = self.arch.chunk(10_000);
        let (mut loss, mut correct) = (0.0, 0.0);
        tch::no_grad(|| {
            for start in (0..n).step_by(chunk as usize) {
                let len = chunk.min(n - start);
                let xb = x.narrow(0, start, len).to_device(self.device());
                let yb = y.narrow(0, start, len).to_device(self.device());
                let logits = self.forward(&xb, ForwardOpts { trace: false, ..opts }).logits;
                loss += f64::try_from(logits.cross_entropy_for_logits(&yb)).unwrap() * len as f64;
                correct += f64::try_from(logits.argmax(-1, false).eq_tensor(&yb).to_kind(Kind::Float).sum(Kind::Float)).unwrap();
            }
        });
        (loss / n as f64, correct / n as f64)
    }
}

/// Tells glibc's allocator to keep freed tensor buffers (up to 32 MiB each) for reuse instead of
/// handing them back to the kernel. libtorch on the CPU allocates every activation afresh; by
/// default each buffer above the adaptive mmap threshold is mapped, zero-filled page by page
/// and unmapped again, which made a conv net's evaluation spend more time in the kernel than
/// in convolutions (measured: 40 conv training steps plus a full evaluation took 120 s wall,
/// 108 s of it system time; with this, 53 s and 2 s). Call once, before any thread starts.
pub fn keep_freed_tensor_memory() {
    // 32 MiB is glibc's largest mmap threshold on 64-bit systems.
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    // SAFETY: mallopt only changes allocator parameters; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// Pixels [n, dim] u8 → [n, dim] f32 in [0, 1].
pub fn images_tensor(images: &[u8], dim: usize) -> Tensor {
    let n = (images.len() / dim) as i64;
    images_f32(&Tensor::from_slice(images).view([n, dim as i64]))
}

/// u8 pixels → f32 in [0, 1], the same shape.
pub fn images_f32(pixels: &Tensor) -> Tensor {
    let mut x = pixels.to_kind(Kind::Float);
    let _ = x.g_div_scalar_(255.0); // in place: no second f32 buffer at the peak
    x
}

/// Labels → [n] i64.
pub fn labels_tensor(labels: &[u8]) -> Tensor {
    Tensor::from_slice(labels).to_kind(Kind::Int64)
}
