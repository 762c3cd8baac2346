//! Inference of a highway MLP on the CPU with the training step's kernels: evaluation, probe
//! passes and lesion replays, over blocks of rows spread across threads.
//!
//! Each thread runs whole blocks of rows through every layer. A block's state is ping-ponged
//! between two buffers and a layer's H | T lives in one more, so a block's working set stays in
//! L2; only a lesion pass keeps every layer's state (its replays start from them). A highway
//! layer runs as [`fused`](super::fused)'s kernel where the CPU has AVX2 + FMA, else as the
//! training step's product and pointwise pass.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tch::{Kind, Tensor};

use super::cpu::{host, matmul, rows, slice_of, tr, Layout};
use super::fused::{Packed, ROW_MULTIPLE};
use super::pointwise;
use super::sparse::{FirstLayer, Scratch};
use super::{Activation, Model};

/// Floats of per-thread buffers an inference block may take (16 MiB).
const BLOCK_BUDGET: usize = 4 << 20;

/// What a probe pass sums over its examples, per highway layer.
pub struct ProbeSums {
    /// [layers, classes, width]: T summed over each class's examples
    pub class_sum: Vec<f32>,
    /// [layers]: how many T > 0.5
    pub open: Vec<f64>,
    /// [layers + 1]: Σ |y_l − y_(l−1)| (entry 0 unused)
    pub change: Vec<f64>,
}

/// The rows a pass reads: f32 features, or u8 pixels scaled to [0, 1] a block at a time.
#[derive(Clone, Copy)]
enum Input<'a> {
    Features(&'a [f32]),
    Pixels(&'a [u8]),
}

/// One thread's buffers for a block of at most `block` rows.
struct Rows {
    block: usize,
    /// `slots` × [block, width]: two states ping-ponged, or every layer's (a lesion pass)
    states: Vec<f32>,
    slots: usize,
    /// [block, 2·width]: H | T of the layer just run
    ht: Vec<f32>,
    /// [block, classes]: the logits (before the output bias)
    logits: Vec<f32>,
    /// [block, input]: a block of pixels scaled to [0, 1]
    scaled: Vec<f32>,
    /// 2 × [block, width]: a lesion pass's replays ping-pong here (sized by that pass)
    replay: Vec<f32>,
    /// a row's nonzero inputs (the sparse first layer's)
    nonzero: Scratch,
}

/// A probe pass's block: its labels (< `classes`), and the sums its layers add to.
struct Probing<'s> {
    labels: &'s [i64],
    classes: usize,
    sums: &'s mut ProbeSums,
}

impl Probing<'_> {
    /// Adds highway layer `i`'s statistics: `stats(labels, its class sums)` adds T into the
    /// class sums ([classes, width]) and returns how many T > 0.5 and Σ |y − x|.
    fn layer(&mut self, i: usize, w: usize, stats: impl FnOnce(&[i64], &mut [f32]) -> (f64, f64)) {
        let per = self.classes * w;
        let (open, change) = stats(self.labels, &mut self.sums.class_sum[i * per..(i + 1) * per]);
        self.sums.open[i] += open;
        self.sums.change[i + 1] += change;
    }
}

/// What a layer hands to a pass's `visit`: its 0-based index, its H | T ([rows, 2·width];
/// only when asked for), its input and its output ([rows, width]).
type Visit<'v> = &'v mut dyn FnMut(usize, &[f32], &[f32], &[f32]);

pub struct Infer<'m> {
    layout: Layout,
    activation: Activation,
    params: &'m [f32],
    threads: usize,
    /// Rows per block: a lesion pass's buffers (every layer's state) stay within [`BLOCK_BUDGET`].
    block: usize,
    /// The highway layers packed for the fused kernel, when the CPU runs it.
    packed: Option<Packed>,
    /// The first layer skipping zero inputs (features or pixels), with the fused kernel.
    first: Option<FirstLayer>,
}

