//! The plain first layer, skipping zero inputs: `x · W0ᵀ` for f32 rows, or for u8 pixels
//! scaled to [0, 1].
//!
//! An MNIST digit is about 19 % ink: a row's product needs only the rows of W0ᵀ of its nonzero
//! inputs (about 150 of 784). The generic path runs a dense `gemm` ([`super::infer`]); this one
//! finds a row's nonzero inputs a register at a time, then sums their weight rows into up to 8
//! registers (64 units) at once. Every product it skips is 0 · w = 0, so it is the dense
//! product up to the order of the sums; it is only made when every weight is finite (a NaN
//! weight times a zero input is NaN, which skipping would hide). On a dense row it is as fast
//! as the product (one weight load per FMA). With AVX-512F the sums run 16 lanes a register,
//! in two interleaved sets of accumulators ([`avx512`]): the probe pass of 10,000 examples took
//! 20.7 ms against 28.1 before (`scripts/bench inference`). Inference only, where the CPU has
//! AVX2 and FMA ([`FirstLayer::new`] says None otherwise).

/// Units of a register: one AVX2 register of f32.
const UNITS: usize = 8;
/// Registers a pass over a row's nonzero inputs fills (64 units).
const REGS: usize = 8;

/// W0 transposed and padded for the kernel: `[input][lanes]`, row k the weights of input k,
/// `lanes` the width rounded up to a register (units past the width are zero).
pub struct FirstLayer {
    input: usize,
    width: usize,
    lanes: usize,
    wt: Vec<f32>,
    /// Whether the sums run in 512-bit registers ([`avx512`], where the CPU has AVX-512F).
    wide: bool,
}

