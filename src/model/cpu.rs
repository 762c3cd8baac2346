//! The highway fast path on the CPU: a whole training step in Rust over the tensors' memory.
//!
//! [`fast`](super::fast) runs the step as libtorch ops, about sixteen per layer, each over a
//! `[128, 50]` tensor: most of a step went to dispatch, allocation and separate passes over
//! memory. For a highway MLP with f32 parameters on the CPU, this module instead:
//! - runs every matrix product through the `gemm` crate, straight into preallocated buffers;
//! - fuses each layer's pointwise work (bias, H's activation, the gate sigmoid, the carry mix;
//!   backward, their derivatives and the bias gradients) into one pass ([`super::pointwise`]);
//! - allocates nothing in a step (buffers are sized on the first step of a batch size);
//! - splits the batch into one shard of rows per thread: each shard runs the whole forward and
//!   backward on its own, and the shards' gradients are summed at the end, so the threads
//!   never wait for each other inside a step.
//!
//! The maths is [`fast`](super::fast)'s (Appendix A of the paper); `tests/suite/model.rs`
//! checks both against autograd. libtorch is touched only at the edges (data pointers).

use tch::{Kind, Tensor};

use super::pointwise;
use super::{Activation, Model};

/// Offsets of the highway layout in the flat parameter buffer (and in a gradient laid out
/// like it).
#[derive(Clone)]
pub(super) struct Layout {
    pub input: usize,
    pub width: usize,
    pub classes: usize,
    /// [width, input], [width]
    pub w0: usize,
    pub b0: usize,
    /// per highway layer: [2·width, width] (block rows, then gate rows) and [2·width]
    pub wc: Vec<usize>,
    pub bc: Vec<usize>,
    /// [classes, width], [classes]
    pub wo: usize,
    pub bo: usize,
    pub len: usize,
}

impl Layout {
    /// The layout of `model` if the CPU kernels can run it: a highway MLP with contiguous f32
    /// parameters on the CPU.
    pub(super) fn of(model: &Model) -> Option<Layout> {
        let f = &model.flat;
        if !(model.arch.adaptive_highway() && f.device() == tch::Device::Cpu && f.kind() == Kind::Float && f.is_contiguous()) {
            return None;
        }
        let at = |name: &str| model.spec(name).map(|s| s.offset);
        let highway = 1..model.arch.depth;
        Some(Layout {
            input: model.arch.input_dim,
            width: model.arch.width,
            classes: model.arch.classes,
            w0: at("layers.0.block.weight")?,
            b0: at("layers.0.block.bias")?,
            wc: highway.clone().map(|l| at(&format!("layers.{l}.block.weight"))).collect::<Option<_>>()?,
            bc: highway.map(|l| at(&format!("layers.{l}.block.bias"))).collect::<Option<_>>()?,
            wo: at("output.weight")?,
            bo: at("output.bias")?,
            len: model.num_params(),
        })
    }

    pub(super) fn layers(&self) -> usize {
        self.wc.len()
    }
}

/// A matrix operand over a slice: element (i, j) at `i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// A row-major `[_, cols]` matrix.
pub(super) fn rows(data: &[f32], cols: usize) -> Mat<'_> {
    Mat { data, rs: cols, cs: 1 }
}

/// The transpose of a row-major `[_, cols]` matrix.
pub(super) fn tr(data: &[f32], cols: usize) -> Mat<'_> {
    Mat { data, rs: 1, cs: cols }
}

