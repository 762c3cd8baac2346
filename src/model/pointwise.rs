//! The pointwise work of a highway layer, fused into one pass over rows of plain `f32` memory
//! (the CPU fast path, [`super::cpu`]).
//!
//! Each function is written once as an `#[inline(always)]` body of branch-free loops, and
//! compiled three times: for the baseline target and, chosen at run time, for AVX2 + FMA and
//! for AVX-512, where the loops vectorise. The loops work on fixed-size lanes (all loads, then
//! the arithmetic, then all stores) so that the compiler need not prove slices apart. `exp` is
//! a polynomial (Cephes' `expf`, within 2 ulp) because the library's is a scalar call;
//! `sigmoid` and `tanh` are built on it. The hottest loop, [`highway_forward`], also has an
//! AVX-512 version written with intrinsics.

use crate::arch::Activation;

/// e^x for x in f32's range (clamped to [−87, 88] first), to about 2 ulp.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2; ln 2 split in two for r.
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = n.mul_add(2.121_944_4e-4, n.mul_add(-0.693_359_4, x));
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_5e-1)
        .mul_add(r, 0.5);
    let p = p.mul_add(r * r, r) + 1.0;
    // 2^n from the bits of n + 127 + 2^23, whose low mantissa bits are n + 127 (in 1..=254)
    p * f32::from_bits((n + 8_388_735.0).to_bits() << 23)
}

/// 1 / (1 + e^−z).
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// tanh z = 2·sigmoid(2z) − 1.
#[inline(always)]
pub fn tanh(z: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * z)) - 1.0
}

/// An activation as a type, so that each loop is compiled for one (no branch inside).
trait Act {
    fn act(z: f32) -> f32;
    /// act'(z) written with act's output.
    fn grad(out: f32) -> f32;
}

struct Tanh;
struct Relu;

impl Act for Tanh {
    #[inline(always)]
    fn act(z: f32) -> f32 {
        tanh(z)
    }
    #[inline(always)]
    fn grad(out: f32) -> f32 {
        1.0 - out * out
    }
}

impl Act for Relu {
    #[inline(always)]
    fn act(z: f32) -> f32 {
        // not `max`, which would pass a NaN off as 0
        if z < 0.0 {
            0.0
        } else {
            z
        }
    }
    #[inline(always)]
    fn grad(out: f32) -> f32 {
        if out > 0.0 {
            1.0
        } else {
            0.0
        }
    }
}

/// Calls `$f::<A>(args)` for the activation `$a`.
macro_rules! by_act {
    ($a:expr, $f:ident($($arg:expr),*)) => {
        match $a {
            Activation::Tanh => $f::<Tanh>($($arg),*),
            Activation::Relu => $f::<Relu>($($arg),*),
        }
    };
}

/// Compiles `$body` (an `#[inline(always)]` fn) for AVX2 + FMA and AVX-512 too, and picks at
/// run time. (Closures such as `array::from_fn`'s are not inlined across the feature
/// boundary: keep the bodies to plain loops.)
macro_rules! multiversion {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features `avx512` was compiled for (avx512f implies avx2 and fma).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// `z ← act(z + b)` over rows of width `b.len()`.
    pub fn bias_act(z: &mut [f32], b: &[f32], a: Activation) => bias_act_body
}

#[inline(always)]
fn bias_act_body(z: &mut [f32], b: &[f32], a: Activation) {
    by_act!(a, bias_act_rows(z, b))
}

#[inline(always)]
fn bias_act_rows<A: Act>(z: &mut [f32], b: &[f32]) {
    for row in z.chunks_exact_mut(b.len()) {
        for (v, &bias) in row.iter_mut().zip(b) {
            *v = A::act(*v + bias);
        }
    }
}

/// A highway layer's forward after its matrix product. Rows of `ht` ([rows, 2w]) hold
/// `x·W_Hᵀ | x·W_Tᵀ` and become `H | T`; `y = x + T·(H − x)` ([rows, w]). `b` is [2w].
pub fn highway_forward(ht: &mut [f32], x: &[f32], y: &mut [f32], b: &[f32], a: Activation) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::highway_forward(ht, x, y, b, a) };
    }
    highway_forward_auto(ht, x, y, b, a)
}

