//! A highway layer's whole forward as one AVX2 + FMA kernel: the matrix product and the
//! pointwise work (bias, H's activation, the gate sigmoid, the carry mix) in registers.
//!
//! The generic path ([`super::cpu`]) runs a layer as a `gemm` product into `H | T`
//! ([rows, 2·width]) and then a pointwise pass over it. Here, a tile of [`TILE`] rows and one
//! block of 8 units keep their H and T sums in 12 registers through the product, and leave as
//! `y = x + T·(H − x)`; the weights are packed once per layer so that the product reads them
//! in order, H's 8 beside T's 8 (see [`Packed`]). H | T is still written when asked (probes
//! sum T, traces show it).
//!
//! T's weights are packed times −log₂ e and, for tanh, H's times −2·log₂ e, so the product
//! gives σ's exponent of 2 (σ(z) = 1 / (1 + 2^u), u = −z·log₂ e; tanh(z) = 2·σ(2z) − 1): its
//! integer part is rounded, and 2^n built, by one add and a shift, the rest reduced by two
//! exact subtractions, and 2^r is a degree-5 minimax polynomial. Every step before the
//! polynomial is an add, off the FMA ports the product needs. Against computing e^−z from z,
//! a lesion of every layer took 10.28 s against 10.60 s (the `seconds` it reports, mean of ten
//! alternating pairs: 3 % faster; no error count changed; σ within 2.3e-7 relative either
//! way). σ's division is a true division (beside the product each one costs about a cycle of
//! FMA throughput, measured; `rcp` and a Newton step measured no faster and are 2 ulp off).
//! Runs where the CPU has AVX2 and FMA ([`Packed::new`] says None otherwise); where it has
//! AVX-512F too, whole tiles run through [`avx512`]'s 16-lane version (a row's H and T of a
//! block in one register: a lesion of every layer in 3.4–3.9 s against 5.4–5.8 s through the
//! product path, which had measured as fast as the 8-lane kernel there). Inference only:
//! in the training step (shards of 64 rows, weights repacked every step) it measured no faster
//! than `gemm`.

use super::Activation;

/// Rows of a tile: 6 rows × (H, T) = 12 accumulators, plus two weight vectors and a
/// broadcast input, fill 15 of the 16 AVX2 registers.
pub const TILE: usize = 6;
/// Rows that both versions' tiles divide (the 512-bit kernel's 12, two of the 8-lane's 6):
/// blocks of rows that are multiples of it leave none to the slower code for leftover rows.
pub const ROW_MULTIPLE: usize = 12;
/// Units of a block: one AVX2 register of f32.
const UNITS: usize = 8;
/// T's weights and bias are packed times −log₂ e, so that the product gives u = −z·log₂ e
/// and σ(z) = 1 / (1 + 2^u) needs no multiply to reach its exponent of 2.
const T_SCALE: f32 = -std::f32::consts::LOG2_E;
/// H's, for tanh, times −2·log₂ e: tanh(z) = 2·σ(2z) − 1 = 2 / (1 + 2^u) − 1.
const TANH_SCALE: f32 = -2.0 * std::f32::consts::LOG2_E;

/// Every highway layer's weights, packed for the kernel: per layer, per block of 8 units,
/// `[width + 1][16]`: row 0 the biases (H's 8, then T's 8), row k + 1 the weights of input k.
/// The units left after the blocks of 8 (see [`Tail`]) are a narrow block of 3 or 4,
/// `[width + 1][8]` (H's 4, then T's 4), or a paired block of 1 or 2, `[1 + ⌈width / 2⌉][8]`:
/// lanes (H of unit 0, 1, then T's) × (input 2p, 2p + 1) in row p + 1, the biases in the even
/// lanes of row 0. A paired block takes a quarter of a block's products (a width of 50 is 6
/// blocks and a paired one). Units and inputs past the width are zero. T's values are scaled by
/// [`T_SCALE`], tanh's H's by [`TANH_SCALE`].
pub struct Packed {
    width: usize,
    activation: Activation,
    data: Vec<f32>,
    /// Whether the layers run through the 512-bit kernel (the CPU has AVX-512F).
    wide: bool,
}

/// The units after a layer's blocks of 8. (For a width of 50, the paired block against a
/// narrow one: a lesion of every layer 3.6 % faster, mean of ten pairs alternating with the
/// build before it, 7.85 s against 8.14 s, faster in 8 of 10; identical error rates, losses
/// within 2.5e-9.)
#[derive(Clone, Copy, PartialEq, Debug)]
enum Tail {
    None,
    /// 3 or 4 units: H's and T's sums of a row in one register.
    Narrow,
    /// 1 or 2 units: each lane sums every other input, so a register of a row takes two inputs
    /// a product (half a narrow block's products), and two rows' H and T meet in one register
    /// for their σs.
    Paired,
}

/// Blocks of 8 units, and the block of the units left.
fn blocks(width: usize) -> (usize, Tail) {
    match width % UNITS {
        0 => (width / UNITS, Tail::None),
        1 | 2 => (width / UNITS, Tail::Paired),
        3 | 4 => (width / UNITS, Tail::Narrow),
        _ => (width / UNITS + 1, Tail::None),
    }
}

impl Packed {
    /// Space for `layers` highway layers of `width` units whose H is `activation`, if this
    /// CPU runs the kernel.
    pub fn new(width: usize, layers: usize, activation: Activation) -> Option<Packed> {
        if !available() {
            return None;
        }
        let mut packed = Packed { width, activation, data: Vec::new(), wide: wide() };
        packed.data = vec![0.0; packed.per_layer() * layers];
        Some(packed)
    }

    fn per_layer(&self) -> usize {
        let (full, tail) = blocks(self.width);
        let rows = match tail {
            Tail::Paired => 1 + self.width.div_ceil(2),
            _ => self.width + 1,
        };
        full * 2 * UNITS * (self.width + 1) + usize::from(tail != Tail::None) * UNITS * rows
    }