impl<'m> Infer<'m> {
    /// The CPU inference of `model` on `threads` threads, if it can run it (as
    /// [`Step::new`](super::cpu::Step::new)), through the fused kernel where the CPU prefers
    /// it ([`fused::preferred`](super::fused::preferred)).
    pub fn new(model: &'m Model, threads: usize) -> Option<Infer<'m>> {
        Self::with_kernel(model, threads, super::fused::preferred())
    }

    /// [`Self::new`], with the fused kernel (where the CPU runs it: AVX2 + FMA) or without it
    /// (the training step's product and pointwise pass); tests and benchmarks compare the two.
    pub fn with_kernel(model: &'m Model, threads: usize, fused: bool) -> Option<Infer<'m>> {
        let layout = Layout::of(model)?;
        // SAFETY: a contiguous f32 CPU tensor of `len` elements (`Layout::of`), borrowed with
        // the model
        let params = unsafe { slice_of::<f32>(&model.flat, layout.len) };
        let per_row = layout.input + 3 * (layout.layers() + 1) * layout.width + layout.classes;
        // whole tiles of the kernel: 252 rows for the Figure-2 net
        let block = (BLOCK_BUDGET / per_row).clamp(16, 256) / ROW_MULTIPLE * ROW_MULTIPLE;
        let packed = Packed::new(layout.width, layout.layers(), model.arch.activation).filter(|_| fused).map(|mut pk| {
            pk.pack_all(params, &layout.wc, &layout.bc);
            pk
        });
        let first = packed.as_ref().and_then(|_| FirstLayer::new(&params[layout.w0..], layout.width, layout.input));
        Some(Infer { layout, activation: model.arch.activation, params, threads: threads.max(1), block, packed, first })
    }

    /// Buffers for blocks of at most `block` rows, keeping `slots` states.
    fn rows(&self, slots: usize, block: usize) -> Rows {
        let (lay, b) = (&self.layout, block);
        Rows {
            block,
            states: vec![0.0; slots * b * lay.width],
            slots,
            ht: vec![0.0; b * 2 * lay.width],
            logits: vec![0.0; b * lay.classes],
            scaled: Vec::new(),
            replay: Vec::new(),
            nonzero: Scratch::default(),
        }
    }

    /// The forward of `x`'s rows ([rows, input]) with `lesion` (1-based) closed: calls `visit`
    /// after each highway layer (with H | T when `keep_ht`), adds each layer's statistics to
    /// `probe` if given (in the fused kernel where it runs; a closed layer adds nothing: its T
    /// is 0 and y = x), and leaves the logits in `buf.logits`.
    fn forward(&self, buf: &mut Rows, x: Input, lesion: Option<usize>, keep_ht: bool, mut probe: Option<Probing>, visit: Visit) {
        let (lay, p, a, w) = (&self.layout, self.params, self.activation, self.layout.width);
        let r = match x {
            Input::Features(x) => x.len(),
            Input::Pixels(px) => px.len(),
        } / lay.input;
        let n = r * w;
        let slot = |i: usize| if buf.slots == 2 { i % 2 } else { i };
        // state 0 = act(x·W0ᵀ + b0)  [rows, width]
        let first = &mut buf.states[..n];
        match (x, &self.first) {
            (Input::Pixels(px), Some(sparse)) => sparse.pixels(px, first, &mut buf.nonzero),
            (Input::Features(x), Some(sparse)) => sparse.features(x, first, &mut buf.nonzero),
            _ => {
                let x = match x {
                    Input::Features(x) => x,
                    Input::Pixels(px) => {
                        buf.scaled.clear();
                        buf.scaled.extend(px.iter().map(|&v| v as f32 / 255.0));
                        &buf.scaled
                    }
                };
                matmul(first, (r, w, lay.input), false, rows(x, lay.input), tr(&p[lay.w0..], lay.input));
            }
        }
        pointwise::bias_act(first, &p[lay.b0..lay.b0 + w], a);
        let stride = buf.block * w;
        for (i, (&wc, &bc)) in lay.wc.iter().zip(&lay.bc).enumerate() {
            let (s, d) = (slot(i), slot(i + 1));
            // the input slot and the output slot, apart
            let (xin, y) = if s < d {
                let (lo, hi) = buf.states.split_at_mut(d * stride);
                (&lo[s * stride..s * stride + n], &mut hi[..n])
            } else {
                let (lo, hi) = buf.states.split_at_mut(s * stride);
                (&hi[..n], &mut lo[d * stride..d * stride + n])
            };
            let ht = &mut buf.ht[..2 * n];
            if lesion == Some(i + 1) {
                ht.fill(0.0);
                y.copy_from_slice(xin);
            } else {
                match (&self.packed, &mut probe) {
                    (Some(pk), Some(pr)) => pr.layer(i, w, |labels, class_sum| pk.probe(i, xin, y, labels, class_sum)),
                    (Some(pk), None) => pk.forward(i, xin, y, keep_ht.then_some(&mut *ht)),
                    (None, _) => {
                        matmul(ht, (r, 2 * w, w), false, rows(xin, w), tr(&p[wc..], w));
                        pointwise::highway_forward(ht, xin, y, &p[bc..bc + 2 * w], a);
                        if let Some(pr) = &mut probe {
                            pr.layer(i, w, |labels, class_sum| pointwise::probe_layer(ht, xin, y, labels, class_sum));
                        }
                    }
                }
            }
            visit(i, ht, xin, y);
        }
        let last = slot(lay.layers());
        let c = lay.classes;
        matmul(&mut buf.logits[..r * c], (r, c, w), false, rows(&buf.states[last * stride..last * stride + n], w), tr(&p[lay.wo..], w));
    }

    /// Runs `work(buffers, rows)` on blocks of the `n` rows, on the threads, each thread taking
    /// the next block left (so a thread slowed by other work, such as the viewer's frames,
    /// takes fewer); buffers keep `slots` states. Returns the blocks' results in block order,
    /// so that what is summed from them does not depend on the threads. `tick(rows done)` is
    /// called on this thread; when it returns false the pass stops and returns None.
    fn blocks<R: Send>(
        &self,
        (n, slots): (usize, usize),
        work: impl Fn(&mut Rows, Range<usize>) -> R + Sync,
        tick: &mut dyn FnMut(usize) -> bool,
    ) -> Option<Vec<R>> {
        let count = n.div_ceil(self.block);
        let (next, done, stop) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
        let threads = self.threads.min(count).max(1);
        let run = |tick: &mut dyn FnMut(usize) -> bool| {
            let (mut buf, mut out) = (self.rows(slots, self.block), Vec::new());
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= count || stop.load(Ordering::Relaxed) {
                    break;
                }
                out.push((b, work(&mut buf, b * self.block..((b + 1) * self.block).min(n))));
                let d = (done.fetch_add(1, Ordering::Relaxed) + 1) * self.block;
                if !tick(d.min(n)) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            out
        };
        let mut results = std::thread::scope(|s| {
            let others: Vec<_> = (1..threads).map(|_| s.spawn(|| run(&mut |_| true))).collect();
            let mut results = run(tick);
            for h in others {
                results.extend(h.join().expect("an inference thread panicked"));
            }
            results
        });
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        results.sort_unstable_by_key(|&(b, _)| b);
        Some(results.into_iter().map(|(_, r)| r).collect())
    }

    /// Mean loss and accuracy on `x` ([n, input_dim]: f32 features, or u8 pixels that are
    /// scaled to [0, 1]) and `y` ([n]), with `lesion` closed; NaN for no rows.
    pub fn evaluate(&self, x: &Tensor, y: &Tensor, lesion: Option<usize>) -> (f64, f64) {
        let (lay, p) = (&self.layout, self.params);
        let (yt, n) = host::<i64>(y);
        // SAFETY: a contiguous CPU tensor of this length, alive for the pass
        let ys = unsafe { slice_of::<i64>(&yt, n) };
        let scores = with_input(x, |input| {
            self.blocks(
                (n, 2),
                |buf, r| {
                    self.forward(buf, input.rows(r.clone(), lay.input), lesion, false, None, &mut |_, _, _, _| {});
                    score(&mut buf.logits[..r.len() * lay.classes], &p[lay.bo..lay.bo + lay.classes], &ys[r])
                },
                &mut |_| true,
            )
        });
        let (loss, correct) = scores.expect("never cancelled").into_iter().fold((0.0, 0.0), |s, a| (s.0 + a.0, s.1 + a.1));
        (loss / n as f64, correct / n as f64) // NaN for no rows, as `Model::evaluate`
    }

    /// Loss and correct predictions summed over `x`, `y`: row 0 with no lesion, row l with
    /// highway layer l lesioned (each lesion replays only the layers after it from the cached
    /// input of layer l). `tick(rows, sums)` once per block: the sums so far over the blocks
    /// finished (`rows` of them, in the order the threads finished them), and last the result
    /// (summed in block order, so that it does not depend on the threads). Each block's figure
    /// is taken as it finishes, on whichever thread, and reported on this one at its next
    /// chance, so that every figure is reported even when this thread is starved and the
    /// others run every block. None as soon as `tick` returns false.
    pub fn lesion_sums(&self, x: &Tensor, y: &Tensor, tick: &mut dyn FnMut(usize, &[Scored]) -> bool) -> Option<Vec<Scored>> {
        let (lay, p) = (&self.layout, self.params);
        let (yt, n) = host::<i64>(y);
        // SAFETY: a contiguous CPU tensor of this length, alive for the pass
        let ys = unsafe { slice_of::<i64>(&yt, n) };
        let (w, l, stride) = (lay.width, lay.layers(), self.block * lay.width);
        // (rows, sums) over the blocks finished, and the figures not reported yet
        let so_far = Mutex::new((0, vec![(0f64, 0f64); l + 1], Vec::new()));
        let report = |tick: &mut dyn FnMut(usize, &[Scored]) -> bool| {
            let figures = std::mem::take(&mut so_far.lock().expect("a lesion thread panicked").2);
            figures.iter().all(|(rows, sums): &(usize, Vec<Scored>)| tick(*rows, sums))
        };
        let blocks = with_input(x, |input| {
            self.blocks(
                (n, l + 1),
                |buf, r| {
                    let (bo, labels, c) = (&p[lay.bo..lay.bo + lay.classes], &ys[r.clone()], lay.classes);
                    self.forward(buf, input.rows(r.clone(), lay.input), None, false, None, &mut |_, _, _, _| {});
                    let m = r.len() * w;
                    buf.replay.resize(2 * stride, 0.0);
                    let mut sums = vec![score(&mut buf.logits[..r.len() * c], bo, labels)];
                    for lesion in 1..=l {
                        // the input of layer `lesion` is what layer lesion + 1 gets
                        let (q, next) = buf.replay.split_at_mut(stride);
                        q[..m].copy_from_slice(&buf.states[(lesion - 1) * stride..(lesion - 1) * stride + m]);
                        let out = self.replay(&mut buf.ht[..2 * m], &mut q[..m], &mut next[..m], lesion);
                        matmul(&mut buf.logits[..r.len() * c], (r.len(), c, w), false, rows(out, w), tr(&p[lay.wo..], w));
                        sums.push(score(&mut buf.logits[..r.len() * c], bo, labels));
                    }
                    let mut f = so_far.lock().expect("a lesion thread panicked");
                    f.0 += r.len();
                    add(&mut f.1, &sums);
                    let figure = (f.0, f.1.clone());
                    f.2.push(figure);
                    sums
                },
                &mut |_| report(tick),
            )
        })?;
        if !report(tick) {
            return None;
        }
        let mut total = vec![(0f64, 0f64); l + 1];
        for sums in blocks {
            add(&mut total, &sums);
        }
        tick(n, &total);
        Some(total)
    }

    /// Runs highway layers `from + 1..` (1-based) on the state `q` ([rows, width]),
    /// ping-ponging with `next`; returns the final state.
    fn replay<'b>(&self, ht: &mut [f32], mut q: &'b mut [f32], mut next: &'b mut [f32], from: usize) -> &'b [f32] {
        let (lay, p, w) = (&self.layout, self.params, self.layout.width);
        for i in from..lay.layers() {
            match &self.packed {
                Some(pk) => pk.forward(i, q, next, None),
                None => {
                    let (wc, bc) = (lay.wc[i], lay.bc[i]);
                    matmul(ht, (q.len() / w, 2 * w, w), false, rows(q, w), tr(&p[wc..], w));
                    pointwise::highway_forward(ht, q, next, &p[bc..bc + 2 * w], self.activation);
                }
            }
            std::mem::swap(&mut q, &mut next);
        }
        q
    }

    /// A probe pass's sums over `x` (as [`Self::evaluate`]'s), `y` (labels < `classes`), with
    /// `lesion` closed; None if `tick(rows done)` returned false.
    pub fn probe_sums(
        &self,
        x: &Tensor,
        y: &Tensor,
        classes: usize,
        lesion: Option<usize>,
        tick: &mut dyn FnMut(usize) -> bool,
    ) -> Option<ProbeSums> {
        let lay = &self.layout;
        let (yt, n) = host::<i64>(y);
        // SAFETY: a contiguous CPU tensor of this length, alive for the pass
        let ys = unsafe { slice_of::<i64>(&yt, n) };
        let (w, l) = (lay.width, lay.layers());
        let empty = || ProbeSums { class_sum: vec![0.0; l * classes * w], open: vec![0.0; l], change: vec![0.0; l + 1] };
        let blocks = with_input(x, |input| {
            self.blocks(
                (n, 2),
                |buf, r| {
                    let mut sums = empty();
                    let probe = Probing { labels: &ys[r.clone()], classes, sums: &mut sums };
                    self.forward(buf, input.rows(r.clone(), lay.input), lesion, false, Some(probe), &mut |_, _, _, _| {});
                    sums
                },
                tick,
            )
        })?;
        let mut total = empty();
        for s in blocks {
            total.class_sum.iter_mut().zip(&s.class_sum).for_each(|(t, v)| *t += v);
            total.open.iter_mut().zip(&s.open).for_each(|(t, v)| *t += v);
            total.change.iter_mut().zip(&s.change).for_each(|(t, v)| *t += v);
        }
        Some(total)
    }
}

/// The traces of a few examples: what Figure 2's per-sample maps show.
pub struct Trace {
    /// [examples, layers, width]: T of every highway layer
    pub gates: Vec<f32>,
    /// [examples, layers + 1, width]: every block's output (the first is the plain layer's)
    pub blocks: Vec<f32>,
    /// [examples]: the predicted classes
    pub predictions: Vec<u32>,
}

impl Infer<'_> {
    /// Traces `x`'s rows (as [`Self::evaluate`]'s) with `lesion` closed, on this thread.
    pub fn trace(&self, x: &Tensor, lesion: Option<usize>) -> Trace {
        let (lay, p) = (&self.layout, self.params);
        let (w, l, c) = (lay.width, lay.layers(), lay.classes);
        let k = x.size()[0] as usize;
        let mut trace = Trace { gates: vec![0.0; k * l * w], blocks: vec![0.0; k * (l + 1) * w], predictions: Vec::with_capacity(k) };
        // sized for the few rows traced, not a whole block (every layer's state is kept)
        let block = k.clamp(1, self.block);
        let mut buf = self.rows(l + 1, block);
        let stride = block * w;
        with_input(x, |input| {
            for r in (0..k).step_by(block) {
                let r = r..(r + block).min(k);
                self.forward(&mut buf, input.rows(r.clone(), lay.input), lesion, true, None, &mut |i, ht, _, _| {
                    for (e, ht) in r.clone().zip(ht.chunks_exact(2 * w)) {
                        trace.gates[(e * l + i) * w..][..w].copy_from_slice(&ht[w..]);
                    }
                });
                for (j, state) in buf.states.chunks_exact(stride).enumerate() {
                    for (e, y) in r.clone().zip(state.chunks_exact(w)) {
                        trace.blocks[(e * (l + 1) + j) * w..][..w].copy_from_slice(y);
                    }
                }
                for logits in buf.logits[..r.len() * c].chunks_exact_mut(c) {
                    logits.iter_mut().zip(&p[lay.bo..lay.bo + c]).for_each(|(v, b)| *v += b);
                    trace.predictions.push(pointwise::argmax(logits).0 as u32);
                }
            }
        });
        trace
    }
}

impl<'a> Input<'a> {
    /// Rows `r` of a matrix of `cols` columns.
    fn rows(self, r: Range<usize>, cols: usize) -> Input<'a> {
        match self {
            Input::Features(x) => Input::Features(&x[r.start * cols..r.end * cols]),
            Input::Pixels(x) => Input::Pixels(&x[r.start * cols..r.end * cols]),
        }
    }
}