/// `dst ([m, n], row-major) = (dst if acc, else 0) + lhs [m, k] · rhs [k, n]`.
pub(super) fn matmul(dst: &mut [f32], (m, n, k): (usize, usize, usize), acc: bool, lhs: Mat, rhs: Mat) {
    let last = |a: &Mat, r: usize, c: usize| (r - 1) * a.rs + (c - 1) * a.cs;
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(dst.len() >= m * n && lhs.data.len() > last(&lhs, m, k) && rhs.data.len() > last(&rhs, k, n));
    // SAFETY: every element the product reads or writes is in bounds (asserted above), and
    // `dst` does not alias the operands (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            acc,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// One thread's rows of the batch, what its forward keeps for its backward, and its gradient.
struct Shard {
    rows: usize,
    /// (layers + 1) × [rows, width]: state l enters highway layer l + 1 (state 0 is the plain
    /// layer's output); the last enters the output layer
    xs: Vec<f32>,
    /// layers × [rows, 2·width]: H | T of each highway layer
    ht: Vec<f32>,
    /// [rows, classes]: the logits, then their gradient
    logits: Vec<f32>,
    /// [rows, width], [rows, 2·width]: the running ∂L/∂y and a layer's ∂L/∂z
    dy: Vec<f32>,
    dz: Vec<f32>,
    /// laid out like the parameters
    grad: Vec<f32>,
    loss: f64,
    correct: i64,
}

impl Shard {
    /// Buffers for `rows` rows; `training` adds the backward's.
    fn new(lay: &Layout, rows: usize, training: bool) -> Shard {
        let (w, l) = (lay.width, lay.layers());
        let sized = |len: usize| if training { vec![0.0; len] } else { Vec::new() };
        Shard {
            rows,
            xs: vec![0.0; (l + 1) * rows * w],
            ht: vec![0.0; l * rows * 2 * w],
            logits: vec![0.0; rows * lay.classes],
            dy: sized(rows * w),
            dz: sized(rows * 2 * w),
            grad: sized(lay.len),
            loss: 0.0,
            correct: 0,
        }
    }

    /// Forward, loss and backward of this shard's rows: `x` [rows, input], `labels` [rows].
    fn run(&mut self, p: &[f32], lay: &Layout, a: Activation, x: &[f32], labels: &[i64], batch: usize) {
        self.forward(p, lay, a, x);
        let (loss, correct) = pointwise::softmax_cross_entropy(&mut self.logits, &p[lay.bo..lay.bo + lay.classes], labels, batch);
        (self.loss, self.correct) = (loss, correct);
        self.backward(p, lay, a, x);
    }

    /// The forward of this shard's first `self.rows` rows, keeping every layer's state and
    /// H | T for the backward.
    fn forward(&mut self, p: &[f32], lay: &Layout, a: Activation, x: &[f32]) {
        let (r, w, c, n) = (self.rows, lay.width, lay.classes, self.rows * lay.width);
        // state 0 = act(x·W0ᵀ + b0)  [rows, width]
        matmul(&mut self.xs[..n], (r, w, lay.input), false, rows(x, lay.input), tr(&p[lay.w0..], lay.input));
        pointwise::bias_act(&mut self.xs[..n], &p[lay.b0..lay.b0 + w], a);
        for (i, (&wc, &bc)) in lay.wc.iter().zip(&lay.bc).enumerate() {
            let ht = &mut self.ht[i * 2 * n..(i + 1) * 2 * n]; // [rows, 2·width]
            let (before, after) = self.xs.split_at_mut((i + 1) * n);
            let x = &before[i * n..];
            matmul(ht, (r, 2 * w, w), false, rows(x, w), tr(&p[wc..], w));
            pointwise::highway_forward(ht, x, &mut after[..n], &p[bc..bc + 2 * w], a);
        }
        let last = &self.xs[lay.layers() * n..(lay.layers() + 1) * n];
        matmul(&mut self.logits[..r * c], (r, c, w), false, rows(last, w), tr(&p[lay.wo..], w));
    }

    fn backward(&mut self, p: &[f32], lay: &Layout, a: Activation, x: &[f32]) {
        let (r, w, c, n) = (self.rows, lay.width, lay.classes, self.rows * lay.width);
        let g = &mut self.grad;
        let last = &self.xs[lay.layers() * n..];
        matmul(&mut g[lay.wo..lay.wo + c * w], (c, w, r), false, tr(&self.logits, c), rows(last, w));
        pointwise::column_sums(&self.logits, &mut g[lay.bo..lay.bo + c]);
        matmul(&mut self.dy, (r, w, c), false, rows(&self.logits, c), rows(&p[lay.wo..], w));
        for i in (0..lay.layers()).rev() {
            let (wc, bc) = (lay.wc[i], lay.bc[i]);
            let xi = &self.xs[i * n..(i + 1) * n];
            let db = &mut g[bc..bc + 2 * w];
            db.fill(0.0);
            pointwise::highway_backward(&mut self.dy, &mut self.dz, &self.ht[i * 2 * n..(i + 1) * 2 * n], xi, db, a);
            matmul(&mut g[wc..wc + 2 * w * w], (2 * w, w, r), false, tr(&self.dz, 2 * w), rows(xi, w));
            matmul(&mut self.dy, (r, w, 2 * w), true, rows(&self.dz, 2 * w), rows(&p[wc..], w));
        }
        pointwise::act_backward(&mut self.dy, &self.xs[..n], &mut g[lay.b0..lay.b0 + w], a);
        matmul(&mut g[lay.w0..lay.w0 + w * lay.input], (w, lay.input, r), false, tr(&self.dy, w), rows(x, lay.input));
    }
}

/// The CPU training step of one highway MLP, with its buffers.
pub struct Step {
    layout: Layout,
    activation: Activation,
    /// Threads (shards) a step runs on.
    threads: usize,
    shards: Vec<Shard>,
}

impl Step {
    /// The CPU step for `model` on `threads` threads, if it can run it: a highway MLP with
    /// contiguous f32 parameters on the CPU.
    ///
    /// The step runs its own threads. Keep libtorch's intra-op pool at one thread while
    /// stepping (as `train` does): after each parallel op, OpenMP's workers spin-wait for more
    /// work and take the cores from the shards (measured: 16k vs 31k samples/s on two cores).
    pub fn new(model: &Model, threads: usize) -> Option<Step> {
        let layout = Layout::of(model)?;
        Some(Step { layout, activation: model.arch.activation, threads: threads.max(1), shards: Vec::new() })
    }

    /// The shards for a batch: one per thread, at least 16 rows each.
    fn shards_for(&mut self, batch: usize) {
        let sizes = shard_sizes(self.threads, batch);
        if self.shards.iter().map(|s| s.rows).ne(sizes.iter().copied()) {
            self.shards = sizes.into_iter().map(|r| Shard::new(&self.layout, r, true)).collect();
        }
    }

    /// One step's loss and gradient on `x` ([batch, input_dim]) and `y` ([batch]): writes the
    /// gradient into `grad` ([num_params], overwritten) and returns (mean loss, correct).
    pub fn loss_and_grad(&mut self, model: &Model, x: &Tensor, y: &Tensor, grad: &mut Tensor) -> (Tensor, Tensor) {
        let out = self.loss_and_grads(model, x, y);
        sum_into(grad, self.grads());
        out
    }

    /// [`Self::loss_and_grad`], leaving the gradient in parts, one per shard ([`Self::grads`]):
    /// the optimiser sums them as it updates.
    pub fn loss_and_grads(&mut self, model: &Model, x: &Tensor, y: &Tensor) -> (Tensor, Tensor) {
        let batch = x.size()[0] as usize;
        self.shards_for(batch);
        let lay = &self.layout;
        assert!(x.size() == [batch as i64, lay.input as i64] && y.size() == [batch as i64], "batch shapes");
        assert!(model.flat.numel() == lay.len);
        let ((xt, xn), (yt, yn)) = (host::<f32>(x), host::<i64>(y));
        // SAFETY: contiguous CPU tensors of these lengths (checked above, in `host` and in
        // `Layout::of`); the step only reads `flat`, `x` and `y`.
        let (p, xs, ys) = unsafe { (slice_of::<f32>(&model.flat, lay.len), slice_of::<f32>(&xt, xn), slice_of::<i64>(&yt, yn)) };
        let a = self.activation;
        in_shards(&mut self.shards, |s| s.rows, (xs, lay.input), ys, |shard, x, y| shard.run(p, lay, a, x, y, batch));
        let loss = self.shards.iter().map(|s| s.loss).sum::<f64>() / batch as f64;
        let correct = self.shards.iter().map(|s| s.correct).sum::<i64>();
        (Tensor::from(loss as f32), Tensor::from(correct))
    }

    /// The last step's gradient in parts, one per shard, laid out like the parameters: the
    /// gradient is their sum.
    pub fn grads(&self) -> impl Iterator<Item = &[f32]> {
        self.shards.iter().map(|s| &s.grad[..])
    }
}

/// `out = Σ shard gradients` (`out`: a contiguous f32 CPU tensor as long as each).
pub(super) fn sum_into<'a>(out: &mut Tensor, mut grads: impl Iterator<Item = &'a [f32]>) {
    let first = grads.next().expect("at least one shard");
    assert!(out.numel() == first.len() && out.is_contiguous() && out.kind() == Kind::Float && out.device() == tch::Device::Cpu);
    // SAFETY: a contiguous f32 CPU tensor of this length (checked above), borrowed mutably
    let out = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, first.len()) };
    out.copy_from_slice(first);
    for g in grads {
        for (o, &g) in out.iter_mut().zip(g) {
            *o += g;
        }
    }
}

