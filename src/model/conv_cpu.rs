//! The conv highway net's training step on the CPU: the whole step in Rust over the tensors'
//! memory, as [`cpu`](super::cpu) does for the MLP.
//!
//! Autograd runs a conv highway layer as a convolution and about ten pointwise libtorch ops,
//! each a pass over a `[batch, 16 or 32, 28, 28]` tensor, and its backward as many again
//! (measured: a third of a step outside convolutions). Here:
//! - feature maps are stored channels-last with a one-pixel zero border ([`Grid`]), so a 3×3
//!   convolution is three matrix products (one per kernel row) that read the input's rows at
//!   a fixed shift: no im2col copies. The forward, ∂x and ∂W all run through `gemm`;
//! - a pixel's channels are a row, so a layer's pointwise work is the MLP's fused pass
//!   ([`pointwise::highway_forward`], [`pointwise::highway_backward`]) over rows of pixels;
//! - max pooling keeps its argmax for the backward;
//! - one shard of the batch per thread, gradients summed at the end; a step allocates nothing.
//!
//! The maths is `Model::conv_forward`'s; `tests/suite/model.rs` checks the gradients and a
//! 30-step trajectory against autograd.

use tch::{Kind, Tensor};

use super::cpu::{host, in_shards, matmul, rows, shard_sizes, slice_of, sum_into, tr, Mat};
use super::pointwise;
use super::{Activation, Family, Model};

/// A map's geometry: `images` of `h × w` pixels stored with a one-pixel zero border, channels
/// last ([images, h + 2, w + 2, channels]), between `guard` zero pixels before and after. The
/// 3×3 neighbourhood of every stored pixel then lies in the buffer, and a convolution's output
/// at stored pixel q reads its input at q plus a fixed shift per kernel tap.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Grid {
    images: usize,
    h: usize,
    w: usize,
}

impl Grid {
    /// Stored pixels per row of an image.
    fn row(self) -> usize {
        self.w + 2
    }

    /// Stored pixels of all images, border included, guards not.
    fn pixels(self) -> usize {
        self.images * (self.h + 2) * self.row()
    }

    /// Zero pixels before and after the images: the reach of a 3×3 kernel (one row and one pixel).
    fn guard(self) -> usize {
        self.row() + 1
    }

    /// Floats of a map of `ch` channels.
    fn len(self, ch: usize) -> usize {
        (self.pixels() + 2 * self.guard()) * ch
    }

    /// The stored pixels (guards excluded) of a map of `ch` channels.
    fn inner(self, map: &[f32], ch: usize) -> &[f32] {
        &map[self.guard() * ch..(self.guard() + self.pixels()) * ch]
    }

    fn inner_mut(self, map: &mut [f32], ch: usize) -> &mut [f32] {
        &mut map[self.guard() * ch..(self.guard() + self.pixels()) * ch]
    }

    /// The pixel index (guard included) of image `i`'s pixel (y, x).
    fn at(self, i: usize, y: usize, x: usize) -> usize {
        self.guard() + (i * (self.h + 2) + y + 1) * self.row() + x + 1
    }

    /// The grid after 2×2 max pooling with stride 2.
    fn pooled(self) -> Grid {
        Grid { h: self.h / 2, w: self.w / 2, ..self }
    }

    /// Zeroes the border pixels of a map of `ch` channels (convolutions write junk there).
    fn clear_border(self, map: &mut [f32], ch: usize) {
        let row = self.row() * ch;
        for i in 0..self.images {
            let top = (self.guard() + i * (self.h + 2) * self.row()) * ch;
            map[top..top + row].fill(0.0);
            let bottom = top + (self.h + 1) * row;
            map[bottom..bottom + row].fill(0.0);
            // the last pixel of a row and the first of the next are neighbours in memory
            for y in 0..=self.h {
                let end = top + y * row + (self.w + 1) * ch;
                map[end..end + 2 * ch].fill(0.0);
            }
        }
    }
}

/// Stored pixels a convolution handles at a time: its output rows stay in L2 across the three
/// kernel rows' products (and, in the forward, through the pointwise pass after them).
const BLOCK: usize = 1024;