multiversion! {
    /// [`highway_forward`] by the compiler's vectorisation.
    fn highway_forward_auto(ht: &mut [f32], x: &[f32], y: &mut [f32], b: &[f32], a: Activation) => highway_forward_body
}

/// The forward pass's hottest loop written with AVX-512 intrinsics: masked loads and stores
/// for the last columns of a row (no scalar tail), and `rcp14` with a Newton step for the
/// divisions of `sigmoid` and `tanh`.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Activation;

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    /// e^x, as [`super::exp`].
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(splat(88.0), _mm512_max_ps(splat(-87.0), x)); // x second: NaN stays NaN
        let n = _mm512_roundscale_ps::<0b1000>(_mm512_mul_ps(x, splat(std::f32::consts::LOG2_E))); // nearest
        let r = _mm512_fnmadd_ps(n, splat(-2.121_944_4e-4), _mm512_fnmadd_ps(n, splat(0.693_359_4), x));
        let mut p = splat(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm512_fmadd_ps(p, r, splat(c));
        }
        let p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), splat(1.0));
        _mm512_scalef_ps(p, n)
    }

    /// 1 / d to full f32 precision: `rcp14` and one Newton step.
    #[inline(always)]
    unsafe fn recip(d: __m512) -> __m512 {
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, splat(2.0)))
    }

    #[inline(always)]
    unsafe fn sigmoid(z: __m512) -> __m512 {
        recip(_mm512_add_ps(splat(1.0), exp(_mm512_sub_ps(_mm512_setzero_ps(), z))))
    }

    #[inline(always)]
    unsafe fn tanh(z: __m512) -> __m512 {
        let s = recip(_mm512_add_ps(splat(1.0), exp(_mm512_mul_ps(z, splat(-2.0)))));
        _mm512_fmsub_ps(s, splat(2.0), splat(1.0))
    }

    /// [`super::highway_forward`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn highway_forward(ht: &mut [f32], x: &[f32], y: &mut [f32], b: &[f32], a: Activation) {
        let w = b.len() / 2;
        let rows = (ht.len() / (2 * w)).min(x.len() / w).min(y.len() / w);
        let (ht, x, y, b) = (ht.as_mut_ptr(), x.as_ptr(), y.as_mut_ptr(), b.as_ptr());
        for row in 0..rows {
            let (h, x, y) = (ht.add(row * 2 * w), x.add(row * w), y.add(row * w));
            let t = h.add(w);
            for j in (0..w).step_by(16) {
                // lanes past the row's end are neither read nor written
                let m: __mmask16 = if w - j >= 16 { !0 } else { (1u16 << (w - j)) - 1 };
                let zh = _mm512_add_ps(_mm512_maskz_loadu_ps(m, h.add(j)), _mm512_maskz_loadu_ps(m, b.add(j)));
                let zt = _mm512_add_ps(_mm512_maskz_loadu_ps(m, t.add(j)), _mm512_maskz_loadu_ps(m, b.add(w + j)));
                let hv = match a {
                    Activation::Tanh => tanh(zh),
                    Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), zh), // zh second: NaN stays NaN
                };
                let tv = sigmoid(zt);
                let xv = _mm512_maskz_loadu_ps(m, x.add(j));
                _mm512_mask_storeu_ps(h.add(j), m, hv);
                _mm512_mask_storeu_ps(t.add(j), m, tv);
                _mm512_mask_storeu_ps(y.add(j), m, _mm512_fmadd_ps(tv, _mm512_sub_ps(hv, xv), xv));
            }
        }
    }
}

#[inline(always)]
fn highway_forward_body(ht: &mut [f32], x: &[f32], y: &mut [f32], b: &[f32], a: Activation) {
    by_act!(a, highway_forward_rows(ht, x, y, b))
}