    /// Packs every layer from the flat parameters `p`: layer i's weights at `wc[i]`
    /// ([2·width, width]: H's rows, then T's) and biases at `bc[i]` ([2·width]).
    pub fn pack_all(&mut self, p: &[f32], wc: &[usize], bc: &[usize]) {
        let n = self.width;
        for (i, (&wc, &bc)) in wc.iter().zip(bc).enumerate() {
            self.pack(i, &p[wc..wc + 2 * n * n], &p[bc..bc + 2 * n]);
        }
    }

    /// Packs layer `i` from its weights `w` ([2·width, width]: H's rows, then T's) and biases
    /// `b` ([2·width]), scaled so that the product gives σ's and tanh's exponents of 2
    /// ([`T_SCALE`], [`TANH_SCALE`]).
    pub fn pack(&mut self, i: usize, w: &[f32], b: &[f32]) {
        let (n, per) = (self.width, self.per_layer());
        let h_scale = if self.activation == Activation::Tanh { TANH_SCALE } else { 1.0 };
        let (full, tail) = blocks(n);
        let mut out = &mut self.data[i * per..(i + 1) * per];
        // the lane's unit: H's (weights from row 0) or T's (from row n), and its scale
        let unit = |lane: usize, g: usize, start: usize| if lane < g { (0, start + lane, h_scale) } else { (n, start + lane - g, T_SCALE) };
        // (first unit, units) of each block
        let starts = (0..full).map(|j| (j * UNITS, UNITS)).chain((tail == Tail::Narrow).then_some((full * UNITS, UNITS / 2)));
        for (start, g) in starts {
            let (block, rest) = std::mem::take(&mut out).split_at_mut((n + 1) * 2 * g);
            out = rest;
            // lane by lane: a unit's row of weights read in order into the block's column
            for lane in 0..2 * g {
                let (first, unit, scale) = unit(lane, g, start);
                let column = block.iter_mut().skip(lane).step_by(2 * g);
                if unit >= n {
                    column.for_each(|d| *d = 0.0);
                    continue;
                }
                let row = &w[(first + unit) * n..(first + unit + 1) * n];
                for (d, &v) in column.zip(std::iter::once(&b[first + unit]).chain(row)) {
                    *d = v * scale;
                }
            }
        }
        // what is left: the paired block, if any
        if tail == Tail::Paired {
            // lanes 2j + q (j < 4: H's 2 units, then T's 2) sum inputs 2p + q
            let (block, start) = (out, full * UNITS);
            for (j, q) in (0..UNITS / 2).flat_map(|j| [(j, 0), (j, 1)]) {
                let (first, u, scale) = unit(j, 2, start);
                for (p, d) in block.iter_mut().skip(2 * j + q).step_by(UNITS).enumerate() {
                    // row 0: the bias, in the even lane; row p + 1: inputs 2p + q
                    let v = match p {
                        _ if u >= n => 0.0,
                        0 => [b[first + u], 0.0][q],
                        _ if 2 * (p - 1) + q >= n => 0.0,
                        _ => w[(first + u) * n + 2 * (p - 1) + q],
                    };
                    *d = v * scale;
                }
            }
        }
    }

    /// Highway layer `i` (0-based) on `x` ([rows, width]) into `y` ([rows, width]); `ht`
    /// ([rows, 2·width]), if given, gets `H | T`.
    pub fn forward(&self, i: usize, x: &[f32], y: &mut [f32], ht: Option<&mut [f32]>) {
        let ht = ht.map(|h| {
            assert!(h.len() >= x.len() * 2);
            h.as_mut_ptr()
        });
        self.run::<false>(i, x, y, ht.unwrap_or(std::ptr::null_mut()), None);
    }

    /// [`Self::forward`] without H | T, summing a probe's statistics of the layer in the
    /// kernel: T of row r into `class_sum` ([classes, width]) at row `labels[r]`; returns how
    /// many T > 0.5 and Σ |y − x| (as [`super::pointwise::probe_layer`]).
    pub fn probe(&self, i: usize, x: &[f32], y: &mut [f32], labels: &[i64], class_sum: &mut [f32]) -> (f64, f64) {
        let w = self.width;
        assert!(labels.len() == x.len() / w && labels.iter().all(|&l| l >= 0 && (l as usize + 1) * w <= class_sum.len()));
        self.run::<true>(i, x, y, std::ptr::null_mut(), Some((labels.as_ptr(), class_sum.as_mut_ptr())))
    }

    fn run<const P: bool>(&self, i: usize, x: &[f32], y: &mut [f32], ht: *mut f32, probe: Option<(*const i64, *mut f32)>) -> (f64, f64) {
        let (w, per) = (self.width, self.per_layer());
        let rows = x.len() / w;
        assert!(y.len() >= rows * w && P == probe.is_some());
        let pk = &self.data[i * per..(i + 1) * per];
        let (labels, class_sum) = probe.unwrap_or((std::ptr::null(), std::ptr::null_mut()));
        // SAFETY: `available()` held when `self` was made; every pointer below is in bounds
        // (asserted by the callers and above: rows × width, rows × 2·width, a label per row
        // naming a row of `class_sum`, the layer's packing).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            let sums = avx2::Sums::new(w, labels, class_sum);
            let (x, y) = (x.as_ptr(), y.as_mut_ptr());
            let sums = match (self.wide, self.activation) {
                (true, Activation::Tanh) => avx512::layer::<avx2::Tanh, P>(pk, x, y, ht, rows, w, sums),
                (true, Activation::Relu) => avx512::layer::<avx2::Relu, P>(pk, x, y, ht, rows, w, sums),
                (false, Activation::Tanh) => avx2::layer::<avx2::Tanh, P>(pk, x, y, ht, rows, w, sums),
                (false, Activation::Relu) => avx2::layer::<avx2::Relu, P>(pk, x, y, ht, rows, w, sums),
            };
            sums.totals()
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no kernel is packed without AVX2 ({pk:p}, {ht:p}, {labels:p}, {class_sum:p})");
    }
}