/// `z ([stored pixels, co]) = conv3x3(x)` for `x` a map of `ci` channels, over the stored
/// pixels from `first` on (as many as `z` holds): per kernel row kh, one product of x's rows
/// from stored pixel q + (kh − 1)·row − 1 on (3·ci wide: the taps kw = 0, 1, 2) with `wf`'s
/// [3·ci, co] block kh.
fn conv(z: &mut [f32], x: &[f32], g: Grid, first: usize, (ci, co): (usize, usize), wf: &[f32]) {
    for kh in 0..3 {
        // guard + (kh − 1)·row − 1 = kh·row
        let lhs = Mat { data: &x[(kh * g.row() + first) * ci..], rs: ci, cs: 1 };
        matmul(z, (z.len() / co, co, 3 * ci), kh > 0, lhs, rows(&wf[kh * 3 * ci * co..], co));
    }
}

/// `dx ([stored pixels, ci]) += ∂x` of [`conv`] over the stored pixels from `first` on (as
/// many as `dx` holds), from `dz` (a map of `co` channels, zero outside the images' pixels):
/// tap (kh, kw) sends dz at q to x at q + (kh − 1)·row + kw − 1, so dx at q reads dz from
/// q − (kh − 1)·row − 1 on, against `wb`'s [3·co, ci] block kh (kw reversed).
fn conv_input_grad(dx: &mut [f32], dz: &[f32], g: Grid, first: usize, (ci, co): (usize, usize), wb: &[f32]) {
    for kh in 0..3 {
        // guard − (kh − 1)·row − 1 = (2 − kh)·row
        let lhs = Mat { data: &dz[((2 - kh) * g.row() + first) * co..], rs: co, cs: 1 };
        matmul(dx, (dx.len() / ci, ci, 3 * co), true, lhs, rows(&wb[kh * 3 * co * ci..], ci));
    }
}

/// ∂W of [`conv`] over the stored pixels from `first` on (as many as `dz` ([pixels, co]) holds,
/// zero outside the images' pixels) with input `x`, into `acc` ([3][(kw, c), o]): written if
/// `fresh`, else added. [`lay_out`] turns it into [co, ci, 3, 3].
fn conv_weight_grad(acc: &mut [f32], dz: &[f32], x: &[f32], g: Grid, first: usize, (ci, co): (usize, usize), fresh: bool) {
    for (kh, acc) in acc.chunks_exact_mut(3 * ci * co).take(3).enumerate() {
        // [(kw, c), o] = Σ_q x[q + (kh − 1)·row + kw − 1, c] · dz[q, o]
        let xt = Mat { data: &x[(kh * g.row() + first) * ci..], rs: 1, cs: ci };
        matmul(acc, (3 * ci, co, dz.len() / co), !fresh, xt, rows(dz, co));
    }
}

/// [`conv_weight_grad`]'s sums as the kernel's gradient [co, ci, 3, 3].
fn lay_out(acc: &[f32], dw: &mut [f32], (ci, co): (usize, usize)) {
    for kh in 0..3 {
        for kw in 0..3 {
            for c in 0..ci {
                for o in 0..co {
                    dw[(o * ci + c) * 9 + kh * 3 + kw] = acc[((kh * 3 + kw) * ci + c) * co + o];
                }
            }
        }
    }
}

/// A 3×3 kernel [co, ci, 3, 3] packed for [`conv`] ([3][(kw, c)][o]) and, with `backward`,
/// for [`conv_input_grad`] after it ([3][(2 − kw, o)][c]).
fn pack(w: &[f32], (ci, co): (usize, usize), backward: bool, out: &mut Vec<f32>) {
    out.clear();
    for kh in 0..3 {
        for kw in 0..3 {
            for c in 0..ci {
                out.extend((0..co).map(|o| w[(o * ci + c) * 9 + kh * 3 + kw]));
            }
        }
    }
    if backward {
        for kh in 0..3 {
            for kw in (0..3).rev() {
                for o in 0..co {
                    out.extend((0..ci).map(|c| w[(o * ci + c) * 9 + kh * 3 + kw]));
                }
            }
        }
    }
}