#[inline(always)]
fn highway_forward_rows<A: Act>(ht: &mut [f32], x: &[f32], y: &mut [f32], b: &[f32]) {
    let w = b.len() / 2;
    let (bh, bt) = b.split_at(w);
    for ((ht, x), y) in ht.chunks_exact_mut(2 * w).zip(x.chunks_exact(w)).zip(y.chunks_exact_mut(w)) {
        let (h, t) = ht.split_at_mut(w);
        let mut j = 0;
        while j + LANES <= w {
            highway_forward_lanes::<A, LANES>(&mut h[j..], &mut t[j..], &x[j..], &mut y[j..], &bh[j..], &bt[j..]);
            j += LANES;
        }
        while j < w {
            highway_forward_lanes::<A, 1>(&mut h[j..], &mut t[j..], &x[j..], &mut y[j..], &bh[j..], &bt[j..]);
            j += 1;
        }
    }
}

/// The first `N` columns: all loads, then the arithmetic, then all stores (so that the
/// compiler need not prove the slices apart to vectorise).
#[inline(always)]
fn highway_forward_lanes<A: Act, const N: usize>(h: &mut [f32], t: &mut [f32], x: &[f32], y: &mut [f32], bh: &[f32], bt: &[f32]) {
    let (zh, zt, xv) = (load::<N>(h), load::<N>(t), load::<N>(x));
    let (bh, bt) = (load::<N>(bh), load::<N>(bt));
    let (mut hv, mut tv, mut yv) = ([0f32; N], [0f32; N], [0f32; N]);
    for k in 0..N {
        hv[k] = A::act(zh[k] + bh[k]);
        tv[k] = sigmoid(zt[k] + bt[k]);
        yv[k] = xv[k] + tv[k] * (hv[k] - xv[k]);
    }
    h[..N].copy_from_slice(&hv);
    t[..N].copy_from_slice(&tv);
    y[..N].copy_from_slice(&yv);
}

/// Lanes processed together by the pointwise loops (one AVX-512 register of f32).
const LANES: usize = 16;

#[inline(always)]
fn load<const N: usize>(s: &[f32]) -> [f32; N] {
    s[..N].try_into().expect("N lanes")
}

multiversion! {
    /// A highway layer's backward before its matrix products. `dy` ([rows, w]) comes in as
    /// ∂L/∂y and leaves as the carry part of ∂L/∂x, `(1 − T)·dy`; `dz` ([rows, 2w]) gets
    /// `dz_H | dz_T`; `db` ([2w]) accumulates their column sums. `ht` and `x` as saved.
    pub fn highway_backward(dy: &mut [f32], dz: &mut [f32], ht: &[f32], x: &[f32], db: &mut [f32], a: Activation) => highway_backward_body
}

#[inline(always)]
fn highway_backward_body(dy: &mut [f32], dz: &mut [f32], ht: &[f32], x: &[f32], db: &mut [f32], a: Activation) {
    by_act!(a, highway_backward_rows(dy, dz, ht, x, db))
}

#[inline(always)]
fn highway_backward_rows<A: Act>(dy: &mut [f32], dz: &mut [f32], ht: &[f32], x: &[f32], db: &mut [f32]) {
    let w = db.len() / 2;
    let (dbh, dbt) = db.split_at_mut(w);
    for (((g, dz), ht), x) in dy.chunks_exact_mut(w).zip(dz.chunks_exact_mut(2 * w)).zip(ht.chunks_exact(2 * w)).zip(x.chunks_exact(w)) {
        let (h, t) = ht.split_at(w);
        let (dzh, dzt) = dz.split_at_mut(w);
        let mut j = 0;
        while j + LANES <= w {
            highway_backward_lanes::<A, LANES>(
                &mut g[j..],
                &mut dzh[j..],
                &mut dzt[j..],
                [&h[j..], &t[j..], &x[j..]],
                &mut dbh[j..],
                &mut dbt[j..],
            );
            j += LANES;
        }
        while j < w {
            highway_backward_lanes::<A, 1>(
                &mut g[j..],
                &mut dzh[j..],
                &mut dzt[j..],
                [&h[j..], &t[j..], &x[j..]],
                &mut dbh[j..],
                &mut dbt[j..],
            );
            j += 1;
        }
    }
}