/// The sizes of a batch's shards on `threads` threads: one per thread, at least 16 rows each.
pub(super) fn shard_sizes(threads: usize, batch: usize) -> Vec<usize> {
    let count = threads.min(batch / 16).max(1);
    (0..count).map(|i| batch / count + usize::from(i < batch % count)).collect()
}

/// Runs `run(shard, x, labels)` for every shard on its rows of the batch (`x`: rows of `input`
/// floats; shard i takes the rows after those of shards 0..i): shard 0 on this thread, the
/// others on threads of their own.
pub(super) fn in_shards<S: Send>(
    shards: &mut [S],
    rows_of: impl Fn(&S) -> usize,
    (x, input): (&[f32], usize),
    labels: &[i64],
    run: impl Fn(&mut S, &[f32], &[i64]) + Sync,
) {
    let mut start = 0;
    let mut parts = shards.iter_mut().map(|shard| {
        let rows = start..start + rows_of(shard);
        start = rows.end;
        (shard, &x[rows.start * input..rows.end * input], &labels[rows])
    });
    let (first, x0, y0) = parts.next().expect("at least one shard");
    let run = &run;
    std::thread::scope(|s| {
        for (shard, x, y) in parts {
            s.spawn(move || run(shard, x, y));
        }
        run(first, x0, y0);
    });
}