/// 2×2 max pooling with stride 2 of a map of `ch` channels on grid `g` into `out` (on
/// `g.pooled()`), keeping which of the four won in `arg` (libtorch's rule: the first maximum
/// in row order; NaN wins).
fn pool(x: &[f32], g: Grid, ch: usize, out: &mut [f32], arg: &mut [u8]) {
    let p = g.pooled();
    let mut k = 0;
    for i in 0..p.images {
        for y in 0..p.h {
            for xx in 0..p.w {
                let q = g.at(i, 2 * y, 2 * xx);
                let taps = [q, q + 1, q + g.row(), q + g.row() + 1];
                let dst = p.at(i, y, xx) * ch;
                for c in 0..ch {
                    let (mut best, mut m) = (0u8, x[q * ch + c]);
                    for (t, &tap) in taps.iter().enumerate().skip(1) {
                        let v = x[tap * ch + c];
                        if v > m || v.is_nan() {
                            (best, m) = (t as u8, v);
                        }
                    }
                    out[dst + c] = m;
                    arg[k] = best;
                    k += 1;
                }
            }
        }
    }
}

/// The backward of [`pool`]: `dx` (grid `g`, zeroed here) gets `dy` (grid `g.pooled()`) at
/// each window's winner.
fn unpool(dy: &[f32], g: Grid, ch: usize, dx: &mut [f32], arg: &[u8]) {
    dx.fill(0.0);
    let p = g.pooled();
    let mut k = 0;
    for i in 0..p.images {
        for y in 0..p.h {
            for xx in 0..p.w {
                let q = g.at(i, 2 * y, 2 * xx);
                let src = p.at(i, y, xx) * ch;
                for c in 0..ch {
                    let t = arg[k] as usize;
                    dx[(q + (t >> 1) * g.row() + (t & 1)) * ch + c] = dy[src + c];
                    k += 1;
                }
            }
        }
    }
}

/// Where the conv net's parameters are in the flat buffer, and its shape.
#[derive(Clone)]
struct Layout {
    /// image channels, height, width
    image: [usize; 3],
    width: usize,
    classes: usize,
    /// [width, channels, 3, 3], [width]
    w0: usize,
    b0: usize,
    /// per highway layer: [2·width, width, 3, 3] (block, then gate) and [2·width]
    wc: Vec<usize>,
    bc: Vec<usize>,
    /// per highway layer: whether 2×2 max pooling comes before it (a new stage)
    pool: Vec<bool>,
    /// [classes, width], [classes]
    wo: usize,
    bo: usize,
    len: usize,
}

impl Layout {
    /// The layout of `model` if this step can run it: a conv highway net with contiguous f32
    /// parameters on the CPU.
    fn of(model: &Model) -> Option<Layout> {
        let (a, f) = (&model.arch, &model.flat);
        if !(a.family == Family::Conv && f.device() == tch::Device::Cpu && f.kind() == Kind::Float && f.is_contiguous()) {
            return None;
        }
        let at = |name: &str| model.spec(name).map(|s| s.offset);
        let highway = 1..a.depth;
        let image = a.image_shape?;
        let pool = highway.clone().map(|l| l > 1 && a.stage_of(l) != a.stage_of(l - 1)).collect();
        let width = a.width;
        // H and T of a layer are adjacent: [2·width, width, 3, 3] and [2·width]
        let (wc, bc): (Vec<usize>, Vec<usize>) = highway
            .map(|l| Some((at(&format!("layers.{l}.block.weight"))?, at(&format!("layers.{l}.block.bias"))?)))
            .collect::<Option<_>>()?;
        Some(Layout {
            image,
            width,
            classes: a.classes,
            w0: at("layers.0.block.weight")?,
            b0: at("layers.0.block.bias")?,
            wc,
            bc,
            pool,
            wo: at("output.weight")?,
            bo: at("output.bias")?,
            len: model.num_params(),
        })
    }

    fn input(&self) -> usize {
        self.image.iter().product()
    }

    /// The grid of every highway layer for `images` images (and, first, of the plain layer).
    fn grids(&self, images: usize) -> Vec<Grid> {
        let mut g = Grid { images, h: self.image[1], w: self.image[2] };
        let mut out = vec![g];
        for &p in &self.pool {
            if p {
                g = g.pooled();
            }
            out.push(g);
        }
        out
    }
}