/// The first `N` columns of a row of [`highway_backward`], loads before stores.
#[inline(always)]
fn highway_backward_lanes<A: Act, const N: usize>(
    g: &mut [f32],
    dzh: &mut [f32],
    dzt: &mut [f32],
    [h, t, x]: [&[f32]; 3],
    dbh: &mut [f32],
    dbt: &mut [f32],
) {
    let (gv, hv, tv, xv) = (load::<N>(g), load::<N>(h), load::<N>(t), load::<N>(x));
    let (mut bh, mut bt) = (load::<N>(dbh), load::<N>(dbt));
    let (mut zh, mut zt, mut carry) = ([0f32; N], [0f32; N], [0f32; N]);
    for k in 0..N {
        let dh = gv[k] * tv[k];
        zh[k] = dh * A::grad(hv[k]);
        zt[k] = gv[k] * (hv[k] - xv[k]) * tv[k] * (1.0 - tv[k]);
        carry[k] = gv[k] - dh;
        bh[k] += zh[k];
        bt[k] += zt[k];
    }
    g[..N].copy_from_slice(&carry);
    dzh[..N].copy_from_slice(&zh);
    dzt[..N].copy_from_slice(&zt);
    dbh[..N].copy_from_slice(&bh);
    dbt[..N].copy_from_slice(&bt);
}

multiversion! {
    /// `g ← g·act'(out)` ([rows, w]), and the column sums of the result into `db` ([w]).
    pub fn act_backward(g: &mut [f32], out: &[f32], db: &mut [f32], a: Activation) => act_backward_body
}

#[inline(always)]
fn act_backward_body(g: &mut [f32], out: &[f32], db: &mut [f32], a: Activation) {
    by_act!(a, act_backward_rows(g, out, db))
}

#[inline(always)]
fn act_backward_rows<A: Act>(g: &mut [f32], out: &[f32], db: &mut [f32]) {
    db.fill(0.0);
    for (g, out) in g.chunks_exact_mut(db.len()).zip(out.chunks_exact(db.len())) {
        for ((g, &out), db) in g.iter_mut().zip(out).zip(db.iter_mut()) {
            *g *= A::grad(out);
            *db += *g;
        }
    }
}

/// Softmax cross-entropy over rows of `logits` ([rows, classes], before the bias `b`). The
/// logits become ∂L/∂logits of the mean loss over `batch` examples. Returns (summed loss,
/// correct predictions).
pub fn softmax_cross_entropy(logits: &mut [f32], b: &[f32], labels: &[i64], batch: usize) -> (f64, i64) {
    let (mut loss, mut correct) = (0f64, 0i64);
    let scale = 1.0 / batch as f32;
    for (z, &label) in logits.chunks_exact_mut(b.len()).zip(labels) {
        for (v, &bias) in z.iter_mut().zip(b) {
            *v += bias;
        }
        let (arg, max) = argmax(z);
        let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
        let label = label as usize;
        loss += (max + sum.ln() - z[label]) as f64;
        correct += (arg == label) as i64;
        for (j, v) in z.iter_mut().enumerate() {
            *v = ((*v - max).exp() / sum - (j == label) as u8 as f32) * scale;
        }
    }
    (loss, correct)
}

/// The index and value of `z`'s largest entry, by libtorch's rule: the first maximum, and
/// NaN wins.
pub fn argmax(z: &[f32]) -> (usize, f32) {
    let better = |v: f32, m: f32| v > m || (v.is_nan() && !m.is_nan());
    z.iter().enumerate().fold((0, f32::NEG_INFINITY), |(i, m), (j, &v)| if better(v, m) { (j, v) } else { (i, m) })
}