impl FirstLayer {
    /// The first layer of weights `w0` ([width, input]), if this CPU runs the kernel and every
    /// weight is finite.
    pub fn new(w0: &[f32], width: usize, input: usize) -> Option<FirstLayer> {
        if !super::fused::available() || width == 0 || input == 0 || !w0[..width * input].iter().all(|v| v.is_finite()) {
            return None;
        }
        let lanes = width.next_multiple_of(UNITS);
        let mut wt = vec![0.0; input * lanes];
        for (j, row) in w0[..width * input].chunks_exact(input).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                wt[k * lanes + j] = v;
            }
        }
        Some(FirstLayer { input, width, lanes, wt, wide: super::fused::wide() })
    }

    /// `out` ([rows, width]) = `x` · W0ᵀ for the rows of `x` ([rows, input]).
    pub fn features(&self, x: &[f32], out: &mut [f32], scratch: &mut Scratch) {
        self.rows(x, x.len(), out, scratch)
    }

    /// [`Self::features`] of u8 pixels scaled by 1/255.
    pub fn pixels(&self, x: &[u8], out: &mut [f32], scratch: &mut Scratch) {
        self.rows(x, x.len(), out, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    fn rows<X: avx2::Scan>(&self, x: X, len: usize, out: &mut [f32], scratch: &mut Scratch) {
        let rows = len / self.input;
        assert!(out.len() >= rows * self.width && self.wt.len() == self.input * self.lanes);
        // a scan writes a whole register of 8 past its last nonzero input
        let room = self.input + UNITS;
        scratch.at.resize(room, 0);
        scratch.value.resize(room, 0.0);
        for r in 0..rows {
            // SAFETY: `new` made `self` only where AVX2 + FMA run; row r holds `input` values
            // of `x`; the scratch has room for `input` + 8 (each index < input, so its W0ᵀ row
            // is in `wt`), and `out` a row of `width` floats at r · width (asserted above).
            unsafe { avx2::row(x, r * self.input, self, scratch, out[r * self.width..].as_mut_ptr()) }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn rows<X>(&self, _: X, _: usize, _: &mut [f32], _: &mut Scratch) {
        unreachable!("no first layer is packed without AVX2 (width {})", self.width)
    }
}

/// A row's nonzero inputs, packed: their indices and values (a thread's, reused row to row).
#[derive(Default)]
pub struct Scratch {
    at: Vec<u32>,
    value: Vec<f32>,
}

/// For each 8-bit mask, the lanes it has set, in order (the rest 0), then how many: the
/// left-pack of a register's nonzero lanes (a table, not `popcnt`, which AVX2 does not imply).
#[cfg(target_arch = "x86_64")]
static LEFT_PACK: [([u8; 8], u8); 256] = {
    let mut t = [([0u8; 8], 0u8); 256];
    let mut m = 0;
    while m < 256 {
        let (mut lane, mut n) = (0, 0);
        while lane < 8 {
            if m & (1 << lane) != 0 {
                t[m].0[n] = lane as u8;
                n += 1;
            }
            lane += 1;
        }
        t[m].1 = n as u8;
        m += 1;
    }
    t
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{FirstLayer, Scratch, LEFT_PACK, REGS, UNITS};

    /// How the kernel reads a row: its values 8 at a time as f32, as the product takes them.
    pub trait Scan: Copy {
        /// The 8 values at `at`.
        unsafe fn load8(self, at: usize) -> __m256;
        /// The value at `at`.
        unsafe fn value(self, at: usize) -> f32;
    }

    impl Scan for &[u8] {
        #[inline(always)]
        unsafe fn load8(self, at: usize) -> __m256 {
            let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(self.as_ptr().add(at).cast())));
            _mm256_div_ps(v, _mm256_set1_ps(255.0))
        }

        #[inline(always)]
        unsafe fn value(self, at: usize) -> f32 {
            *self.get_unchecked(at) as f32 / 255.0
        }
    }

    impl Scan for &[f32] {
        #[inline(always)]
        unsafe fn load8(self, at: usize) -> __m256 {
            _mm256_loadu_ps(self.as_ptr().add(at))
        }

        #[inline(always)]
        unsafe fn value(self, at: usize) -> f32 {
            *self.get_unchecked(at)
        }
    }

    /// One row (the layer's `input` values of `x` from `at`): its nonzero inputs packed into
    /// `scratch` without a branch per register (a NaN is nonzero, carried into the sums), then
    /// the sums of their W0ᵀ rows, `REGS` registers of units at a time, into `out`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn row<X: Scan>(x: X, at: usize, layer: &FirstLayer, scratch: &mut Scratch, out: *mut f32) {
        let (input, width) = (layer.input, layer.width);
        let (ids, vals) = (scratch.at.as_mut_ptr(), scratch.value.as_mut_ptr());
        let mut n = 0;
        let mut i = 0;
        while i + UNITS <= input {
            let v = x.load8(at + i);
            let ink = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps())) as usize;
            let (pack, count) = &LEFT_PACK[ink];
            let lanes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(pack.as_ptr().cast()));
            _mm256_storeu_si256(ids.add(n).cast(), _mm256_add_epi32(lanes, _mm256_set1_epi32(i as i32)));
            _mm256_storeu_ps(vals.add(n), _mm256_permutevar8x32_ps(v, lanes));
            n += *count as usize;
            i += UNITS;
        }
        for i in i..input {
            let v = x.value(at + i);
            if v != 0.0 || v.is_nan() {
                (*ids.add(n), *vals.add(n)) = (i as u32, v);
                n += 1;
            }
        }
        let (ids, vals) = (&scratch.at[..n], &scratch.value[..n]);
        if layer.wide {
            return super::avx512::sums(ids, vals, layer, out);
        }
        let mut col = 0;
        while col < width {
            let wt = layer.wt.as_ptr().add(col);
            let out = (out, col, width);
            match (width - col).div_ceil(UNITS).min(REGS) {
                1 => sums::<1>(ids, vals, wt, layer.lanes, out),
                2 => sums::<2>(ids, vals, wt, layer.lanes, out),
                3 => sums::<3>(ids, vals, wt, layer.lanes, out),
                4 => sums::<4>(ids, vals, wt, layer.lanes, out),
                5 => sums::<5>(ids, vals, wt, layer.lanes, out),
                6 => sums::<6>(ids, vals, wt, layer.lanes, out),
                7 => sums::<7>(ids, vals, wt, layer.lanes, out),
                _ => sums::<REGS>(ids, vals, wt, layer.lanes, out),
            }
            col += REGS * UNITS;
        }
    }

    /// `N` registers of units from `col` of one row, summed over its nonzero inputs (`ids`,
    /// `vals`) from `wt` (W0ᵀ from column `col`, rows `lanes` apart); stores the units below
    /// `width`.
    #[inline(always)]
    unsafe fn sums<const N: usize>(ids: &[u32], vals: &[f32], wt: *const f32, lanes: usize, (out, col, width): (*mut f32, usize, usize)) {
        let mut acc = [_mm256_setzero_ps(); N];
        for (&k, v) in ids.iter().zip(vals) {
            let s = _mm256_broadcast_ss(v);
            let wk = wt.add(k as usize * lanes);
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(s, _mm256_loadu_ps(wk.add(j * UNITS)), *acc);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let at = col + j * UNITS;
            let left = width - at;
            if left >= UNITS {
                _mm256_storeu_ps(out.add(at), *acc);
            } else {
                let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                _mm256_maskstore_ps(out.add(at), m, *acc);
            }
        }
    }
}