thread_local! {
    /// Threads of the CPU kernels' inference set on this thread by [`Threads::set`] (0:
    /// libtorch's intra-op count). Per thread, so that runs training side by side (a sweep's
    /// jobs, the viewer's trainer beside its model) each keep their own.
    static THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The threads the CPU kernels' inference ([`Infer`]) runs on when called from this thread:
/// those set by [`Threads::set`], else libtorch's intra-op count (which every front-end sets
/// from `--threads`).
pub fn threads() -> usize {
    match THREADS.get() {
        0 => tch::get_num_threads().max(1) as usize,
        n => n,
    }
}

/// Sets this thread's CPU kernel inference threads apart from libtorch's, until dropped (the
/// trainer keeps libtorch to one thread while its steps run their own).
pub struct Threads(usize);

impl Threads {
    pub fn set(n: usize) -> Threads {
        Threads(THREADS.replace(n.max(1)))
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        THREADS.set(self.0);
    }
}

/// A tensor's rows as a slice: f32 (or i64 labels), contiguous, on the CPU.
pub(super) fn host<T: tch::kind::Element>(t: &Tensor) -> (Tensor, usize) {
    let t = t.to_device(tch::Device::Cpu).to_kind(T::KIND).contiguous();
    let n = t.numel();
    (t, n)
}

/// `t`'s memory (see [`host`]).
///
/// # Safety
/// `t` must be a contiguous CPU tensor of `n` elements of `T`, alive and unchanged while the
/// slice is used.
pub(super) unsafe fn slice_of<T>(t: &Tensor, n: usize) -> &[T] {
    std::slice::from_raw_parts(t.data_ptr() as *const T, n)
}
