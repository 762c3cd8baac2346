//! The highway fast path: a fused forward and a hand-written backward.
//!
//! H and T of a layer are one `[2w, w]` matrix (block rows, then gate rows, adjacent in the
//! flat buffer), so a layer's forward is one `addmm` plus pointwise ops. The backward is the
//! highway paper's Appendix A, written out and run without autograd:
//!
//! ```text
//! y  = x + T·(H − x)             d = H − x
//! dH = T·dy       dz_H = dH·act'(H)
//! dT = d·dy       dz_T = dT·T·(1 − T)
//! dx = (1 − T)·dy + [dz_H | dz_T] · W_HT
//! ```
//!
//! Gradients are written straight into a flat gradient buffer laid out like the parameters,
//! so the optimiser updates everything with a few ops. `tests/fast_path.rs` checks this
//! against autograd on `Model::forward_with`.

use tch::{Kind, Tensor};

use super::{Activation, Forward, ForwardOpts, Model};

/// Views of one flat buffer (parameters or gradients) in the fused highway layout.
pub struct Views {
    /// [width, input_dim]
    pub w0: Tensor,
    /// [width]
    pub b0: Tensor,
    /// per highway layer: [2·width, width] (block rows, then gate rows)
    pub wc: Vec<Tensor>,
    /// per highway layer: [2·width]
    pub bc: Vec<Tensor>,
    /// [classes, width]
    pub wo: Tensor,
    /// [classes]
    pub bo: Tensor,
}

impl Views {
    pub fn new(model: &Model, buf: &Tensor) -> Views {
        let w = model.arch.width as i64;
        let v = |name: &str| super::view(model.spec(name).expect("highway layout"), buf);
        let fused = |l: usize| {
            let s = model.spec(&format!("layers.{l}.block.weight")).expect("highway layout");
            let bs = model.spec(&format!("layers.{l}.block.bias")).expect("highway layout");
            (buf.narrow(0, s.offset as i64, 2 * w * w).view([2 * w, w]), buf.narrow(0, bs.offset as i64, 2 * w))
        };
        let (wc, bc) = (1..model.arch.depth).map(fused).unzip();
        Views { w0: v("layers.0.block.weight"), b0: v("layers.0.block.bias"), wc, bc, wo: v("output.weight"), bo: v("output.bias") }
    }
}

/// Parameter views the forward reads: transposed once, kept for the model's life.
pub struct Kernel {
    /// [input_dim, width]
    w0t: Tensor,
    b0: Tensor,
    /// per highway layer: [width, 2·width]
    wct: Vec<Tensor>,
    wc: Vec<Tensor>,
    bc: Vec<Tensor>,
    /// [width, classes]
    wot: Tensor,
    wo: Tensor,
    bo: Tensor,
}

impl Kernel {
    fn new(model: &Model) -> Kernel {
        let v = Views::new(model, &model.flat);
        Kernel {
            w0t: v.w0.tr(),
            b0: v.b0,
            wct: v.wc.iter().map(|w| w.tr()).collect(),
            wc: v.wc,
            bc: v.bc,
            wot: v.wo.tr(),
            wo: v.wo,
            bo: v.bo,
        }
    }
}

/// What the backward needs from the forward, per highway layer.
pub struct Saved {
    /// [batch, input_dim]
    input: Tensor,
    /// output of the plain layer 0, [batch, width]
    a0: Tensor,
    /// per highway layer: its input x, H(x), T(x) and H − x, each [batch, width]
    xs: Vec<Tensor>,
    hs: Vec<Tensor>,
    ts: Vec<Tensor>,
    ds: Vec<Tensor>,
    /// input of the output layer, [batch, width]
    last: Tensor,
}

fn act(a: Activation, z: &Tensor) -> Tensor {
    super::activate(a, z)
}

fn act_backward(a: Activation, grad: &Tensor, out: &Tensor) -> Tensor {
    match a {
        Activation::Tanh => Tensor::tanh_backward(grad, out),
        Activation::Relu => out.threshold_backward(grad, 0.0),
    }
}