/// The sums in 512-bit registers: 64 units a pass, as two interleaved sets of accumulators
/// (even and odd nonzero inputs), so that the chain of FMAs into a register is half as long
/// (a row's ~150 nonzero inputs are otherwise 150 dependent FMAs a register).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::FirstLayer;

    /// Lanes of a register.
    const LANES: usize = 16;
    /// Registers a pass fills (64 units).
    const REGS: usize = 4;

    /// `out` ([width]) = the sums of the W0ᵀ rows of one row's nonzero inputs (`ids`, `vals`).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn sums(ids: &[u32], vals: &[f32], layer: &FirstLayer, out: *mut f32) {
        let mut col = 0;
        while col < layer.width {
            match (layer.width - col).div_ceil(LANES).min(REGS) {
                1 => pass::<1>(ids, vals, layer, col, out),
                2 => pass::<2>(ids, vals, layer, col, out),
                3 => pass::<3>(ids, vals, layer, col, out),
                _ => pass::<REGS>(ids, vals, layer, col, out),
            }
            col += REGS * LANES;
        }
    }

    /// `N` registers of units from `col`.
    #[inline(always)]
    unsafe fn pass<const N: usize>(ids: &[u32], vals: &[f32], layer: &FirstLayer, col: usize, out: *mut f32) {
        let (lanes, width) = (layer.lanes, layer.width);
        let mask = |left: usize| if left >= LANES { !0 } else { (1u32 << left) as __mmask16 - 1 };
        // the lanes of a W0ᵀ row from `col` (a multiple of 8 of them), and of `out`
        let (read, write): ([__mmask16; N], [__mmask16; N]) =
            (std::array::from_fn(|j| mask(lanes - col - j * LANES)), std::array::from_fn(|j| mask(width - col - j * LANES)));
        let wt = layer.wt.as_ptr().add(col);
        let mut acc = [[_mm512_setzero_ps(); N]; 2];
        let (pairs, odd) = (ids.chunks_exact(2), ids.len() % 2 == 1);
        for (i, k) in pairs.enumerate() {
            for (s, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*vals.get_unchecked(2 * i + s));
                let wk = wt.add(k[s] as usize * lanes);
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(read[j], wk.add(j * LANES)), *acc);
                }
            }
        }
        if odd {
            let (v, wk) = (_mm512_set1_ps(vals[ids.len() - 1]), wt.add(ids[ids.len() - 1] as usize * lanes));
            for (j, acc) in acc[0].iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(read[j], wk.add(j * LANES)), *acc);
            }
        }
        for j in 0..N {
            _mm512_mask_storeu_ps(out.add(col + j * LANES), write[j], _mm512_add_ps(acc[0][j], acc[1][j]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse product against the dense one, on pixels and on features, for widths of one
    /// register and of several passes, inputs with and without a tail shorter than a register,
    /// and rows from blank to fully inked.
    #[test]
    fn the_sparse_first_layer_matches_the_dense_product() {
        if !crate::model::fused::available() {
            eprintln!("no AVX2 + FMA: nothing to check");
            return;
        }
        for &(width, input, rows) in &[(50, 784, 9), (8, 64, 3), (3, 40, 4), (130, 100, 5), (64, 33, 2), (16, 20, 3), (72, 50, 4)] {
            let w0: Vec<f32> = crate::model::pointwise::tests::values(width * input, 7).iter().map(|v| v / 10.0).collect();
            // row r: every (r + 1)-th input inked, row 0 blank, the last row full
            let px: Vec<u8> = (0..rows * input)
                .map(|i| {
                    let (r, k) = (i / input, i % input);
                    match r {
                        0 => 0,
                        _ if r == rows - 1 => 255,
                        _ if k % (r + 1) == 0 => (37 * k % 255 + 1) as u8,
                        _ => 0,
                    }
                })
                .collect();
            let x: Vec<f32> = px.iter().enumerate().map(|(i, &p)| if p == 0 { 0.0 } else { p as f32 / 100.0 - (i % 3) as f32 }).collect();
            let mut layer = FirstLayer::new(&w0, width, input).expect("available, finite");
            let check = |got: &[f32], value: &dyn Fn(usize) -> f32, what: &str| {
                for r in 0..rows {
                    for j in 0..width {
                        // in f64, against f32's rounding in any order of the sums
                        let terms = (0..input).map(|k| value(r * input + k) as f64 * w0[j * input + k] as f64);
                        let (want, size) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                        let got = got[r * width + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()) + 2e-7 * size,
                            "{what} [{r}, {j}] = {got}, not {want} (width {width}, input {input})"
                        );
                    }
                }
            };
            // the 512-bit sums where the CPU has them, and the 8-lane ones
            for wide in if crate::model::fused::wide() { vec![true, false] } else { vec![false] } {
                layer.wide = wide;
                let mut out = vec![f32::NAN; rows * width];
                layer.pixels(&px, &mut out, &mut Scratch::default());
                check(&out, &|i| px[i] as f32 / 255.0, if wide { "pixels, wide" } else { "pixels" });
                out.fill(f32::NAN);
                layer.features(&x, &mut out, &mut Scratch::default());
                check(&out, &|i| x[i], if wide { "features, wide" } else { "features" });
            }
        }
        let mut bad = vec![0.5; 8 * 16];
        bad[5] = f32::NAN;
        assert!(FirstLayer::new(&bad, 8, 16).is_none(), "a NaN weight keeps the dense product");
        // a NaN input is carried into its row's sums, as the dense product does
        let layer = FirstLayer::new(&[0.5; 8 * 16], 8, 16).expect("available, finite");
        let mut x = vec![0.0; 2 * 16];
        x[16 + 3] = f32::NAN;
        let mut out = vec![0.0; 2 * 8];
        layer.features(&x, &mut out, &mut Scratch::default());
        assert!(out[..8].iter().all(|&v| v == 0.0) && out[8..].iter().all(|v| v.is_nan()), "{out:?}");
    }
}