/// The kernels of a step, packed once for all shards (`pack`): the plain layer's forward
/// kernel, then each highway layer's forward and backward kernels.
struct Kernels {
    plain: Vec<f32>,
    highway: Vec<Vec<f32>>,
}

impl Kernels {
    fn new(lay: &Layout) -> Kernels {
        Kernels { plain: Vec::new(), highway: vec![Vec::new(); lay.wc.len()] }
    }

    /// Packs the kernels of parameters `p`.
    fn pack(&mut self, lay: &Layout, p: &[f32]) {
        let (w, c) = (lay.width, lay.image[0]);
        pack(&p[lay.w0..lay.w0 + 9 * w * c], (c, w), false, &mut self.plain);
        for (&wc, k) in lay.wc.iter().zip(&mut self.highway) {
            pack(&p[wc..wc + 18 * w * w], (w, 2 * w), true, k);
        }
    }
}

/// What every shard reads in a step.
#[derive(Clone, Copy)]
struct Net<'a> {
    /// the flat parameters
    p: &'a [f32],
    lay: &'a Layout,
    k: &'a Kernels,
    a: Activation,
    /// a highway layer whose gates are closed (T := 0: it copies its input)
    lesion: Option<usize>,
}

/// One thread's images of the batch, what its forward keeps for its backward, and its gradient.
struct Shard {
    images: usize,
    /// grids[0]: the input and the plain layer; grids[l]: highway layer l
    grids: Vec<Grid>,
    /// the images as a map of their channels
    input: Vec<f32>,
    /// maps[0]: the plain layer's output; maps[l]: highway layer l's output (width channels)
    maps: Vec<Vec<f32>>,
    /// per highway layer that pools first: its pooled input and the winners
    pooled: Vec<Option<(Vec<f32>, Vec<u8>)>>,
    /// per highway layer: H | T, [stored pixels, 2·width]
    ht: Vec<Vec<f32>>,
    /// [images, width]: the last map's spatial means, and their gradient
    feat: Vec<f32>,
    dfeat: Vec<f32>,
    /// [images, classes]: logits, then their gradient
    logits: Vec<f32>,
    /// per grid: ∂L/∂y (width channels) and a layer's ∂L/∂z (2·width channels)
    dy: Vec<Vec<f32>>,
    dz: Vec<Vec<f32>>,
    /// [3][3·width, 2·width]: a kernel's gradient before it is laid out (`conv_weight_grad`)
    dw: Vec<f32>,
    grad: Vec<f32>,
    loss: f64,
    correct: i64,
}

impl Shard {
    /// Buffers for `images` images; `training` adds the backward's.
    fn new(lay: &Layout, images: usize, training: bool) -> Shard {
        let (w, grids) = (lay.width, lay.grids(images));
        let highway = &grids[1..];
        let per_grid = |ch: usize| grids.iter().map(|g| vec![0.0; g.len(ch)]).collect::<Vec<_>>();
        let sized = |len: usize| if training { vec![0.0; len] } else { Vec::new() };
        Shard {
            images,
            input: vec![0.0; grids[0].len(lay.image[0])],
            maps: per_grid(w),
            pooled: highway
                .iter()
                .zip(&lay.pool)
                .map(|(g, &p)| p.then(|| (vec![0.0; g.len(w)], vec![0u8; g.images * g.h * g.w * w])))
                .collect(),
            ht: highway.iter().map(|g| vec![0.0; g.pixels() * 2 * w]).collect(),
            feat: vec![0.0; images * w],
            dfeat: sized(images * w),
            logits: vec![0.0; images * lay.classes],
            dy: if training { per_grid(w) } else { Vec::new() },
            dz: if training { per_grid(2 * w) } else { Vec::new() },
            dw: sized(9 * w.max(lay.image[0]) * 2 * w),
            grad: sized(lay.len),
            loss: 0.0,
            correct: 0,
            grids,
        }
    }