/// The fused highway forward. `save` keeps what [`backward`] needs.
pub fn forward(model: &Model, x: &Tensor, opts: ForwardOpts, save: bool) -> (Forward, Option<Saved>) {
    let k = model.kernel();
    let a = model.arch.activation;
    let keep = save || opts.trace;
    // [batch, width]
    let a0 = act(a, &k.b0.addmm(x, &k.w0t));
    let mut h = a0.shallow_clone();
    let (mut blocks, mut gates) = (Vec::new(), Vec::new());
    let (mut xs, mut hs, mut ts, mut ds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if opts.trace {
        blocks.push(a0.shallow_clone());
    }
    for (i, (bc, wct)) in k.bc.iter().zip(&k.wct).enumerate() {
        let layer = i + 1;
        if opts.lesion == Some(layer) {
            // T := 0: the layer carries its input unchanged.
            if opts.trace {
                gates.push(h.zeros_like());
                blocks.push(h.shallow_clone());
            }
            continue;
        }
        let z = bc.addmm(&h, wct); // [batch, 2·width]
        let zz = z.chunk(2, 1);
        let hh = act(a, &zz[0]); // H(x)
        let t = zz[1].sigmoid(); // T(x)
        let d = &hh - &h; // H − x
        let y = h.addcmul(&t, &d); // x + T·(H − x)
        if keep {
            if save {
                xs.push(h);
                hs.push(hh);
                ds.push(d);
            }
            if opts.trace {
                gates.push(t.shallow_clone());
                blocks.push(y.shallow_clone());
            }
            if save {
                ts.push(t);
            }
        }
        h = y;
    }
    let logits = k.bo.addmm(&h, &k.wot);
    let saved = save.then(|| Saved { input: x.shallow_clone(), a0, xs, hs, ts, ds, last: h });
    (Forward { logits, blocks, gates, spatial_gates: vec![] }, saved)
}

/// Inference-only replays of highway layers from cached inputs (the lesion analysis).
///
/// For tanh nets the state is carried as `q = (h + 1) / 2` and the weights are refolded so
/// that one `sigmoid` over `[batch, 2·width]` gives both H and T (`tanh(z) = 2·sigmoid(2z) − 1`,
/// and on this CPU libtorch's tanh costs 3–4× its sigmoid):
///
/// ```text
/// z_H = W_H h + b_H = 4·W_H q + 2·(b_H − W_H·1)  (already doubled for the sigmoid)
/// z_T = W_T h + b_T = 2·W_T q + (b_T − W_T·1)
/// q'  = q + T·(s − q),  s = sigmoid(z_H) = (H + 1) / 2
/// ```
///
/// A layer is then one `addmm`, one in-place `sigmoid` and two pointwise ops. relu nets keep
/// `h` and the plain step.
pub struct Replay {
    tanh: bool,
    /// [input_dim, width], [width]: the plain first layer, as in the model
    w0t: Tensor,
    b0: Tensor,
    /// per highway layer: [width, 2·width] and [2·width], refolded for tanh nets
    wct: Vec<Tensor>,
    bc: Vec<Tensor>,
    /// [width, classes], [classes], refolded for tanh nets
    wot: Tensor,
    bo: Tensor,
    width: i64,
    activation: Activation,
}

impl Replay {
    pub fn new(model: &Model) -> Replay {
        let k = model.kernel();
        let w = model.arch.width as i64;
        let tanh = model.arch.activation == Activation::Tanh;
        let f = (Kind::Float, model.device());
        let (wct, bc, wot, bo) = if tanh {
            // z = W h + b with h = 2q − 1  →  2W q + (b − W·1); then the H half doubled.
            let half = Tensor::cat(&[Tensor::full([w], 2.0, f), Tensor::ones([w], f)], 0); // [2w]
            let wct: Vec<Tensor> = k.wct.iter().map(|m| (m * 2.0 * half.view([1, 2 * w])).contiguous()).collect();
            let bc: Vec<Tensor> =
                k.bc.iter().zip(&k.wct).map(|(b, m)| (b - m.sum_dim_intlist([0i64].as_slice(), false, Kind::Float)) * &half).collect();
            let wot = (&k.wot * 2.0).contiguous();
            let bo = &k.bo - k.wot.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
            (wct, bc, wot, bo)
        } else {
            (
                k.wct.iter().map(|m| m.shallow_clone()).collect(),
                k.bc.iter().map(|b| b.shallow_clone()).collect(),
                k.wot.shallow_clone(),
                k.bo.shallow_clone(),
            )
        };
        Replay { tanh, w0t: k.w0t.shallow_clone(), b0: k.b0.shallow_clone(), wct, bc, wot, bo, width: w, activation: model.arch.activation }
    }

    /// One highway layer (1-based `layer`) on the state ([batch, width]); returns its output.
    pub fn layer(&self, layer: usize, q: &Tensor) -> Tensor {
        let i = layer - 1;
        if self.tanh {
            let mut z = self.bc[i].addmm(q, &self.wct[i]); // [batch, 2·width]
            let _ = z.sigmoid_(); // [s | T], s = (H + 1) / 2
            let s = z.narrow(1, 0, self.width);
            let t = z.narrow(1, self.width, self.width);
            q.addcmul(&t, &(s - q))
        } else {
            let z = self.bc[i].addmm(q, &self.wct[i]); // [batch, 2·width]
            let zz = z.chunk(2, 1);
            q.addcmul(&zz[1].sigmoid(), &(act(self.activation, &zz[0]) - q))
        }
    }

    /// The logits for a state ([batch, width]) after the last layer, [batch, classes].
    pub fn logits(&self, q: &Tensor) -> Tensor {
        self.bo.addmm(q, &self.wot)
    }

    /// Runs highway layers `from..depth` on a state (the input of layer `from`), skipping
    /// `lesion`, then the output layer. Returns the logits, [batch, classes].
    pub fn forward_from(&self, q: &Tensor, from: usize, depth: usize, lesion: Option<usize>) -> Tensor {
        let mut q = q.shallow_clone();
        for layer in from.max(1)..depth {
            if lesion != Some(layer) {
                q = self.layer(layer, &q);
            }
        }
        self.logits(&q)
    }

    /// The state entering every layer 1..depth, and after the last, from the images
    /// ([batch, input_dim]): `states[l − 1]` enters layer l; each [batch, width].
    pub fn layer_inputs(&self, x: &Tensor, depth: usize) -> Vec<Tensor> {
        let z0 = self.b0.addmm(x, &self.w0t); // [batch, width]
        let mut q = if self.tanh { (z0 * 2.0).sigmoid() } else { act(self.activation, &z0) };
        let mut out = Vec::with_capacity(depth);
        for layer in 1..depth {
            let next = self.layer(layer, &q);
            out.push(q);
            q = next;
        }
        out.push(q);
        out
    }
}

/// Backpropagates `dlogits` ([batch, classes]) through a saved forward, writing every
/// parameter's gradient into `grads` (views of a flat gradient buffer; overwritten, not added).
pub fn backward(model: &Model, saved: &Saved, dlogits: &Tensor, grads: &Views) {
    let k = model.kernel();
    let a = model.arch.activation;
    let dims = [0i64];
    let _ = dlogits.tr().mm_out(&grads.wo, &saved.last);
    let _ = dlogits.sum_intlist_out(&grads.bo, dims.as_slice(), false, Kind::Float);
    let mut dy = dlogits.mm(&k.wo); // [batch, width]
    for i in (0..saved.ts.len()).rev() {
        let (t, hh, d, x) = (&saved.ts[i], &saved.hs[i], &saved.ds[i], &saved.xs[i]);
        let dh = &dy * t;
        let dzh = act_backward(a, &dh, hh);
        let dzt = Tensor::sigmoid_backward(&(&dy * d), t);
        let dz = Tensor::cat(&[dzh, dzt], 1); // [batch, 2·width]
        let _ = dz.tr().mm_out(&grads.wc[i], x);
        let _ = dz.sum_intlist_out(&grads.bc[i], dims.as_slice(), false, Kind::Float);
        // (1 − T)·dy + dz·W_HT
        dy = (dy - dh).addmm(&dz, &k.wc[i]);
    }
    let da = act_backward(a, &dy, &saved.a0);
    let _ = da.tr().mm_out(&grads.w0, &saved.input);
    let _ = da.sum_intlist_out(&grads.b0, dims.as_slice(), false, Kind::Float);
}

/// One training step's loss and gradient: forward, softmax cross-entropy, backward.
/// Returns (mean loss, correct predictions) as tensors (no sync with the caller).
pub fn loss_and_grad(model: &Model, x: &Tensor, y: &Tensor, grads: &Views) -> (Tensor, Tensor) {
    let (fwd, saved) = forward(model, x, ForwardOpts::default(), true);
    let batch = x.size()[0] as f64;
    let logp = fwd.logits.log_softmax(-1, Kind::Float); // [batch, classes]
    let loss = logp.nll_loss(y);
    let dlogits = (logp.exp() - y.one_hot(model.arch.classes as i64)) / batch;
    backward(model, saved.as_ref().expect("saved"), &dlogits, grads);
    let correct = fwd.logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64);
    (loss, correct)
}

impl Model {
    /// The fused views of this model's parameters (built once).
    pub(crate) fn kernel(&self) -> &Kernel {
        self.kernel.get_or_init(|| Kernel::new(self))
    }
}