/// Runs `f` on `x`'s memory: u8 pixels as they are, anything else as f32.
fn with_input<R>(x: &Tensor, f: impl FnOnce(Input) -> R) -> R {
    if x.kind() == Kind::Uint8 {
        let (t, n) = host::<u8>(x);
        // SAFETY: a contiguous CPU tensor of this length, alive while `f` runs
        f(Input::Pixels(unsafe { slice_of::<u8>(&t, n) }))
    } else {
        let (t, n) = host::<f32>(x);
        // SAFETY: as above
        f(Input::Features(unsafe { slice_of::<f32>(&t, n) }))
    }
}

/// Whether [`Infer`] runs `model` (a highway MLP with contiguous f32 parameters on the CPU).
pub fn runs(model: &Model) -> bool {
    Layout::of(model).is_some()
}

/// Loss and correct predictions, summed over rows.
pub type Scored = (f64, f64);

/// Adds a block's sums into `total`.
fn add(total: &mut [Scored], sums: &[Scored]) {
    for (t, s) in total.iter_mut().zip(sums) {
        *t = (t.0 + s.0, t.1 + s.1);
    }
}

/// Summed loss and correct predictions of logits ([rows, classes], before the bias `bo`).
fn score(logits: &mut [f32], bo: &[f32], labels: &[i64]) -> (f64, f64) {
    let (loss, correct) = pointwise::softmax_cross_entropy(logits, bo, labels, 1);
    (loss, correct as f64)
}