/// Whether inference should take the kernel on this CPU: wherever it runs. It was measured
/// faster than the product path both with AVX2 only (1.24–1.28× on an AMD EPYC) and, through
/// its 512-bit version, with AVX-512 (1.48× on an AMD EPYC, where the 8-lane kernel was
/// 0.96×).
pub fn preferred() -> bool {
    available()
}

/// Whether this CPU runs the 512-bit kernel ([`avx512`]), and [`super::sparse`]'s.
pub fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{TILE, UNITS};

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }

    /// 2^r ≈ 1 + Σ C[k] r^(k+1) on |r| ≤ 1/2: a degree-5 minimax fit (relative error 9.1e-8,
    /// 1.7e-7 evaluated in f32; σ stays within 2.5e-7 relative, tested).
    #[allow(clippy::approx_constant)] // a fitted coefficient, 3 ulp from ln 2
    const EXP2: [f32; 5] = [0.693_147, 0.240_222_42, 0.055_507_336, 0.009_671_513, 0.001_326_472_7];

    /// 1.5·2²³ + 127: added to a float of magnitude < 2²², it rounds it to an integer n and
    /// leaves n + 127 in the low bits of the mantissa (where a shift makes 2^n of it).
    const ROUND: f32 = 12_582_912.0 + 127.0;

    /// The vector operations [`sigmoid`] needs, for 8 lanes (AVX2) and 16 (AVX-512, in
    /// [`super::avx512`]).
    pub trait Lanes: Copy {
        unsafe fn splat(v: f32) -> Self;
        unsafe fn add(a: Self, b: Self) -> Self;
        unsafe fn sub(a: Self, b: Self) -> Self;
        /// a·b + c
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
        /// The lesser of `a` and `b`; `b` if either is NaN.
        unsafe fn min(a: Self, b: Self) -> Self;
        /// The greater of `a` and `b`; `b` if either is NaN.
        unsafe fn max(a: Self, b: Self) -> Self;
        unsafe fn div(a: Self, b: Self) -> Self;
        /// The float whose bits are `a`'s shifted left by 23 (an exponent field from low bits).
        unsafe fn shl23(a: Self) -> Self;
    }

    impl Lanes for __m256 {
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self, b: Self) -> Self {
            _mm256_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn min(a: Self, b: Self) -> Self {
            _mm256_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self, b: Self) -> Self {
            _mm256_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn shl23(a: Self) -> Self {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(a)))
        }
    }

    /// σ of `N` registers at once, each step over all of them (so their dependency chains
    /// interleave), from u = −z·log₂ e (what the packed weights' product gives, see
    /// [`super::T_SCALE`]): 1 / (1 + 2^u), with 2^u = 2^n · 2^r, u clamped to [−126, 126]
    /// (z within ±87), n = round(u) and r = u − n exact. One add both rounds u and holds
    /// 2^n's exponent ([`ROUND`]); every step before the polynomial is an add, off the FMA
    /// ports the product needs.
    #[inline(always)]
    pub(super) unsafe fn sigmoid<V: Lanes, const N: usize>(u: [V; N]) -> [V; N] {
        let s = V::splat;
        let mut u = u;
        for v in &mut u {
            // u second: max and min return their second operand when either is NaN, so a NaN
            // (a diverged weight) stays NaN instead of passing as a closed or open gate
            *v = V::min(s(126.0), V::max(s(-126.0), *v));
        }
        // t = n + ROUND, n = round(u) in [−126, 126]
        let mut t = u;
        for v in &mut t {
            *v = V::add(*v, s(ROUND));
        }
        // r = u − n, in [−1/2, 1/2]
        let mut r = u;
        for (r, &t) in r.iter_mut().zip(&t) {
            *r = V::sub(*r, V::sub(t, s(ROUND)));
        }
        // 2^r = 1 + r·(C0 + r·(C1 + …))
        let mut p = [s(EXP2[4]); N];
        for c in [EXP2[3], EXP2[2], EXP2[1], EXP2[0], 1.0] {
            for (p, &r) in p.iter_mut().zip(&r) {
                *p = V::fmadd(*p, r, s(c));
            }
        }
        let mut out = p;
        for i in 0..N {
            // 2^n: the exponent field n + 127 shifted up from t's low bits
            let d = V::fmadd(p[i], V::shl23(t[i]), s(1.0)); // 1 + 2^u
            out[i] = V::div(s(1.0), d);
        }
        out
    }

    /// H's activation.
    pub trait Act {
        /// Whether it is tanh (2·σ(2z) − 1, through [`sigmoid`]); else relu.
        const TANH: bool;
    }

    pub struct Tanh;
    pub struct Relu;

    impl Act for Tanh {
        const TANH: bool = true;
    }

    impl Act for Relu {
        const TANH: bool = false;
    }

    /// H = act(z_H) and T = σ(z_T) of a tile's rows, in place, from the sums of the scaled
    /// weights (T's u, and H's for tanh; H's z for relu). Every register's σ goes at once: a σ
    /// is a chain of about 15 dependent steps, and the 12 chains of a tile interleave (1.05×
    /// over four at a time, measured).
    #[inline(always)]
    unsafe fn activate<A: Act, const R: usize>(h: &mut [__m256; R], t: &mut [__m256; R]) {
        // every register that goes through σ: T's, then H's (for tanh)
        let mut z = [_mm256_setzero_ps(); 2 * TILE];
        for r in 0..R {
            z[r] = t[r];
            if A::TANH {
                z[TILE + r] = h[r];
            }
        }
        if A::TANH {
            z = sigmoid(z);
        } else {
            let s = sigmoid::<__m256, TILE>(z[..TILE].try_into().expect("TILE registers"));
            z[..TILE].copy_from_slice(&s);
        }
        for r in 0..R {
            h[r] = if A::TANH { _mm256_fmsub_ps(z[TILE + r], splat(2.0), splat(1.0)) } else { _mm256_max_ps(_mm256_setzero_ps(), h[r]) };
            t[r] = z[r];
        }
    }

    /// A probe's sums through a layer (see [`super::Packed::probe`]): its labels from the
    /// tile's first row, its class sums, and per lane the count of T > 0.5 and Σ |y − x|.
    pub struct Sums {
        width: usize,
        labels: *const i64,
        class_sum: *mut f32,
        open: __m256,
        change: __m256,
    }

    impl Sums {
        pub unsafe fn new(width: usize, labels: *const i64, class_sum: *mut f32) -> Sums {
            Sums { width, labels, class_sum, open: _mm256_setzero_ps(), change: _mm256_setzero_ps() }
        }

        /// The count of T > 0.5 and Σ |y − x|.
        pub unsafe fn totals(&self) -> (f64, f64) {
            let (mut open, mut change) = ([0f32; 8], [0f32; 8]);
            _mm256_storeu_ps(open.as_mut_ptr(), self.open);
            _mm256_storeu_ps(change.as_mut_ptr(), self.change);
            let total = |v: [f32; 8]| v.iter().map(|&v| v as f64).sum::<f64>();
            (total(open), total(change))
        }

        /// Adds row `r`'s T and output of units `col..` (the lanes of `m`, else 8): T into the
        /// row's class sum, T > 0.5 into the count, |y − x| into the change.
        #[inline(always)]
        pub(super) unsafe fn add(&mut self, r: usize, col: usize, t: __m256, x: __m256, y: __m256, m: Option<__m256i>) {
            let (mut open, mut change) =
                (_mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(t, splat(0.5)), splat(1.0)), _mm256_andnot_ps(splat(-0.0), _mm256_sub_ps(y, x)));
            if let Some(m) = m {
                let m = _mm256_castsi256_ps(m);
                (open, change) = (_mm256_and_ps(open, m), _mm256_and_ps(change, m));
            }
            self.open = _mm256_add_ps(self.open, open);
            self.change = _mm256_add_ps(self.change, change);
            let at = self.class_sum.add(*self.labels.add(r) as usize * self.width + col);
            store(at, _mm256_add_ps(load(at, m), t), m);
        }

        /// [`Self::add`] of 4 units (the lanes of `m`).
        #[inline(always)]
        unsafe fn add4(&mut self, r: usize, col: usize, t: __m128, x: __m128, y: __m128, m: __m128i) {
            let mf = _mm_castsi128_ps(m);
            let open = _mm_and_ps(_mm_and_ps(_mm_cmpgt_ps(t, _mm_set1_ps(0.5)), _mm_set1_ps(1.0)), mf);
            let change = _mm_and_ps(_mm_andnot_ps(_mm_set1_ps(-0.0), _mm_sub_ps(y, x)), mf);
            self.open = _mm256_add_ps(self.open, _mm256_zextps128_ps256(open));
            self.change = _mm256_add_ps(self.change, _mm256_zextps128_ps256(change));
            let at = self.class_sum.add(*self.labels.add(r) as usize * self.width + col);
            _mm_maskstore_ps(at, m, _mm_add_ps(_mm_maskload_ps(at, m), t));
        }

        /// The sums of the tile that starts `rows` further on.
        #[inline(always)]
        pub(super) unsafe fn skip(&mut self, rows: usize) {
            if !self.labels.is_null() {
                self.labels = self.labels.add(rows);
            }
        }

        /// The sums of the tile that starts `rows` before.
        #[inline(always)]
        pub(super) unsafe fn back(&mut self, rows: usize) {
            if !self.labels.is_null() {
                self.labels = self.labels.sub(rows);
            }
        }
    }

    /// See [`super::Packed::forward`]; with `P`, [`super::Packed::probe`]'s sums go into `s`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn layer<A: Act, const P: bool>(
        pk: &[f32],
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        rows: usize,
        w: usize,
        mut s: Sums,
    ) -> Sums {
        let pk = pk.as_ptr();
        let mut r = 0;
        while r + TILE <= rows {
            tile::<A, TILE, P>(pk, x.add(r * w), y.add(r * w), row(ht, r, w), w, &mut s);
            s.skip(TILE);
            r += TILE;
        }
        let (x, y, ht) = (x.add(r * w), y.add(r * w), row(ht, r, w));
        match rows - r {
            1 => tile::<A, 1, P>(pk, x, y, ht, w, &mut s),
            2 => tile::<A, 2, P>(pk, x, y, ht, w, &mut s),
            3 => tile::<A, 3, P>(pk, x, y, ht, w, &mut s),
            4 => tile::<A, 4, P>(pk, x, y, ht, w, &mut s),
            5 => tile::<A, 5, P>(pk, x, y, ht, w, &mut s),
            _ => {}
        }
        s
    }

    #[inline(always)]
    pub(super) unsafe fn row(ht: *mut f32, r: usize, w: usize) -> *mut f32 {
        if ht.is_null() {
            ht
        } else {
            ht.add(r * 2 * w)
        }
    }

    /// `R` rows: every block of units through the product and the pointwise work.
    #[inline(always)]
    unsafe fn tile<A: Act, const R: usize, const P: bool>(
        pk: *const f32,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        s: &mut Sums,
    ) {
        let per_block = (w + 1) * 2 * UNITS;
        let (full, tail) = super::blocks(w);
        let (b, col) = (pk.add(full * per_block), full * UNITS);
        match tail {
            super::Tail::Narrow => narrow_tile::<A, R, P>(b, x, y, ht, w, col, s),
            super::Tail::Paired => paired_tile::<A, R, P>(b, x, y, ht, w, col, s),
            super::Tail::None => {}
        }
        for j in 0..full {
            let b = pk.add(j * per_block);
            let (mut h, mut t) = ([_mm256_loadu_ps(b); R], [_mm256_loadu_ps(b.add(UNITS)); R]);
            let mut wk = b.add(2 * UNITS);
            let mut xk = x;
            let end = x.add(w);
            while xk < end {
                let (wh, wt) = (_mm256_loadu_ps(wk), _mm256_loadu_ps(wk.add(UNITS)));
                for r in 0..R {
                    let xv = _mm256_broadcast_ss(&*xk.add(r * w));
                    h[r] = _mm256_fmadd_ps(xv, wh, h[r]);
                    t[r] = _mm256_fmadd_ps(xv, wt, t[r]);
                }
                wk = wk.add(2 * UNITS);
                xk = xk.add(1);
            }
            let col = j * UNITS;
            let left = w - col;
            activate::<A, R>(&mut h, &mut t);
            // lanes past the row's end are neither read nor written (masked only where needed:
            // masked stores are slow)
            let lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            let m = if left < UNITS { Some(lanes) } else { None };
            for r in 0..R {
                let xv = load(x.add(r * w + col), m);
                let yv = _mm256_fmadd_ps(t[r], _mm256_sub_ps(h[r], xv), xv);
                store(y.add(r * w + col), yv, m);
                if P {
                    s.add(r, col, t[r], xv, yv, m);
                }
                if !ht.is_null() {
                    store(ht.add(r * 2 * w + col), h[r], m);
                    store(ht.add(r * 2 * w + w + col), t[r], m);
                }
            }
        }
    }

    /// 8 lanes from `at`, or the lanes of the mask `m`. (Plain functions, not closures, so
    /// that they inline into the kernel's target features.)
    #[inline(always)]
    pub(super) unsafe fn load(at: *const f32, m: Option<__m256i>) -> __m256 {
        match m {
            Some(m) => _mm256_maskload_ps(at, m),
            None => _mm256_loadu_ps(at),
        }
    }

    #[inline(always)]
    pub(super) unsafe fn store(at: *mut f32, v: __m256, m: Option<__m256i>) {
        match m {
            Some(m) => _mm256_maskstore_ps(at, m, v),
            None => _mm256_storeu_ps(at, v),
        }
    }

    /// The narrow block (units `col..w`, at most 4) of `R` rows: one register a row holds
    /// H's sums in its low 4 lanes and T's in its high 4.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn narrow_tile<A: Act, const R: usize, const P: bool>(
        b: *const f32,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        col: usize,
        s: &mut Sums,
    ) {
        let mut acc = [_mm256_loadu_ps(b); R];
        let (mut wk, mut xk, end) = (b.add(UNITS), x, x.add(w));
        while xk < end {
            let wv = _mm256_loadu_ps(wk);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*xk.add(r * w)), wv, *acc);
            }
            wk = wk.add(UNITS);
            xk = xk.add(1);
        }
        // σ for tanh's H (or of nothing useful, relu's) in the low lanes, T's in the high
        let mut z = [_mm256_setzero_ps(); 8];
        z[..R].copy_from_slice(&acc);
        let z = sigmoid(z);
        for r in 0..R {
            let hv = if A::TANH { _mm256_fmsub_ps(z[r], splat(2.0), splat(1.0)) } else { _mm256_max_ps(_mm256_setzero_ps(), acc[r]) };
            tail_row::<P>(r, _mm256_castps256_ps128(hv), _mm256_extractf128_ps::<1>(z[r]), x, y, ht, w, col, s);
        }
    }

    /// The paired block (units `col..w`, 1 or 2; see [`super::Tail::Paired`]) of `R` rows:
    /// a row's register sums inputs 2p and 2p + 1 in neighbouring lanes, two at a product; then
    /// rows 2i and 2i + 1 meet in one register, H's of the two in its low half and T's in its
    /// high, and take their σs together.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn paired_tile<A: Act, const R: usize, const P: bool>(
        b: *const f32,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        col: usize,
        s: &mut Sums,
    ) {
        let acc = paired_sums(b, x, w, 0, [_mm256_loadu_ps(b); R]);
        paired_out::<A, R, P>(acc, x, y, ht, w, col, s);
    }

    /// A paired block's sums of `R` rows (see [`paired_tile`]): `acc` plus the products of
    /// the inputs from pair `from` on.
    #[inline(always)]
    pub(super) unsafe fn paired_sums<const R: usize>(b: *const f32, x: *const f32, w: usize, from: usize, acc: [__m256; R]) -> [__m256; R] {
        let mut acc = acc;
        let mut wk = b.add(UNITS * (1 + from));
        for p in from..w / 2 {
            let wv = _mm256_loadu_ps(wk);
            for (r, acc) in acc.iter_mut().enumerate() {
                // inputs 2p and 2p + 1 of the row, in every pair of lanes
                let pair = x.add(r * w + 2 * p).cast::<f64>().read_unaligned();
                *acc = _mm256_fmadd_ps(_mm256_castpd_ps(_mm256_set1_pd(pair)), wv, *acc);
            }
            wk = wk.add(UNITS);
        }
        if w % 2 == 1 {
            // the last input alone (its odd lanes' weights are zero)
            let wv = _mm256_loadu_ps(wk);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*x.add(r * w + w - 1)), wv, *acc);
            }
        }
        acc
    }

    /// A paired block's `R` rows from their sums: σ, then y, the probe's sums and H | T.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn paired_out<A: Act, const R: usize, const P: bool>(
        acc: [__m256; R],
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        col: usize,
        s: &mut Sums,
    ) {
        // rows 2i, 2i + 1: [H₀ H₁ of 2i, H₀ H₁ of 2i + 1 | T₀ T₁ of 2i, T₀ T₁ of 2i + 1]
        let mut sums = [_mm256_setzero_ps(); TILE / 2];
        for (i, v) in sums.iter_mut().enumerate().take(R.div_ceil(2)) {
            *v = _mm256_hadd_ps(acc[2 * i], acc[(2 * i + 1).min(R - 1)]);
        }
        let z = sigmoid(sums);
        for (i, (a, z)) in sums.into_iter().zip(z).enumerate().take(R.div_ceil(2)) {
            let hv = if A::TANH { _mm256_fmsub_ps(z, splat(2.0), splat(1.0)) } else { _mm256_max_ps(_mm256_setzero_ps(), a) };
            let (h, t) = (_mm256_castps256_ps128(hv), _mm256_extractf128_ps::<1>(z));
            tail_row::<P>(2 * i, h, t, x, y, ht, w, col, s);
            if 2 * i + 1 < R {
                tail_row::<P>(2 * i + 1, _mm_movehl_ps(h, h), _mm_movehl_ps(t, t), x, y, ht, w, col, s);
            }
        }
    }

    /// Row `r` of the units `col..w` (at most 4) of a narrow or paired block, from their H and
    /// T in the low lanes: y, the probe's sums, H | T.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tail_row<const P: bool>(
        r: usize,
        h: __m128,
        t: __m128,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        col: usize,
        s: &mut Sums,
    ) {
        let m = _mm_cmpgt_epi32(_mm_set1_epi32((w - col) as i32), _mm_setr_epi32(0, 1, 2, 3));
        let xv = _mm_maskload_ps(x.add(r * w + col), m);
        let yv = _mm_fmadd_ps(t, _mm_sub_ps(h, xv), xv);
        _mm_maskstore_ps(y.add(r * w + col), m, yv);
        if P {
            s.add4(r, col, t, xv, yv, m);
        }
        if !ht.is_null() {
            _mm_maskstore_ps(ht.add(r * 2 * w + col), m, h);
            _mm_maskstore_ps(ht.add(r * 2 * w + w + col), m, t);
        }
    }
}