/// Column sums of rows of width `out.len()` into `out`.
pub fn column_sums(m: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

multiversion! {
    /// One highway layer's probe statistics over a block of `labels.len()` examples: from `ht`
    /// ([rows, 2w], H | T) adds T into `class_sum` ([classes, w]) by label; returns how many
    /// T > 0.5 and Σ |y − x| (`x`, `y`: the layer's input and output, [rows, w]).
    pub fn probe_layer(ht: &[f32], x: &[f32], y: &[f32], labels: &[i64], class_sum: &mut [f32]) -> (f64, f64) => probe_layer_body
}

#[inline(always)]
fn probe_layer_body(ht: &[f32], x: &[f32], y: &[f32], labels: &[i64], class_sum: &mut [f32]) -> (f64, f64) {
    let w = x.len() / labels.len().max(1);
    let mut open = [0f32; LANES];
    for (row, &label) in ht.chunks_exact(2 * w).zip(labels) {
        let t = &row[w..];
        let sum = &mut class_sum[label as usize * w..(label as usize + 1) * w];
        for (s, &v) in sum.iter_mut().zip(t) {
            *s += v;
        }
        lane_sums(&mut open, t, t, |v, _| if v > 0.5 { 1.0 } else { 0.0 });
    }
    let mut change = [0f32; LANES];
    lane_sums(&mut change, x, y, |a, b| (b - a).abs());
    let total = |v: [f32; LANES]| v.iter().map(|&v| v as f64).sum::<f64>();
    (total(open), total(change))
}

/// `acc[k] += f(a[i], b[i])` for every i, in lane k = i mod LANES: a sum the compiler can
/// vectorise (no single running sum).
#[inline(always)]
fn lane_sums(acc: &mut [f32; LANES], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    for (k, (&x, &y)) in ta.iter().zip(tb).enumerate() {
        acc[k] += f(x, y);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Deterministic values in [−6, 6].
    pub(in crate::model) fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 12_001) as f32 / 1_000.0 - 6.0
            })
            .collect()
    }

    /// libtorch's argmax: the first of equal maxima, and the first NaN over any number.
    #[test]
    fn argmax_takes_the_first_maximum_and_nan_wins() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), (1, 3.0));
        let (i, v) = argmax(&[1.0, f32::NAN, 5.0, f32::NAN]);
        assert!(i == 1 && v.is_nan(), "{i} {v}");
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), (0, f32::NEG_INFINITY));
    }

    #[test]
    fn exp_sigmoid_and_tanh_match_the_library() {
        for &x in &[-100.0f32, -87.5, -20.0, -1.0, -1e-3, 0.0, 1e-6, 0.3, 1.0, 5.5, 40.0, 88.0, 100.0] {
            let e = exp(x);
            let want = x.clamp(-87.0, 88.0).exp();
            assert!((e - want).abs() <= 4.0 * f32::EPSILON * want, "exp({x}) = {e}, not {want}");
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6, "sigmoid({x})");
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
        }
    }

    /// Every compiled version of the forward (the one this CPU picks, the baseline body)
    /// agrees, on widths with and without a partial last vector.
    #[test]
    fn every_version_of_the_forward_agrees() {
        for (w, rows) in [(50usize, 7usize), (16, 3), (7, 5), (33, 2)] {
            for a in [Activation::Tanh, Activation::Relu] {
                let (z, x, b) = (values(rows * 2 * w, 1), values(rows * w, 2), values(2 * w, 3));
                let (mut ht1, mut y1) = (z.clone(), vec![0.0; rows * w]);
                let (mut ht2, mut y2) = (z.clone(), vec![0.0; rows * w]);
                highway_forward(&mut ht1, &x, &mut y1, &b, a);
                highway_forward_body(&mut ht2, &x, &mut y2, &b, a);
                let close = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(u, v)| (u - v).abs() < 2e-6);
                assert!(close(&ht1, &ht2) && close(&y1, &y2), "{a:?}, width {w}");
                // and H, T, y are what they claim: act(z + b), sigmoid(z + b), x + T·(H − x)
                let (h, t) = (ht2[0], ht2[w]);
                let want_h = match a {
                    Activation::Tanh => (z[0] + b[0]).tanh(),
                    Activation::Relu => (z[0] + b[0]).max(0.0),
                };
                assert!((h - want_h).abs() < 1e-6 && (t - 1.0 / (1.0 + (-(z[w] + b[w])).exp())).abs() < 1e-6);
                assert!((y2[0] - (x[0] + t * (h - x[0]))).abs() < 1e-6);
            }
        }
    }
}