    /// Forward, loss and backward of this shard's images `x` ([images, c·h·w]) and `labels`.
    fn run(&mut self, net: Net, x: &[f32], labels: &[i64], batch: usize) {
        let (p, lay) = (net.p, net.lay);
        self.forward(net, x);
        let (loss, correct) = pointwise::softmax_cross_entropy(&mut self.logits, &p[lay.bo..lay.bo + lay.classes], labels, batch);
        (self.loss, self.correct) = (loss, correct);
        self.backward(net);
    }

    fn forward(&mut self, net: Net, x: &[f32]) {
        let Net { p, lay, k, a, lesion } = net;
        let ([c, h, wd], w) = (lay.image, lay.width);
        let g = self.grids[0];
        // the images [c, h, w] into the input map, channels last
        for i in 0..self.images {
            for y in 0..h {
                for xx in 0..wd {
                    let q = g.at(i, y, xx) * c;
                    for ch in 0..c {
                        self.input[q + ch] = x[((i * c + ch) * h + y) * wd + xx];
                    }
                }
            }
        }
        // the plain layer: act(conv(x) + b0)  [stored pixels, width]
        let out = g.inner_mut(&mut self.maps[0], w);
        for (b, out) in out.chunks_mut(BLOCK * w).enumerate() {
            conv(out, &self.input, g, b * BLOCK, (c, w), &k.plain);
            pointwise::bias_act(out, &p[lay.b0..lay.b0 + w], a);
        }
        g.clear_border(&mut self.maps[0], w);
        for l in 1..self.grids.len() {
            let g = self.grids[l];
            let (before, after) = self.maps.split_at_mut(l);
            let x = match &mut self.pooled[l - 1] {
                Some((pooled, arg)) => {
                    pool(&before[l - 1], self.grids[l - 1], w, pooled, arg);
                    &*pooled
                }
                None => &before[l - 1],
            };
            if lesion == Some(l) {
                after[0].copy_from_slice(x); // the same grid
                continue;
            }
            let b = &p[lay.bc[l - 1]..lay.bc[l - 1] + 2 * w];
            let blocks = self.ht[l - 1].chunks_mut(BLOCK * 2 * w).zip(g.inner(x, w).chunks(BLOCK * w));
            for (i, ((ht, xb), y)) in blocks.zip(g.inner_mut(&mut after[0], w).chunks_mut(BLOCK * w)).enumerate() {
                conv(ht, x, g, i * BLOCK, (w, 2 * w), &k.highway[l - 1]);
                pointwise::highway_forward(ht, xb, y, b, a);
            }
            g.clear_border(&mut after[0], w);
        }
        // global average pooling, then the classifier: [images, classes]
        let (g, last) = (self.grids[self.grids.len() - 1], &self.maps[self.maps.len() - 1]);
        let scale = 1.0 / (g.h * g.w) as f32;
        self.feat.fill(0.0);
        for (i, feat) in self.feat.chunks_exact_mut(w).enumerate() {
            for y in 0..g.h {
                let q = g.at(i, y, 0) * w;
                for px in last[q..q + g.w * w].chunks_exact(w) {
                    for (f, &v) in feat.iter_mut().zip(px) {
                        *f += v * scale;
                    }
                }
            }
        }
        let cl = lay.classes;
        matmul(&mut self.logits, (self.images, cl, w), false, rows(&self.feat, w), tr(&p[lay.wo..], w));
    }