/// The kernel with 512-bit registers: a register holds a row's H and T sums of one block of 8
/// units (the packing's row of 16 is one load), so a product is one FMA where AVX2 takes two,
/// and σ goes over 16 lanes at once. A tile is [`ROWS`] rows, and a pass over its inputs sums
/// [`BLOCKS`] blocks. A paired block's products take four inputs a register ([`paired_sums`]);
/// its σs and outputs, the narrow block, and the rows after the last whole tile run through the
/// AVX2 code.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::avx2::{self, Act, Lanes, Sums};
    use super::{Tail, TILE, UNITS};

    /// Rows of a tile.
    const ROWS: usize = 12;
    /// Blocks a pass sums at once: [`ROWS`] × `BLOCKS` accumulators, `BLOCKS` weight vectors
    /// and a broadcast input take 27 of the 32 registers.
    const BLOCKS: usize = 2;
    const _: () = assert!(super::ROW_MULTIPLE.is_multiple_of(ROWS) && super::ROW_MULTIPLE.is_multiple_of(TILE));

    impl Lanes for __m512 {
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self, b: Self) -> Self {
            _mm512_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn min(a: Self, b: Self) -> Self {
            _mm512_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self, b: Self) -> Self {
            _mm512_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn shl23(a: Self) -> Self {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(a)))
        }
    }

    /// See [`super::Packed::forward`]; with `P`, [`super::Packed::probe`]'s sums go into `s`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn layer<A: Act, const P: bool>(
        pk: &[f32],
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        rows: usize,
        w: usize,
        mut s: Sums,
    ) -> Sums {
        let mut r = 0;
        while r + ROWS <= rows {
            tile::<A, P>(pk.as_ptr(), x.add(r * w), y.add(r * w), avx2::row(ht, r, w), w, &mut s);
            s.skip(ROWS);
            r += ROWS;
        }
        // the rows left: the 8-lane kernel's tiles
        avx2::layer::<A, P>(pk, x.add(r * w), y.add(r * w), avx2::row(ht, r, w), rows - r, w, s)
    }

    /// [`ROWS`] rows: the narrow or paired block, then the blocks of 8 units, [`BLOCKS`] a pass.
    #[inline(always)]
    unsafe fn tile<A: Act, const P: bool>(pk: *const f32, x: *const f32, y: *mut f32, ht: *mut f32, w: usize, s: &mut Sums) {
        let (full, tail) = super::blocks(w);
        if tail != Tail::None {
            tail_rows::<A, P>(pk.add(full * (w + 1) * 2 * UNITS), x, y, ht, w, full * UNITS, tail, s);
        }
        let mut j = 0;
        while j + BLOCKS <= full {
            pass::<A, BLOCKS, P>(pk, j, x, y, ht, w, s);
            j += BLOCKS;
        }
        while j < full {
            pass::<A, 1, P>(pk, j, x, y, ht, w, s);
            j += 1;
        }
    }

    /// The narrow or paired block (its packing at `b`, units `col..w`) of [`ROWS`] rows, by
    /// the 8-lane kernel's tiles of [`TILE`] rows.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tail_rows<A: Act, const P: bool>(
        b: *const f32,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        col: usize,
        tail: Tail,
        s: &mut Sums,
    ) {
        let mut r = 0;
        while r < ROWS {
            let (x, y, ht) = (x.add(r * w), y.add(r * w), avx2::row(ht, r, w));
            let n = (ROWS - r).min(TILE);
            macro_rules! rows {
                ($n:literal) => {
                    if tail == Tail::Paired {
                        avx2::paired_out::<A, $n, P>(paired_sums::<$n>(b, x, w), x, y, ht, w, col, s)
                    } else {
                        avx2::narrow_tile::<A, $n, P>(b, x, y, ht, w, col, s)
                    }
                };
            }
            match n {
                1 => rows!(1),
                2 => rows!(2),
                3 => rows!(3),
                4 => rows!(4),
                5 => rows!(5),
                _ => rows!(6),
            }
            s.skip(n);
            r += n;
        }
        s.back(ROWS);
    }

    /// A paired block's sums of `R` rows, as [`avx2::paired_sums`] gives them, four inputs a
    /// product: a register holds two packed rows (inputs 4p to 4p + 3), permuted so that lane
    /// 4m + k holds output m's weight of input 4p + k, against the row's 4 inputs in every
    /// quarter (one broadcast load). Then each output's 4 lanes fold into its 2 of the 8-lane
    /// layout, and the pair and input left over take the 8-lane products.
    #[inline(always)]
    unsafe fn paired_sums<const R: usize>(b: *const f32, x: *const f32, w: usize) -> [__m256; R] {
        let quads = w / 4;
        let weights = _mm512_setr_epi32(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
        let mut acc = [_mm512_setzero_ps(); R];
        for q in 0..quads {
            let wv = _mm512_permutexvar_ps(weights, _mm512_loadu_ps(b.add(UNITS * (1 + 2 * q))));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_broadcast_f32x4(_mm_loadu_ps(x.add(r * w + 4 * q)));
                *acc = _mm512_fmadd_ps(xv, wv, *acc);
            }
        }
        // lane 2m + q of the 8: lanes 4m + q and 4m + 2 + q of the 16, and the biases
        let (even, odd) = (
            _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0),
            _mm512_setr_epi32(2, 3, 6, 7, 10, 11, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0),
        );
        let bias = _mm256_loadu_ps(b);
        let mut folded = [_mm256_setzero_ps(); R];
        for (f, a) in folded.iter_mut().zip(acc) {
            // (a loop, not a closure: a closure would not inherit the target features)
            let (e, o) = (_mm512_castps512_ps256(_mm512_permutexvar_ps(even, a)), _mm512_castps512_ps256(_mm512_permutexvar_ps(odd, a)));
            *f = _mm256_add_ps(bias, _mm256_add_ps(e, o));
        }
        avx2::paired_sums(b, x, w, 2 * quads, folded)
    }

    /// `B` blocks of 8 units from block `j` on, of [`ROWS`] rows: their products, then per
    /// block H and T of a row in one register through σ, and out as `y = x + T·(H − x)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass<A: Act, const B: usize, const P: bool>(
        pk: *const f32,
        j: usize,
        x: *const f32,
        y: *mut f32,
        ht: *mut f32,
        w: usize,
        s: &mut Sums,
    ) {
        let per_block = (w + 1) * 2 * UNITS;
        let b = pk.add(j * per_block);
        // [block][row]: lanes H of the block's 8 units, then T's
        let mut acc = [[_mm512_setzero_ps(); ROWS]; B];
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc = [_mm512_loadu_ps(b.add(k * per_block)); ROWS];
        }
        let mut wk = b.add(2 * UNITS);
        for i in 0..w {
            let mut wv = [_mm512_setzero_ps(); B];
            for (k, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_ps(wk.add(k * per_block));
            }
            #[allow(clippy::needless_range_loop)] // acc[block][row]: a row's input meets each block
            for r in 0..ROWS {
                let xv = _mm512_set1_ps(*x.add(r * w + i));
                for k in 0..B {
                    acc[k][r] = _mm512_fmadd_ps(xv, wv[k], acc[k][r]);
                }
            }
            wk = wk.add(2 * UNITS);
        }
        const H: __mmask16 = 0x00ff;
        for (k, acc) in acc.iter().enumerate() {
            let z = avx2::sigmoid(*acc);
            let col = (j + k) * UNITS;
            let left = w - col;
            let lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            let m = if left < UNITS { Some(lanes) } else { None };
            for (r, (&z, &a)) in z.iter().zip(acc).enumerate() {
                // H's lanes: tanh = 2·σ(2z) − 1, or relu (0 first: a NaN stays NaN)
                let v = if A::TANH {
                    _mm512_mask_fmsub_ps(z, H, _mm512_set1_ps(2.0), _mm512_set1_ps(1.0))
                } else {
                    _mm512_mask_max_ps(z, H, _mm512_setzero_ps(), a)
                };
                let h = _mm512_castps512_ps256(v);
                let t = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
                let xv = avx2::load(x.add(r * w + col), m);
                let yv = _mm256_fmadd_ps(t, _mm256_sub_ps(h, xv), xv);
                avx2::store(y.add(r * w + col), yv, m);
                if P {
                    s.add(r, col, t, xv, yv, m);
                }
                if !ht.is_null() {
                    avx2::store(ht.add(r * 2 * w + col), h, m);
                    avx2::store(ht.add(r * 2 * w + w + col), t, m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pointwise;

    /// The kernel's σ against f64's, over the range a gate sees and past f32's exponent range:
    /// within 2.5e-7 relative.
    #[test]
    fn the_kernels_sigmoid_is_within_a_few_ulp() {
        if !available() {
            eprintln!("no AVX2 + FMA: nothing to check");
            return;
        }
        let zs: Vec<f32> = (-400_000..=400_000).map(|i| i as f32 * 2.5e-4).chain([-200.0, -88.5, 87.5, 200.0]).collect();
        let mut worst = (0f64, 0f32);
        for z in zs.chunks(8) {
            // the kernel gets u = −z·log₂ e (the packed weights' product); σ(z) = 1 / (1 + 2^u)
            let mut u = [0f32; 8];
            u.iter_mut().zip(z).for_each(|(u, &z)| *u = z * T_SCALE);
            let mut got = [0f32; 8];
            // SAFETY: AVX2 and FMA are available (checked above)
            unsafe {
                use std::arch::x86_64::*;
                let s = avx2::sigmoid([_mm256_loadu_ps(u.as_ptr())]);
                _mm256_storeu_ps(got.as_mut_ptr(), s[0]);
            }
            for ((&z, &u), &g) in z.iter().zip(&u).zip(&got) {
                let want = 1.0 / (1.0 + (u as f64).exp2());
                let rel = (g as f64 - want).abs() / want.max(1e-30);
                if want > 1e-30 && rel > worst.0 {
                    worst = (rel, z);
                }
            }
        }
        eprintln!("worst relative error {:.3e} at z = {}", worst.0, worst.1);
        assert!(worst.0 < 2.5e-7, "σ({}) is {:.3e} off, relative", worst.1, worst.0);
        // NaN stays NaN; ±∞ saturate
        let mut got = [0f32; 8];
        // SAFETY: as above
        unsafe {
            use std::arch::x86_64::*;
            let u = _mm256_setr_ps(f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -f32::NAN, 1e30, -1e30, 1.0);
            _mm256_storeu_ps(got.as_mut_ptr(), avx2::sigmoid([u])[0]);
        }
        assert!(got[0].is_nan() && got[4].is_nan(), "σ of NaN: {got:?}");
        if wide() {
            // the 512-bit kernel's σ: the same steps, so the same bits
            for u in zs.chunks_exact(16).step_by(97) {
                let (mut narrow, mut wide) = ([0f32; 16], [0f32; 16]);
                // SAFETY: AVX2, FMA and AVX-512F are available (checked above)
                unsafe {
                    use std::arch::x86_64::*;
                    let n = avx2::sigmoid([_mm256_loadu_ps(u.as_ptr()), _mm256_loadu_ps(u[8..].as_ptr())]);
                    _mm256_storeu_ps(narrow.as_mut_ptr(), n[0]);
                    _mm256_storeu_ps(narrow[8..].as_mut_ptr(), n[1]);
                    _mm512_storeu_ps(wide.as_mut_ptr(), avx2::sigmoid([_mm512_loadu_ps(u.as_ptr())])[0]);
                }
                assert_eq!(narrow.map(f32::to_bits), wide.map(f32::to_bits), "σ of {u:?}");
            }
        }
        assert!(got[1] < 1e-37 && got[5] < 1e-37 && got[2] == 1.0 && got[6] == 1.0 && got[3] == 0.5, "{got:?}");
    }

    /// Deterministic values in [−scale, scale].
    fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        pointwise::tests::values(n, seed).into_iter().map(|v| v * scale / 6.0).collect()
    }

    /// The kernel against a plain product and [`pointwise::highway_forward`], for widths that
    /// fill whole blocks and not, and row counts that fill whole tiles and not.
    #[test]
    fn the_fused_layer_matches_the_product_and_the_pointwise_pass() {
        if !available() {
            eprintln!("no AVX2 + FMA: nothing to check");
            return;
        }
        // (widths with a paired block: 50, 33, 9, 10, 2, 1; a narrow one: 12, 3; rows past 8 take
        // the 512-bit kernel's tiles, where the CPU has it, and 40 a pass of 3 blocks and two of 1)
        let cases = [
            (50, 13),
            (16, 6),
            (7, 5),
            (33, 20),
            (8, 1),
            (64, 12),
            (12, 7),
            (3, 2),
            (45, 11),
            (9, 7),
            (10, 3),
            (2, 5),
            (1, 4),
            (50, 29),
            (40, 24),
            (12, 17),
            (3, 9),
            (7, 16),
            (9, 14),
            (10, 25),
            (2, 13),
            (1, 12),
            (18, 12),
        ];
        let kernels = if wide() { vec![true, false] } else { vec![false] };
        for (&(w, rows), wide, a) in
            cases.iter().flat_map(|c| kernels.iter().flat_map(move |&k| [(c, k, Activation::Tanh), (c, k, Activation::Relu)]))
        {
            {
                let (wt, b, x) = (values(2 * w * w, 1, 0.5), values(2 * w, 2, 2.0), values(rows * w, 3, 1.5));
                let mut packed = Packed::new(w, 2, a).expect("available");
                packed.wide = wide;
                packed.pack(1, &wt, &b);
                let (mut y, mut ht) = (vec![f32::NAN; rows * w], vec![f32::NAN; rows * 2 * w]);
                packed.forward(1, &x, &mut y, Some(&mut ht));
                let mut want_ht = vec![0f32; rows * 2 * w];
                for r in 0..rows {
                    for o in 0..2 * w {
                        want_ht[r * 2 * w + o] = (0..w).map(|k| x[r * w + k] * wt[o * w + k]).sum();
                    }
                }
                let mut want_y = vec![0f32; rows * w];
                pointwise::highway_forward(&mut want_ht, &x, &mut want_y, &b, a);
                let close = |got: &[f32], want: &[f32], what: &str| {
                    for (i, (g, e)) in got.iter().zip(want).enumerate() {
                        assert!(
                            (g - e).abs() <= 2e-5 * (1.0 + e.abs()),
                            "{what}[{i}] = {g}, not {e} (width {w}, {rows} rows, {a:?}, wide {wide})"
                        );
                    }
                };
                close(&y, &want_y, "y");
                close(&ht, &want_ht, "ht");
                let mut y2 = vec![f32::NAN; rows * w];
                packed.forward(1, &x, &mut y2, None);
                assert_eq!(y, y2, "the same y without H | T");
                // the probe's sums in the kernel against the pointwise pass over H | T
                let classes = 3;
                let labels: Vec<i64> = (0..rows as i64).map(|r| (r * 7 + 1) % classes).collect();
                let (mut sums, mut want_sums) = (vec![0.25f32; classes as usize * w], vec![0.25f32; classes as usize * w]);
                let mut y3 = vec![f32::NAN; rows * w];
                let (open, change) = packed.probe(1, &x, &mut y3, &labels, &mut sums);
                let (want_open, want_change) = pointwise::probe_layer(&ht, &x, &y, &labels, &mut want_sums);
                assert_eq!(y, y3, "the same y with the probe's sums");
                assert_eq!(open, want_open, "T > 0.5 (width {w}, {rows} rows, {a:?})");
                assert!((change - want_change).abs() <= 1e-5 * (1.0 + want_change), "Σ|y − x| = {change}, not {want_change}");
                close(&sums, &want_sums, "class sums");
            }
        }
    }
}