    fn backward(&mut self, net: Net) {
        let Net { p, lay, a, .. } = net;
        let (n, w, cl) = (self.images, lay.width, lay.classes);
        let gr = &mut self.grad;
        matmul(&mut gr[lay.wo..lay.wo + cl * w], (cl, w, n), false, tr(&self.logits, cl), rows(&self.feat, w));
        pointwise::column_sums(&self.logits, &mut gr[lay.bo..lay.bo + cl]);
        // ∂ of the spatial means [images, width]
        matmul(&mut self.dfeat, (n, w, cl), false, rows(&self.logits, cl), rows(&p[lay.wo..], w));
        // the spatial mean's gradient, spread over the last map's pixels
        let last = self.grids.len() - 1;
        let g = self.grids[last];
        let scale = 1.0 / (g.h * g.w) as f32;
        let dy = &mut self.dy[last];
        dy.fill(0.0);
        for (i, df) in self.dfeat.chunks_exact(w).enumerate() {
            for y in 0..g.h {
                let q = g.at(i, y, 0) * w;
                for px in dy[q..q + g.w * w].chunks_exact_mut(w) {
                    for (d, &f) in px.iter_mut().zip(df) {
                        *d = f * scale;
                    }
                }
            }
        }
        for l in (1..self.grids.len()).rev() {
            self.layer_backward(net, l);
            // through the pooling (or on to the layer before, on the same grid)
            let (before, after) = self.dy.split_at_mut(l);
            match &self.pooled[l - 1] {
                Some((_, arg)) => unpool(&after[0], self.grids[l - 1], w, &mut before[l - 1], arg),
                // same grid: the buffers trade places (this layer's is rewritten before it is read again)
                None => std::mem::swap(&mut before[l - 1], &mut after[0]),
            }
        }
        // the plain layer: ∂ of act, then ∂W0 (the images need no gradient)
        let (g, c) = (self.grids[0], lay.image[0]);
        pointwise::act_backward(g.inner_mut(&mut self.dy[0], w), g.inner(&self.maps[0], w), &mut self.grad[lay.b0..lay.b0 + w], a);
        conv_weight_grad(&mut self.dw, g.inner(&self.dy[0], w), &self.input, g, 0, (c, w), true);
        lay_out(&self.dw, &mut self.grad[lay.w0..lay.w0 + 9 * w * c], (c, w));
    }

    /// Highway layer `l`'s backward: `dy[l]` comes in as ∂L/∂y and leaves as ∂L/∂x (border
    /// zero); ∂W and ∂b go into the gradient. Block by block, so that a block's ∂z is still
    /// in L2 for its ∂W and ∂x products.
    fn layer_backward(&mut self, net: Net, l: usize) {
        let (g, w, a) = (self.grids[l], net.lay.width, net.a);
        let x = match &self.pooled[l - 1] {
            Some((pooled, _)) => pooled,
            None => &self.maps[l - 1],
        };
        let (dy, dz, ht, acc) = (&mut self.dy[l], &mut self.dz[l], &self.ht[l - 1], &mut self.dw);
        let (wc, bc, wb) = (net.lay.wc[l - 1], net.lay.bc[l - 1], &net.k.highway[l - 1][9 * w * 2 * w..]);
        let db = &mut self.grad[bc..bc + 2 * w];
        let (guard, n) = (g.guard(), g.pixels());
        let blocks = n.div_ceil(BLOCK);
        let span = |b: usize| b * BLOCK..((b + 1) * BLOCK).min(n);
        db.fill(0.0);
        for b in 0..=blocks {
            if b < blocks {
                let (r, q) = (span(b), guard + span(b).start..guard + span(b).end);
                let dzb = &mut dz[q.start * 2 * w..q.end * 2 * w];
                let (dyb, xb) = (&mut dy[q.start * w..q.end * w], &x[q.start * w..q.end * w]);
                pointwise::highway_backward(dyb, dzb, &ht[r.start * 2 * w..r.end * 2 * w], xb, db, a);
                conv_weight_grad(acc, dzb, x, g, r.start, (w, 2 * w), b == 0);
            }
            if b > 0 {
                // block b − 1's ∂x reads ∂z up to a row and a pixel past its end: block b's
                let q = guard + span(b - 1).start..guard + span(b - 1).end;
                conv_input_grad(&mut dy[q.start * w..q.end * w], dz, g, span(b - 1).start, (w, 2 * w), wb);
            }
        }
        lay_out(acc, &mut self.grad[wc..wc + 18 * w * w], (w, 2 * w));
        g.clear_border(dy, w);
    }
}

/// The CPU training step of one conv highway net, with its buffers.
pub struct Step {
    layout: Layout,
    activation: Activation,
    threads: usize,
    kernels: Kernels,
    shards: Vec<Shard>,
}

impl Step {
    /// The CPU step for `model` on `threads` threads, if it can run it: a conv highway net with
    /// contiguous f32 parameters on the CPU. Like [`cpu::Step`](super::cpu::Step), it runs its
    /// own threads: keep libtorch's intra-op pool at one thread while stepping.
    pub fn new(model: &Model, threads: usize) -> Option<Step> {
        let layout = Layout::of(model)?;
        let kernels = Kernels::new(&layout);
        Some(Step { layout, activation: model.arch.activation, threads: threads.max(1), kernels, shards: Vec::new() })
    }

    /// One step's loss and gradient on `x` ([batch, c·h·w]) and `y` ([batch]): writes the
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
        let lay = &self.layout;
        assert!(x.size() == [batch as i64, lay.input() as i64] && y.size() == [batch as i64], "batch shapes");
        assert!(model.flat.numel() == lay.len);
        let sizes = shard_sizes(self.threads, batch);
        if self.shards.iter().map(|s| s.images).ne(sizes.iter().copied()) {
            self.shards = sizes.into_iter().map(|n| Shard::new(lay, n, true)).collect();
        }
        let ((xt, xn), (yt, yn)) = (host::<f32>(x), host::<i64>(y));
        // SAFETY: contiguous CPU tensors of these lengths (checked above, in `host` and in
        // `Layout::of`); the step only reads `flat`, `x` and `y`.
        let (p, xs, ys) = unsafe { (slice_of::<f32>(&model.flat, lay.len), slice_of::<f32>(&xt, xn), slice_of::<i64>(&yt, yn)) };
        self.kernels.pack(lay, p);
        let net = Net { p, lay, k: &self.kernels, a: self.activation, lesion: None };
        in_shards(&mut self.shards, |s| s.images, (xs, lay.input()), ys, |shard, x, y| shard.run(net, x, y, batch));
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

/// Whether this module's step and [`evaluate`] can run `model` (a conv highway net with
/// contiguous f32 parameters on the CPU).
pub fn runs(model: &Model) -> bool {
    Layout::of(model).is_some()
}

/// Images a thread takes at a time in [`evaluate`].
const EVAL_IMAGES: usize = 64;

/// Mean cross-entropy and accuracy of a conv highway net over a whole split (`x` [n, c·h·w],
/// `y` [n]) by the training step's forward on `threads` threads, `lesion` closing one layer's
/// gates; None if this module cannot run the model (see [`Step::new`]).
pub fn evaluate(model: &Model, x: &Tensor, y: &Tensor, lesion: Option<usize>, threads: usize) -> Option<(f64, f64)> {
    let lay = Layout::of(model)?;
    let n = x.size()[0] as usize;
    if n == 0 || x.size() != [n as i64, lay.input() as i64] || y.size() != [n as i64] {
        return None;
    }
    let ((xt, xn), (yt, yn)) = (host::<f32>(x), host::<i64>(y));
    // SAFETY: contiguous CPU tensors of these lengths (checked above, in `host` and in
    // `Layout::of`), only read here.
    let (p, xs, ys) = unsafe { (slice_of::<f32>(&model.flat, lay.len), slice_of::<f32>(&xt, xn), slice_of::<i64>(&yt, yn)) };
    let mut kernels = Kernels::new(&lay);
    kernels.pack(&lay, p);
    let net = Net { p, lay: &lay, k: &kernels, a: model.arch.activation, lesion };
    let bo = &p[lay.bo..lay.bo + lay.classes];
    let (input, step) = (lay.input(), threads.max(1) * EVAL_IMAGES);
    let (mut shards, mut loss, mut correct) = (Vec::<Shard>::new(), 0f64, 0i64);
    for start in (0..n).step_by(step) {
        let len = step.min(n - start);
        let sizes = shard_sizes(threads, len);
        if shards.iter().map(|s| s.images).ne(sizes.iter().copied()) {
            shards = sizes.into_iter().map(|k| Shard::new(&lay, k, false)).collect();
        }
        let (x, y) = (&xs[start * input..(start + len) * input], &ys[start..start + len]);
        in_shards(
            &mut shards,
            |s| s.images,
            (x, input),
            y,
            |shard, x, y| {
                shard.forward(net, x);
                (shard.loss, shard.correct) = pointwise::softmax_cross_entropy(&mut shard.logits, bo, y, 1);
            },
        );
        loss += shards.iter().map(|s| s.loss).sum::<f64>();
        correct += shards.iter().map(|s| s.correct).sum::<i64>();
    }
    Some((loss / n as f64, correct as f64 / n as f64))
}
